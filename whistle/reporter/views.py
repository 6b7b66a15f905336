"""The reporter's pages. All work without JavaScript; none puts a code in a URL.

Views parse the form, call one service, render. Secrets they handle (the code, the
reporter's key) live only in the response body or, sealed, in the visit's session cookie.
"""

from __future__ import annotations

import time
from urllib.parse import quote

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, session, stream_with_context, url_for
from flask_babel import gettext as _

from .. import cases, db, intake, visits
from ..codes import Busy, MalformedCode, TrackingCode, normalise_digits, parse_code
from ..extensions import server_key, settings, state, today, trust
from ..labels import OUTCOME_LABELS, STATUS_LABELS, category_choices, category_label
from ..models import Author
from ..uploads import SealingUpload, blob_store, request_uploads
from .forms import AddForm, CloseForm, RatingForm, ReceiptForm, ReplyForm, ReportForm, SavedForm, StatusForm

bp = Blueprint("reporter", __name__)



# --------------------------------------------------------------------------- helpers


def _file_errors(uploads: list[SealingUpload], files_field: str) -> list[str]:
    s = settings()
    errors = []
    if any(u.refused == "too_many" for u in uploads):
        errors.append(_("You can attach at most %(n)d files.", n=s.max_files))
    if any(u.refused == "unnamed" for u in uploads):
        errors.append(_("A file arrived without a name and could not be read. Please attach it again."))
    if request.form.getlist(files_field):
        # A file part whose name the parser could not read (a line break in it) arrives as
        # text under the file input's name; no browser sends text there.
        errors.append(_("The name of a file could not be read, so the file was not kept. Please rename it and attach it again."))
    for u in uploads:
        if u.refused == "too_large":
            errors.append(
                _("The file “%(name)s” is larger than %(mb)d MB.", name=u.filename, mb=s.max_file_bytes // (1024 * 1024))
            )
    return errors


def _cleaning(uploads: list[SealingUpload]) -> dict[str, list[str]]:
    """Which stored files had their hidden details removed, which were checked and had
    none, and which were kept as sent, so that the reporter knows (DESIGN: tell the
    reporter what was and was not cleaned)."""
    return {
        "cleaned": [u.filename for u in uploads if u.cleaned],
        "nothing_found": [u.filename for u in uploads if u.photo_checked and not u.cleaned],
        "as_sent": [u.filename for u in uploads if not u.photo_checked],
    }


def _flash_cleaning(uploads: list[SealingUpload]) -> None:
    files = _cleaning(uploads)
    if files["cleaned"]:
        flash(_("Hidden details such as location were removed from: %(names)s.", names=", ".join(files["cleaned"])), "info")
    if files["nothing_found"]:
        flash(_("No hidden details such as location were found in: %(names)s.", names=", ".join(files["nothing_found"])), "info")
    if files["as_sent"]:
        flash(_("These files were stored as sent, without removing hidden details: %(names)s.", names=", ".join(files["as_sent"])), "info")


def _reattach_notice(uploads: list[SealingUpload]) -> list[str]:
    if uploads:
        return [_("For your safety, files are not kept when a form has to be corrected: please attach them again.")]
    return []


def _receipt_code(form: ReceiptForm) -> TrackingCode | None:
    """The code from a receipt form, only if the form is genuine and this visit was shown
    that code."""
    if not form.validate_on_submit():
        return None
    try:
        code = parse_code(form.code.data or "")
    except MalformedCode:
        return None
    return code if visits.receipt_matches(server_key(), session.get("receipt"), code) else None


def _opened_case() -> intake.OpenedCase | None:
    opened = visits.open_sealed_case(
        server_key(), session.get("case"), time.time(), settings().status_view_minutes * 60, state()
    )
    if opened is None:
        session.pop("case", None)
    return opened


def _view_closed_nothing_sent():
    """A form sent after the case view closed: nothing is stored, the code is asked again."""
    flash(_("For your safety the case view closes after a while. Nothing was sent. Please type your code again."), "error")
    return redirect(url_for(".status"), 303)


def _form_problem(form) -> None:
    if form.csrf_token.errors:
        flash(_("This form had expired, so nothing was sent. Please check it and send it again."), "error")


# --------------------------------------------------------------------------- pages


@bp.get("/")
def landing():
    s = settings()
    org = s.organisation
    return render_template(
        "reporter/landing.html",
        categories=category_choices(org),
        general_url=org.general_complaints_url,
        onion=s.onion_address,
        ack_days=org.ack_days,
        resolve_days=org.resolve_days,
        max_files=s.max_files,
    )


def _render_report_form(form: ReportForm, status: int = 200):
    s = settings()
    return render_template("reporter/report.html", form=form, max_files=s.max_files,
                           max_mb=s.max_file_bytes // (1024 * 1024)), status


@bp.route("/report", methods=["GET", "POST"])
def report():
    form = ReportForm(category_choices(settings().organisation))
    if request.method != "POST":  # GET, and HEAD as GET
        return _render_report_form(form)
    valid = form.validate_on_submit()
    uploads = request_uploads()
    file_errors = _file_errors(uploads, form.files.name)
    if valid and not file_errors:
        try:
            code = intake.submit_report(
                db.session(), blob_store(), settings(), server_key(), trust(), form.category.data, form.fields_text(), uploads,
                today(), identity=form.identity(),
            )
        except intake.StorageFailed:
            flash(_("Your report could not be stored just now, and nothing was kept. Please send it again."), "error")
            form.files.errors = _reattach_notice(uploads)
            return _render_report_form(form, 503)
        session["receipt"] = visits.receipt_tag(server_key(), code)
        return _render_receipt(code, files=_cleaning(uploads))
    _form_problem(form)
    form.files.errors = list(form.files.errors) + file_errors + _reattach_notice(uploads)
    return _render_report_form(form, 400)


def _render_receipt(code: TrackingCode, error: str | None = None, status: int = 200, files: dict | None = None):
    return render_template(
        "reporter/receipt.html",
        files=files,
        code=code.display(),
        saved_form=SavedForm(code=code.display()),
        receipt_form=ReceiptForm(code=code.display()),
        error=error,
        received_on=today(),
    ), status


@bp.post("/report/saved")
def saved():
    form = SavedForm()
    code = _receipt_code(form)
    if code is None:
        return render_template("reporter/receipt_closed.html"), 400
    try:
        typed = normalise_digits(form.last_group.data or "")
    except MalformedCode:
        typed = ""
    if typed != code.last_group:  # the code is on this very page: nothing to hide by timing
        return _render_receipt(
            code, _("Those digits do not match the last group of your code. Check what you saved, then try again."), 400
        )
    session.pop("receipt", None)
    return render_template("reporter/saved.html")


@bp.post("/report/receipt.txt")
def receipt_text():
    code = _receipt_code(ReceiptForm())
    if code is None:
        return render_template("reporter/receipt_closed.html"), 400
    body = render_template("reporter/receipt.txt", code=code.display(), received_on=today())
    return Response(
        body.replace("\n", "\r\n"),
        mimetype="text/plain",
        headers={"Content-Disposition": 'attachment; filename="receipt.txt"'},
    )


@bp.route("/status", methods=["GET", "POST"])
def status():
    form = StatusForm()
    if request.method != "POST":  # GET, and HEAD as GET
        return render_template("reporter/status.html", form=form)
    if not form.validate_on_submit():
        _form_problem(form)
        form.code.data = ""  # never echo a code, not even on an expired form
        return render_template("reporter/status.html", form=form), 400
    try:
        opened = intake.open_case(db.session(), settings(), server_key(), state(), form.code.parsed)
    except intake.UnknownCode:
        form.code.data = ""  # never echo a code; the same page for unknown and wrong codes
        return render_template("reporter/status.html", form=form, not_found=True), 404
    except Busy:
        form.code.data = ""
        return render_template("reporter/status.html", form=form, busy=True), 503
    session["case"] = visits.seal_open_case(server_key(), opened, time.time())
    return redirect(url_for(".case"), 303)


def _render_case(
    opened: intake.OpenedCase,
    reply_form: ReplyForm,
    status: int = 200,
    rating_form: RatingForm | None = None,
    add_form: AddForm | None = None,
):
    s = settings()
    view = intake.view_case(db.session(), trust(), opened)
    return render_template(
        "reporter/case.html",
        case=view,
        organisation_rules=s.organisation,
        category=category_label(s.organisation, view.category),
        status_labels=STATUS_LABELS,
        outcome_labels=OUTCOME_LABELS,
        reply_form=reply_form,
        add_form=add_form or AddForm(),
        rating_form=rating_form or RatingForm(),
        close_form=CloseForm(),
        max_files=s.max_files,
        max_mb=s.max_file_bytes // (1024 * 1024),
        today=today(),
    ), status


@bp.get("/case")
def case():
    opened = _opened_case()
    if opened is None:
        flash(_("For your safety the case view closes after a while. Please type your code again."), "info")
        return redirect(url_for(".status"), 303)
    return _render_case(opened, ReplyForm())


@bp.post("/case/reply")
def reply():
    opened = _opened_case()
    if opened is None:
        return _view_closed_nothing_sent()
    form = ReplyForm()
    valid = form.validate_on_submit()
    uploads = request_uploads()
    file_errors = _file_errors(uploads, form.files.name)
    if valid and not file_errors:
        try:
            intake.add_message(
                db.session(), blob_store(), trust(), opened.report_id, Author.REPORTER, form.text.data.strip(), uploads, today()
            )
        except intake.StorageFailed:
            flash(_("Your reply could not be stored just now, and nothing was kept. Please send it again."), "error")
            form.files.errors = _reattach_notice(uploads)
            return _render_case(opened, form, 503)
        flash(_("Your reply was sent to the officers."), "success")
        _flash_cleaning(uploads)
        return redirect(url_for(".case"), 303)
    _form_problem(form)
    form.files.errors = list(form.files.errors) + file_errors + _reattach_notice(uploads)
    return _render_case(opened, form, 400)


@bp.post("/case/add")
def add():
    """Information or files added to the report later, streamed, cleaned and sealed exactly
    as the report's own (uploads.py)."""
    opened = _opened_case()
    if opened is None:
        return _view_closed_nothing_sent()
    form = AddForm()
    valid = form.validate_on_submit()
    uploads = request_uploads()
    file_errors = _file_errors(uploads, form.files.name)
    text = (form.text.data or "").strip()
    if valid and not file_errors and not text and not uploads:
        form.text.errors = [_("Please write what you would like to add, or attach a file.")]
        valid = False
    if valid and not file_errors:
        try:
            intake.add_to_report(db.session(), blob_store(), trust(), opened.report_id, text, uploads, today())
        except intake.StorageFailed:
            flash(_("What you added could not be stored just now, and nothing was kept. Please send it again."), "error")
            form.files.errors = _reattach_notice(uploads)
            return _render_case(opened, ReplyForm(), 503, add_form=form)
        except cases.CaseClosed:
            flash(_("This report is closed, so nothing can be added to it. Nothing was sent."), "error")
            return redirect(url_for(".case"), 303)
        flash(_("What you added was sent to the officers, with your report."), "success")
        _flash_cleaning(uploads)
        return redirect(url_for(".case") + "#sent", 303)
    _form_problem(form)
    form.files.errors = list(form.files.errors) + file_errors + _reattach_notice(uploads)
    return _render_case(opened, ReplyForm(), 400, add_form=form)


@bp.get("/case/files/<int:file_id>")
def officer_file(file_id: int):
    """A file the officers sent with a message: only while the case view is open, always
    as a download of opaque bytes (never shown in the page, never sniffed)."""
    opened = _opened_case()
    if opened is None:
        flash(_("For your safety the case view closes after a while. Please type your code again."), "info")
        return redirect(url_for(".status"), 303)
    try:
        found = intake.open_officer_file(db.session(), blob_store(), trust(), opened, file_id)
    except intake.FileNotForReporter:
        abort(404)
    name = found.name or f"file-{file_id}"
    ascii_name = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name) or "file"
    return Response(
        stream_with_context(found.chunks),
        mimetype="application/octet-stream",
        headers={
            "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}",
            "Content-Length": str(found.size),
            "Content-Security-Policy": "sandbox; default-src 'none'",
        },
    )


@bp.post("/case/rate")
def rate():
    opened = _opened_case()
    if opened is None:
        return _view_closed_nothing_sent()
    form = RatingForm()
    if not form.validate_on_submit():
        _form_problem(form)
        return _render_case(opened, ReplyForm(), 400, rating_form=form)
    try:
        intake.rate_case(db.session(), trust(), opened.report_id, int(form.score.data), (form.comment.data or "").strip(), today())
    except intake.CannotRate:
        flash(_("This report cannot be rated: it is not closed yet, or it was rated already."), "error")
        return redirect(url_for(".case"), 303)
    flash(_("Thank you. Your rating was recorded."), "success")
    return redirect(url_for(".case"), 303)


@bp.errorhandler(intake.UnknownCode)
def case_gone(_exc: intake.UnknownCode):
    """The open case no longer exists (purged under retention while the view was open)."""
    session.pop("case", None)
    flash(_("For your safety the case view closes after a while. Nothing was sent. Please type your code again."), "error")
    return redirect(url_for(".status"), 303)


@bp.post("/case/close")
def close():
    CloseForm().validate_on_submit()  # closing needs no proof; the view is dropped anyway
    sealed = session.pop("case", None)
    # Closed on the server too, so that a copy of the cookie opens nothing.
    visits.close_view(server_key(), sealed, time.time(), settings().status_view_minutes * 60, state())
    return redirect(url_for(".landing"), 303)
