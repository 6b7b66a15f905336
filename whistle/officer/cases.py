"""The case list and the case page: officers read and process, supervisors see the
metadata, deadlines and timeline only (they hold no key)."""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, stream_with_context, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from .. import audit, cases, casework, crypto, db, identity, intake
from ..extensions import settings, today, trust
from ..labels import category_choices
from ..models import Account, Agency, Outcome, Role, Status
from ..uploads import blob_store, request_uploads
from . import current_account, current_session, roles
from .forms import AssignForm, IdentityRequestForm, MessageForm, NoteForm, StepForm

bp = Blueprint("officer_cases", __name__, url_prefix="/cases")


def _query() -> cases.ListQuery:
    args = request.args
    try:
        page = max(1, int(args.get("page", "1")))
    except ValueError:
        page = 1
    sort = args.get("sort", "received")
    return cases.ListQuery(
        status=args.get("status", "open")[:32],
        category=args.get("category", "")[:64],
        channel=args.get("channel", "")[:32],
        assignee=args.get("assignee", "")[:8],
        due=args.get("due", "")[:8],
        sort=sort if sort in cases.ListQuery.SORTS else "received",
        descending=args.get("order", "desc") != "asc",
        page=page,
    )


@bp.get("")
@roles(Role.OFFICER, Role.SUPERVISOR)
def index():
    query = _query()
    org = settings().organisation
    page = cases.list_cases(db.session(), org, query, current_account(), today())
    states = {r.id: cases.deadline_state(org, r, today()) for r in page.rows}
    return render_template(
        "officer/cases.html", page=page, query=query, states=states, categories=category_choices(org),
        statuses=list(Status), args={k: v for k, v in request.args.items() if k != "page"},
    )


def case_or_404(case_id: int, whole: bool = False):
    """The case with this number, or a 404; `whole` loads its thread, files and timeline."""
    try:
        return cases.get_case(db.session(), case_id, whole=whole)
    except cases.CaseNotFound:
        abort(404)


def officer_key() -> crypto.PrivateKey:
    """The key this officer's session unlocked; a 403 for a session that holds none."""
    key = current_session().private_key
    if key is None:
        abort(403)
    return key


def _officers() -> list[Account]:
    return list(db.session().scalars(
        select(Account).where(Account.role == Role.OFFICER, Account.disabled_on.is_(None)).order_by(Account.display_name)
    ))


def render_case(
    report,
    message_form: MessageForm | None = None,
    note_form: NoteForm | None = None,
    status: int = 200,
    identity_form: IdentityRequestForm | None = None,
):
    account = current_account()
    org = settings().organisation
    content = None
    if account.role is Role.OFFICER:
        content = casework.read_case(db.session(), trust(), report, officer_key(), account)
    else:
        audit.record(db.session(), "case_view", account, report.id)
        db.session().commit()
    step_form = StepForm()
    step_form.agency.choices = [(a.value, a.value) for a in Agency]
    step_form.outcome.choices = [(o.value, o.value) for o in Outcome]
    assign_form = AssignForm()
    assign_form.assignee.choices = [("", _("Nobody"))] + [(str(o.id), o.display_name) for o in _officers()]
    assign_form.assignee.data = str(report.assignee_id or "")
    return render_template(
        "officer/case.html",
        case=report,
        content=content,
        state=cases.deadline_state(org, report, today()),
        next_steps=cases.next_steps(report),
        step_form=step_form,
        assign_form=assign_form,
        note_form=note_form or NoteForm(),
        message_form=message_form or MessageForm(new_due=cases.add_days(org, today(), org.resolve_days)),
        day_count=org.day_count,
        today=today(),
        identity_requests=identity.requests_for(db.session(), report) if content and report.identity is not None else [],
        identity_form=identity_form or IdentityRequestForm(),
    ), status


@bp.get("/<int:case_id>")
@roles(Role.OFFICER, Role.SUPERVISOR)
def show(case_id: int):
    return render_case(case_or_404(case_id, whole=True))


@bp.post("/<int:case_id>/step")
@roles(Role.OFFICER)
def step(case_id: int):
    report = case_or_404(case_id)
    form = StepForm()
    form.agency.choices = [(a.value, a.value) for a in Agency]
    form.outcome.choices = [(o.value, o.value) for o in Outcome]
    form.validate_on_submit()
    status = form.status.data or ""
    try:
        cases.move(
            db.session(), report, status, current_account(), today(),
            agency=form.agency.data if status == Status.REFERRED else None,
            outcome=form.outcome.data if status == Status.CLOSED else None,
        )
    except (cases.StepNotAllowed, ValueError):
        db.session().rollback()
        flash(_("That step is not possible from where the case stands now."), "error")
    else:
        flash(_("The case is now: %(status)s.", status=_status_label(report.status)), "success")
    return redirect(url_for(".show", case_id=case_id), 303)


def _status_label(status: Status) -> str:
    from ..labels import STATUS_LABELS

    return str(STATUS_LABELS[status.value])


@bp.post("/<int:case_id>/assign")
@roles(Role.OFFICER, Role.SUPERVISOR)
def assign(case_id: int):
    report = case_or_404(case_id)
    form = AssignForm()
    form.assignee.choices = [("", "")] + [(str(o.id), o.display_name) for o in _officers()]
    if not form.validate_on_submit():
        abort(400)
    chosen = next((o for o in _officers() if str(o.id) == form.assignee.data), None)
    if form.assignee.data and chosen is None:
        abort(400)
    cases.assign(db.session(), report, chosen, current_account(), today())
    flash(_("The officer in charge was changed."), "success")
    return redirect(url_for(".show", case_id=case_id), 303)


@bp.post("/<int:case_id>/notes")
@roles(Role.OFFICER)
def add_note(case_id: int):
    report = case_or_404(case_id)
    form = NoteForm()
    if not form.validate_on_submit():
        return render_case(report, note_form=form, status=400)
    casework.add_note(db.session(), trust(), report, form.text.data.strip(), officer_key(), current_account(), today())
    flash(_("The note was saved. Only officers can read it."), "success")
    return redirect(url_for(".show", case_id=case_id) + "#notes", 303)


@bp.post("/<int:case_id>/messages")
@roles(Role.OFFICER)
def send_message(case_id: int):
    report = case_or_404(case_id)
    form = MessageForm()
    valid = form.validate_on_submit()
    uploads = request_uploads()
    refused = [u for u in uploads if u.refused]
    new_due = form.new_due.data if form.explains.data else None
    if form.explains.data and (new_due is None or new_due <= today()):
        form.new_due.errors = [_("Give the next deadline, a day after today.")]
        valid = False
    if refused:
        form.files.errors = [_("A file was too large, or there were too many files. Nothing was sent.")]
    if not valid or refused or report.status is Status.CLOSED:
        if report.status is Status.CLOSED:
            flash(_("The case is closed: no more messages can be sent."), "error")
        return render_case(report, message_form=form, status=400)
    try:
        casework.send_message(
            db.session(), blob_store(), trust(), report, form.text.data.strip(), uploads, officer_key(), current_account(), today(),
            new_due=new_due,
        )
    except intake.StorageFailed:
        flash(_("The message could not be stored just now, and nothing was sent. Please send it again."), "error")
        return render_case(report, message_form=form, status=503)
    flash(_("The message was sent to the reporter."), "success")
    return redirect(url_for(".show", case_id=case_id) + "#messages", 303)


@bp.get("/<int:case_id>/files/<int:file_id>")
@roles(Role.OFFICER)
def download(case_id: int, file_id: int):
    report = case_or_404(case_id)
    try:
        info, chunks = casework.open_file(db.session(), blob_store(), report, file_id, officer_key(), current_account())
    except (casework.FileNotInCase, crypto.OpenError, FileNotFoundError):
        abort(404)
    name = info.name or f"file-{file_id}"
    ascii_name = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name) or "file"
    return Response(
        stream_with_context(chunks),
        mimetype="application/octet-stream",
        headers={
            "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}",
            "Content-Length": str(info.size),
            # Never rendered by the browser, even if opened directly.
            "Content-Security-Policy": "sandbox; default-src 'none'",
        },
    )
