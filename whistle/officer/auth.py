"""Signing in and out, choosing one's passphrase, and turning on the second factor."""

from __future__ import annotations

import segno
from flask import Blueprint, flash, g, redirect, render_template, session, url_for
from flask_babel import gettext as _

from .. import accounts, audit, db
from ..extensions import now, password_hashing, server_key, settings, state, today
from ..labels import organisation_name
from . import current_account, current_session, sessions
from .forms import EnrolForm, PassphraseForm, SignInForm, SignOutForm

bp = Blueprint("officer_auth", __name__)

_ENROL_SECONDS = 600


def _idle() -> float:
    return settings().officer_idle_minutes * 60


def _first_stage(account) -> str:
    if account.must_change_passphrase:
        return sessions.PASSPHRASE
    if account.totp_enrolled_on is None:
        return sessions.ENROL
    return sessions.FULL


def _clear_keeping_language() -> None:
    """Empty the visit's cookie but for the language the person chose (?lang=)."""
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    form = SignInForm()
    if not form.validate_on_submit():
        return render_template("officer/sign_in.html", form=form), 200 if not form.is_submitted() else 400
    try:
        signed = accounts.sign_in(
            db.session(), password_hashing(), server_key(), state(),
            form.username.data, form.passphrase.data, form.code.data or "", now=now(),
        )
    except accounts.Throttled:
        return render_template("officer/sign_in.html", form=form, error=_(
            "Too many failed attempts for this account. Wait 15 minutes and try again, or ask an administrator."
        )), 429
    except accounts.SignInFailed:
        form.passphrase.data = form.code.data = ""
        return render_template("officer/sign_in.html", form=form, error=_(
            "The user name, passphrase or code is not right. Please try again."
        )), 401
    account = db.session().get(accounts.Account, signed.account_id)
    _clear_keeping_language()  # a new cookie for the new session: nothing else carries over
    sid, half = sessions.start(
        state(), account.id, signed.private_key, _first_stage(account), now(), _idle(), settings().officer_session_hours * 3600
    )
    session["sid"], session["half"] = sid, half
    return redirect(url_for("officer.home"), 303)


@bp.post("/sign-out")
def sign_out():
    SignOutForm().validate_on_submit()  # CSRFProtect has checked the token already
    audit.record(db.session(), "logout", current_account())
    db.session().commit()
    sessions.end(state(), session.get("sid"))
    _clear_keeping_language()
    flash(_("You have signed out. Your key is locked again."), "success")
    return redirect(url_for(".sign_in"), 303)


def _passphrase_page(form: PassphraseForm, status: int = 200):
    first = current_session().stage == sessions.PASSPHRASE
    return render_template("officer/passphrase.html", form=form, first=first, min_length=accounts.MIN_PASSPHRASE), status


@bp.route("/passphrase", methods=["GET", "POST"])
def change_passphrase():
    form = PassphraseForm()
    current = current_session()
    if not form.validate_on_submit():
        return _passphrase_page(form, 400 if form.is_submitted() else 200)
    account = current_account()
    try:
        key = accounts.change_passphrase(
            db.session(), password_hashing(), account, form.current.data, form.new.data, current.private_key, today()
        )
    except accounts.SignInFailed:
        form.current.errors = [_("This is not your current passphrase.")]
        return _passphrase_page(form, 400)
    except accounts.AccountError:
        form.new.errors = [_("Choose a passphrase that differs from the current one.")]
        return _passphrase_page(form, 400)
    next_stage = current.stage
    if current.stage == sessions.PASSPHRASE:
        next_stage = sessions.ENROL if account.totp_enrolled_on is None else sessions.FULL
    sessions.update(state(), current, session["half"], _idle(), stage=next_stage, private_key=key)
    flash(_("Your passphrase was changed. Use the new one from now on."), "success")
    return redirect(url_for("officer.home"), 303)


def _enrol_key() -> str:
    return "enrol:" + current_session().sid


@bp.route("/enrol", methods=["GET", "POST"])
def enrol():
    form = EnrolForm()
    secret_raw = state().get(_enrol_key())
    secret = secret_raw.decode() if secret_raw else accounts.new_totp_secret()
    state().put(_enrol_key(), secret.encode(), _ENROL_SECONDS)
    account = current_account()
    if form.validate_on_submit():
        try:
            codes = accounts.enroll_totp(db.session(), server_key(), account, secret, form.code.data, now(), today())
        except accounts.SignInFailed:
            form.code.errors = [_("That code is not right. Check the time on your phone and type the code it shows now.")]
        else:
            state().delete(_enrol_key())
            sessions.update(state(), current_session(), session["half"], _idle(), stage=sessions.FULL)
            return render_template("officer/recovery_codes.html", codes=codes)
    uri = accounts.provisioning_uri(secret, account, organisation_name(settings().organisation))
    qr = segno.make(uri, error="m").svg_inline(scale=5, title=_("QR code for your authenticator app"))
    return render_template("officer/enrol.html", form=form, qr=qr, secret=secret), 400 if form.errors else 200
