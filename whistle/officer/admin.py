"""The administrators' pages: the accounts of the workspace, and the publicity kit. Admins create accounts (with
a one-time passphrase shown once, to hand over in person), disable them, reset a
supervisor's or an admin's forgotten passphrase, reset a lost second factor, and set the
address notices go to. Removing an officer also retires their key (access.py). The
publicity page shows the snippets for the municipality's website, with a live preview,
and serves the poster, the flyers and the share image (publicity.py).

Nothing here shows case content, nor any secret of an account: there is none on these
pages to show. Every change is on the audit trail (in the services' transactions), and a
change that must end an account's sessions ends them once it has committed.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, make_response, redirect, render_template, url_for
from flask_babel import gettext as _
from markupsafe import Markup
from sqlalchemy import select

from .. import access, accounts, db, publicity, security
from ..extensions import password_hashing, settings, state, today, trust
from ..models import Account, Role
from . import current_account, roles, sessions
from .forms import ConfirmForm, DisableForm, EmailForm, NewAccountForm

bp = Blueprint("officer_admin", __name__, url_prefix="/admin")


def _account(account_id: int, *, not_mine: bool = False) -> Account:
    """The account the page is about; with `not_mine`, never the admin's own (they use
    their own passphrase page; disabling themselves could leave no admin)."""
    account = db.session().get(Account, account_id)
    if account is None:
        abort(404)
    if not_mine and account.id == current_account().id:
        abort(403)
    return account


def _key_state(account: Account) -> str:
    """"none" (no key yet: first sign-in pending), "waiting" (not certified: receives
    nothing), "certified", "last" (disabled, kept as the last certified key), "retired"."""
    row = access.officer_key_row(db.session(), account)
    if row is None:
        return "none"
    if row.retired_on is not None:
        return "retired"
    if trust().certified(row) is None:
        return "waiting"
    return "last" if account.disabled_on is not None else "certified"


@bp.get("/accounts")
@roles(Role.ADMIN)
def index():
    rows = db.session().scalars(select(Account).order_by(Account.disabled_on.is_not(None), Account.role, Account.username)).all()
    keys = {a.id: _key_state(a) for a in rows if a.role is Role.OFFICER}
    return render_template("officer/admin/accounts.html", rows=rows, keys=keys)


def _new_account_form() -> NewAccountForm:
    form = NewAccountForm()
    form.role.choices = [(r.value, _role_label(r)) for r in Role]
    return form


def _role_label(role: Role) -> str:
    from ..labels import ROLE_LABELS

    return str(ROLE_LABELS[role.value])


@bp.route("/accounts/new", methods=["GET", "POST"])
@roles(Role.ADMIN)
def create():
    form = _new_account_form()
    if not form.validate_on_submit():
        return render_template("officer/admin/new_account.html", form=form), 400 if form.is_submitted() else 200
    session, passphrase = db.session(), accounts.generate_passphrase()
    try:
        account = accounts.create_account(
            session, password_hashing(), form.username.data, form.display_name.data or "", Role(form.role.data),
            passphrase, today(), by=current_account(),
        )
        if form.email.data:
            accounts.set_email(session, account, form.email.data, current_account())
        session.commit()
    except accounts.AccountError:
        session.rollback()
        if accounts.find(session, form.username.data) is not None:
            form.username.errors = [_("This user name is taken. Choose another.")]
        else:
            form.email.errors = [_("This is not an e-mail address.")]
        return render_template("officer/admin/new_account.html", form=form), 400
    return render_template("officer/admin/one_time.html", account=account, passphrase=passphrase, new=True)


@bp.get("/accounts/<int:account_id>")
@roles(Role.ADMIN)
def show(account_id: int):
    account = _account(account_id)
    return _account_page(account)


def _account_page(account: Account, email_form: EmailForm | None = None, status: int = 200):
    key_state = _key_state(account) if account.role is Role.OFFICER else None
    return render_template(
        "officer/admin/account.html", account=account, key_state=key_state,
        key_id=account.key_id.hex() if account.key_id else None,
        email_form=email_form or EmailForm(email=account.email), disable_form=DisableForm(), confirm=ConfirmForm(),
        is_self=account.id == current_account().id,
    ), status


def _say_retired() -> None:
    flash(_("The key was retired: new tips are no longer sealed to it. Its access to stored cases ends at the next re-wrap, which any officer with access can run from their Access page."), "success")


def _back(account: Account):
    return redirect(url_for(".show", account_id=account.id), 303)


@bp.post("/accounts/<int:account_id>/email")
@roles(Role.ADMIN)
def set_email(account_id: int):
    account = _account(account_id)
    form = EmailForm()
    if not form.validate_on_submit():
        return _account_page(account, form, 400)
    try:
        accounts.set_email(db.session(), account, form.email.data or "", current_account())
    except accounts.AccountError:
        db.session().rollback()
        form.email.errors = [_("This is not an e-mail address.")]
        return _account_page(account, form, 400)
    flash(_("The address for notices was saved."), "success")
    return _back(account)


@bp.post("/accounts/<int:account_id>/disable")
@roles(Role.ADMIN)
def disable(account_id: int):
    account = _account(account_id, not_mine=True)
    form = DisableForm()
    form.validate_on_submit()  # CSRFProtect has checked the token; the box is optional
    if account.role is Role.OFFICER:
        removal = access.remove_officer(db.session(), trust(), account, current_account(), today(), revoke=bool(form.revoke.data))
        if removal.revoked:
            flash(_("The key was revoked: its signatures no longer count."), "success")
        if removal.retired:
            _say_retired()
        elif account.key_id is not None and _key_state(account) == "last":
            flash(_("The key stays active for now: it is the last certified officer key, and without one no tip can be accepted. Retire it here once another officer's key is certified."), "error")
    else:
        accounts.disable(db.session(), account, current_account(), today())
    sessions.end_all(state(), account.id)
    flash(_("The account was disabled and its sessions ended."), "success")
    return _back(account)


@bp.post("/accounts/<int:account_id>/retire-key")
@roles(Role.ADMIN)
def retire_key(account_id: int):
    account = _account(account_id)
    ConfirmForm().validate_on_submit()
    if access.retire_key(db.session(), trust(), account, current_account(), today()):
        _say_retired()
    else:
        flash(_("The key stays active: it is still the last certified officer key."), "error")
    return _back(account)


@bp.post("/accounts/<int:account_id>/passphrase")
@roles(Role.ADMIN)
def reset_passphrase(account_id: int):
    account = _account(account_id, not_mine=True)
    ConfirmForm().validate_on_submit()
    if account.role is Role.OFFICER or account.disabled_on is not None:
        abort(403)  # the page offers no such button: an officer's passphrase seals their key
    passphrase = accounts.reset_passphrase(db.session(), password_hashing(), account, current_account())
    sessions.end_all(state(), account.id)
    return render_template("officer/admin/one_time.html", account=account, passphrase=passphrase, new=False)


@bp.post("/accounts/<int:account_id>/second-factor")
@roles(Role.ADMIN)
def reset_second_factor(account_id: int):
    account = _account(account_id, not_mine=True)
    ConfirmForm().validate_on_submit()
    accounts.reset_second_factor(db.session(), account, current_account())
    sessions.end_all(state(), account.id)
    flash(_("The second factor was reset. At their next sign-in, with their passphrase and no code, the person sets it up again."), "success")
    return _back(account)


# --------------------------------------------------------------------------- publicity


def _site_origin() -> str:
    """The scheme, host and port of the channel's address (what a preview may frame)."""
    from urllib.parse import urlsplit

    parts = urlsplit(settings().site_url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


@bp.get("/publicity")
@roles(Role.ADMIN)
def publicity_page():
    """The website snippets, with a live preview and the text to paste; the poster, the
    flyers and the share image to download."""
    s, snippets, problem = settings(), {}, None
    try:
        snippets = {name: publicity.snippet(s, name) for name in publicity.SNIPPETS}
        publicity.seal_data_uri(s)
    except publicity.NotConfigured as exc:
        problem = str(exc)
    response = make_response(render_template(
        "officer/admin/publicity.html", snippets=snippets, problem=problem, org=s.organisation,
        site_url=s.site_url, onion=s.onion_address, documents=publicity.DOCUMENTS, languages=publicity.LANGUAGES,
    ))
    # The previews are pages of this app, framed here; nothing else may be.
    response.headers["Content-Security-Policy"] = security.CSP + "; frame-src 'self'"
    return response


def _preview(name: str):
    try:
        snippet = publicity.snippet(settings(), name)
    except publicity.NotConfigured:
        abort(404)
    response = make_response(render_template("officer/admin/publicity_preview.html", snippet=Markup(snippet)))
    # The snippet as a website shows it: its inline styles, and for the statistics its
    # frame of the channel. No script runs here, and only the publicity page may frame it.
    frame_src = _site_origin() or "'none'"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
        f"frame-src {frame_src}; form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
    )
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.get("/publicity/preview/button")
@roles(Role.ADMIN)
def publicity_button_preview():
    return _preview("button")


@bp.get("/publicity/preview/statistics")
@roles(Role.ADMIN)
def publicity_statistics_preview():
    return _preview("statistics")


@bp.get("/publicity/files/<filename>")
@roles(Role.ADMIN)
def publicity_file(filename: str):
    try:
        found = publicity.kit_file(settings(), filename)
    except publicity.NotConfigured:
        abort(404)
    if found is None:
        abort(404)
    body, mimetype = found
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{filename}"'})
