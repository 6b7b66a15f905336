"""Tips from other channels: an officer records a tip received by telephone, letter, in
person, e-mail or from the general complaints channel, so that it is sealed, handled and
counted like any other, and hands its reporter a printed receipt with the tracking code.

The code exists only in the answer to the form's POST: it is never put in a URL, a
redirect, the session cookie, a flash message, a log line or the audit trail, and the
page is never cached (security.py). The printable receipt is always in Thai, whatever
language the officer reads the workspace in.
"""

from __future__ import annotations

import secrets

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from markupsafe import Markup

from .. import db, intake
from ..extensions import server_key, settings, state, today, trust
from ..labels import CHANNEL_LABELS, category_choices
from ..models import Role
from ..uploads import blob_store, request_uploads
from . import current_account, roles
from .forms import RecordForm

bp = Blueprint("officer_record", __name__, url_prefix="/record")


def _form() -> RecordForm:
    channels = [(c.value, str(CHANNEL_LABELS[c.value])) for c in intake.RECORDED_CHANNELS]
    form = RecordForm(category_choices(settings().organisation), channels, today())
    if request.method != "POST":
        form.received_on.data = today()
        form.once.data = secrets.token_urlsafe(24)
    return form


#: How long a recorded form stays refused if sent again (a form older than this has
#: long lost its CSRF token anyway).
ONCE_SECONDS = 24 * 3600


def _once_key(form: RecordForm) -> str:
    return f"record-once:{form.once.data}"


def _first_sending(form: RecordForm) -> bool:
    """True the first time this form is sent to be stored; False for a second sending."""
    return state().incr(_once_key(form), ONCE_SECONDS) == 1


def _render_form(form: RecordForm, status: int = 200):
    s = settings()
    return render_template(
        "officer/record.html", form=form, max_files=s.max_files, max_mb=s.max_file_bytes // (1024 * 1024),
    ), status


def _receipt(recorded: intake.RecordedTip) -> Markup:
    s = settings()
    with force_locale("th"):
        return Markup(render_template(
            # No-break spaces: the groups never break across lines, on screen or paper.
            "officer/_tip_receipt.html", tip=recorded, code=recorded.code.display().replace(" ", "\u00a0"),
            site_url=s.site_url, onion=s.onion_address, rules=s.organisation,
        ))


@bp.route("", methods=["GET", "POST"])
@roles(Role.OFFICER)
def record_tip():
    form = _form()
    if request.method != "POST":  # GET, and HEAD as GET
        return _render_form(form)
    valid = form.validate_on_submit()
    uploads = request_uploads()
    if any(u.refused for u in uploads):
        form.files.errors = [_("A file was too large, there were too many files, or the disk did not take one. Nothing was stored: please attach the files again.")]
        valid = False
    elif not valid and uploads:
        form.files.errors = [_("Files are not kept when the form has to be corrected: please attach them again.")]
    if not valid:
        return _render_form(form, 400)
    if not _first_sending(form):
        flash(_("This form was sent already, and the tip was recorded then. Its receipt is shown only once. To record another tip, fill in the form again."), "error")
        return redirect(url_for(".record_tip"), 303)
    try:
        recorded = intake.record_tip(
            db.session(), blob_store(), settings(), server_key(), trust(), current_account(), form.channel.data,
            form.received_on.data,
            form.category.data, form.fields_text(), uploads, today(),
            identity=form.identity() if form.identity_consent.data else None,
        )
    except intake.StorageFailed:
        state().delete(_once_key(form))  # nothing was stored: it may be sent again
        flash(_("The tip could not be stored just now, and nothing was kept. Please send it again."), "error")
        form.files.errors = [_("Files are not kept when the form has to be corrected: please attach them again.")] if uploads else []
        return _render_form(form, 503)
    return render_template(
        "officer/tip_recorded.html", tip=recorded, receipt=_receipt(recorded), receipt_has_site=bool(settings().site_url)
    )
