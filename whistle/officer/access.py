"""An officer's key and their access to stored cases (access.py): the page that says where
their key stands, the custodian's page where the recovery key certifies it, and the
re-wrap that gives every stored case to exactly the current recipients.

The recovery key comes to the custodian's page as a file and a passphrase, in the NEW
officer's own session: the server certifies the key that session unlocked (never one read
from the database), uses the recovery key for this request only, and keeps no copy: the
file is read into memory (uploads.MEMORY_UPLOADS), never into the blob store or a
temporary file.

A re-wrap with an officer's own key runs one batch per request. The progress page
reloads itself (`<meta http-equiv="refresh">`, which needs no JavaScript and which the
Content-Security-Policy does not govern) until the work is done. A reload is a GET, so
the run is started by a POST (with its CSRF token) that gives it a random run id, kept
with the session; a GET with any other id does nothing.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from .. import access, db, keyring
from ..extensions import state, today, trust
from ..models import Role
from ..uploads import memory_upload
from . import current_account, current_session, roles
from .forms import CertifyForm, ConfirmForm

bp = Blueprint("officer_access", __name__, url_prefix="/access")

_RUN_SECONDS = 3600
#: Seconds the progress page shows before it loads the next batch.
REFRESH_SECONDS = 1


def _run_key() -> str:
    return "rewrap-run:" + current_session().sid


@bp.get("")
@roles(Role.OFFICER)
def index():
    key_state = access.key_state(db.session(), trust(), current_session().private_key)
    return render_template("officer/access/index.html", key=key_state, form=ConfirmForm())


_REFUSALS = {
    "not_a_recovery_key": lambda: _("This file is not a recovery key file. Choose the file named recovery.key from the recovery USB stick."),
    "wrong_passphrase": lambda: _("The passphrase does not open this recovery key. Check it letter by letter against the paper and try again."),
    "not_the_anchor": lambda: _("This is not the recovery key this workspace trusts. Check that the USB stick is the current one."),
}


def _certify_page(form: CertifyForm, status: int = 200):
    key_state = access.key_state(db.session(), trust(), current_session().private_key)
    return render_template("officer/access/certify.html", form=form, key=key_state), status


@bp.route("/certify", methods=["GET", "POST"])
@roles(Role.OFFICER)
def certify():
    form = CertifyForm()
    key = current_session().private_key
    if key is None:
        abort(403)
    if not form.validate_on_submit():
        return _certify_page(form, 400 if form.is_submitted() else 200)
    upload = memory_upload("recovery_key")
    if upload is None or upload.refused:
        form.recovery_key.errors = [_("Choose the recovery key file (a small file, recovery.key).")]
        return _certify_page(form, 400)
    try:
        recovery = access.read_recovery_key(upload.getvalue(), form.passphrase.data, trust())
    except access.RecoveryKeyRefused as exc:
        form.recovery_key.errors = [_REFUSALS[exc.reason]()]
        return _certify_page(form, 400)
    finally:
        upload.wipe()
    try:
        visit = access.custodian(db.session(), trust(), key, recovery, current_account(), today(), rewrap=bool(form.rewrap.data))
        if visit.certified_now:
            flash(_("Your key is certified: new tips are sealed to it from now on."), "success")
        if visit.rewrapped is not None:
            flash(_("Every stored case was re-wrapped for the current recipients (%(cases)d cases).", cases=visit.rewrapped.cases), "success")
    except keyring.KeyFileError:
        flash(_("This key was retired and cannot be certified. Ask an administrator for a new account."), "error")
    except access.CannotOpen as exc:
        flash(_("Case #%(id)d does not open with the recovery key, so the re-wrap stopped there. The cases before it are done. Tell your administrator.", id=exc.case_id), "error")
    finally:
        del recovery  # the request ends here; nothing else holds it
    return redirect(url_for(".index"), 303)


@bp.post("/rewrap")
@roles(Role.OFFICER)
def start_rewrap():
    ConfirmForm().validate_on_submit()  # CSRFProtect has checked the token
    run = secrets.token_urlsafe(16)
    state().put(_run_key(), run.encode(), _RUN_SECONDS)
    return redirect(url_for(".rewrap", run=run), 303)


@bp.get("/rewrap/<run>")
@roles(Role.OFFICER)
def rewrap(run: str):
    expected = state().get(_run_key())
    if expected is None or not hmac.compare_digest(expected, run.encode()[:64]):
        return redirect(url_for(".index"), 303)
    key = current_session().private_key
    try:
        batch = access.rewrap_batch(db.session(), trust(), key, current_account())
    except access.CannotOpen as exc:
        state().delete(_run_key())
        flash(_("Case #%(id)d does not open with your key, so the re-wrap stopped there; the cases before it are done. An officer whose key opens it, or the recovery key's custodian, can finish the work.", id=exc.case_id), "error")
        return redirect(url_for(".index"), 303)
    before, left = request.args.get("done", ""), request.args.get("left", "")
    stuck = left.isdigit() and batch.remaining >= int(left)  # the recipients changed under the run
    if batch.remaining and batch.cases and not stuck:
        done = (int(before) if before.isdigit() else 0) + batch.cases
        return render_template("officer/access/progress.html", done=done, remaining=batch.remaining, run=run, refresh=REFRESH_SECONDS)
    state().delete(_run_key())
    if batch.remaining:
        flash(_("The officers' keys changed during the re-wrap. Start it again to finish."), "error")
    else:
        flash(_("Done: every stored case is wrapped for exactly the current recipients."), "success")
    return redirect(url_for(".index"), 303)
