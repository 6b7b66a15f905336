"""The supervisors' page of the audit trail: every look at a case and every change, by
case and by person, newest first, a page at a time. Reading it is itself on the trail.

Entries hold no content (audit.py), so the page shows none; checking the chain is the
command's job (`whistle audit verify`), which reads every entry.
"""

from __future__ import annotations

from flask import Blueprint, render_template, request
from sqlalchemy import select

from .. import audit, db
from ..labels import ACTION_LABELS
from ..models import Account, Role
from . import current_account, roles

bp = Blueprint("officer_audit", __name__, url_prefix="/audit")


@bp.get("")
@roles(Role.SUPERVISOR)
def index():
    session = db.session()
    people = session.scalars(select(Account).order_by(Account.username)).all()
    raw_case, raw_page = request.args.get("case", "").strip(), request.args.get("page", "")
    case_id = int(raw_case) if raw_case.isdigit() and 0 < int(raw_case) < 2**31 else None
    person = next((a for a in people if str(a.id) == request.args.get("person")), None)
    page = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) < 2**31 else 1
    audit.record(session, "audit_viewed", current_account(), case_id, person=person.username if person else None, page=page)
    session.commit()
    found = audit.entries(session, case_id=case_id, actor_id=person.id if person else None, page=page)
    args = {k: v for k, v in (("case", case_id), ("person", person.id if person else None)) if v}
    return render_template(
        "officer/audit.html", case_id=case_id, bad_case=bool(raw_case) and case_id is None, people=people, found=found, args=args, labels=ACTION_LABELS,
        details=audit.details, person=person,
    )
