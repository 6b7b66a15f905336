"""Identity on request, in the workspace: an officer asks to open a reporter's name and
contact with a stated reason, a supervisor approves or refuses on a page that shows the
reason and the case's metadata (never content), and the approved officer opens it.
The rules and the audit trail are the service's (whistle/identity.py)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from .. import crypto, db, identity
from ..extensions import today
from ..models import Role
from . import current_account, roles
from .cases import case_or_404, officer_key, render_case
from .forms import DecisionForm, IdentityRequestForm, OpenIdentityForm

bp = Blueprint("officer_identity", __name__)


def _back(case_id: int):
    return redirect(url_for("officer_cases.show", case_id=case_id) + "#identity", 303)


@bp.post("/cases/<int:case_id>/identity/request")
@roles(Role.OFFICER)
def request_reveal(case_id: int):
    report = case_or_404(case_id)
    form = IdentityRequestForm()
    if not form.validate_on_submit():
        return render_case(report, identity_form=form, status=400)
    try:
        identity.request_reveal(db.session(), report, current_account(), form.reason.data, today())
    except identity.NoIdentity:
        abort(404)
    except identity.RequestOpen:
        flash(_("You have already asked to open these details; your request is waiting or approved."), "error")
    else:
        flash(_("Your request was sent to the supervisors. The details stay sealed until one of them approves it."), "success")
    return _back(case_id)


@bp.post("/cases/<int:case_id>/identity/open")
@roles(Role.OFFICER)
def open_identity(case_id: int):
    report = case_or_404(case_id)
    OpenIdentityForm().validate_on_submit()  # the token is checked before any view (CSRFProtect)
    try:
        details = identity.reveal(db.session(), report, current_account(), officer_key(), today())
    except identity.NoIdentity:
        abort(404)
    except identity.NotApproved:
        abort(403)
    except crypto.OpenError:
        flash(_("These details could not be opened with your key. Tell your administrator."), "error")
        return _back(case_id)
    return render_template("officer/identity.html", case=report, identity=details)


@bp.get("/identity-requests")
@roles(Role.SUPERVISOR)
def requests():
    session = db.session()
    return render_template(
        "officer/identity_requests.html",
        pending=identity.pending_requests(session),
        decided=identity.recent_decisions(session),
        form=DecisionForm(),
    )


@bp.post("/identity-requests/<int:request_id>/decide")
@roles(Role.SUPERVISOR)
def decide(request_id: int):
    form = DecisionForm()
    if not form.validate_on_submit() or form.decision.data not in ("approve", "refuse"):
        abort(400)
    approve = form.decision.data == "approve"
    try:
        identity.decide(db.session(), request_id, approve, current_account(), today())
    except identity.RequestNotFound:
        abort(404)
    except identity.OwnRequest:
        flash(_("Nobody may decide their own request: another supervisor must decide it."), "error")
    except identity.AlreadyDecided:
        flash(_("This request has already been decided."), "error")
    else:
        flash(_("The request was approved: the officer who asked can now open the details.") if approve
              else _("The request was refused: the details stay sealed."), "success")
    return redirect(url_for(".requests"), 303)
