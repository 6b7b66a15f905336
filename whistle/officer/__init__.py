"""The officers' app: its blueprints, its cookie, CSRF on every form, and the rule that
no page but signing in is open without a signed-in account.

`init_app` wires it into an app made by `create_officer_app`. Every request is checked in
`_require_sign_in` before any view runs: an endpoint that is not on `OPEN_ENDPOINTS`
needs a session, and a session still at its first step (choosing a passphrase, enrolling
the second factor) reaches only that step's pages. A view that should be seen by some
roles only says so with `@roles(...)`.
"""

from __future__ import annotations

import functools
from typing import Callable

from flask import Flask, abort, flash, g, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFProtect

from .. import db
from ..extensions import now, settings, state
from ..models import Account, Role
from . import sessions

#: Endpoints open without signing in.
OPEN_ENDPOINTS = frozenset({"officer_auth.sign_in", "static", "favicon"})
#: Endpoints open to a session at each first step.
STAGE_ENDPOINTS = {
    sessions.PASSPHRASE: frozenset({"officer_auth.change_passphrase", "officer_auth.sign_out"}),
    sessions.ENROL: frozenset({"officer_auth.enrol", "officer_auth.sign_out"}),
}


def current_account() -> Account:
    return g.account


def current_session() -> sessions.OfficerSession:
    return g.officer_session


def roles(*allowed: Role) -> Callable:
    """Let only these roles through (403 for the others, who are signed in already)."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if g.account.role not in allowed:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorate


def _idle_seconds() -> float:
    return settings().officer_idle_minutes * 60


def load_session() -> sessions.OfficerSession | None:
    s = settings()
    return sessions.load(
        state(), session.get("sid"), session.get("half"), now(), _idle_seconds(), s.officer_session_hours * 3600
    )


def _require_sign_in():
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    current = load_session()
    account = db.session().get(Account, current.account_id) if current is not None else None
    if current is None or account is None or account.disabled_on is not None:
        had_session = "sid" in session
        sessions.end(state(), session.get("sid"))
        session.clear()
        if had_session:
            flash(_("Your session has ended. Please sign in again."), "info")
        return redirect(url_for("officer_auth.sign_in"), 303)
    g.officer_session, g.account = current, account
    if current.stage != sessions.FULL and request.endpoint not in STAGE_ENDPOINTS[current.stage]:
        target = "officer_auth.change_passphrase" if current.stage == sessions.PASSPHRASE else "officer_auth.enrol"
        return redirect(url_for(target), 303)
    return None


def init_app(app: Flask) -> None:
    from .access import bp as access_bp
    from .admin import bp as admin_bp
    from .audit import bp as audit_bp
    from .auth import bp as auth_bp
    from .cases import bp as cases_bp
    from .identity import bp as identity_bp
    from .record import bp as record_bp
    from .prevention import bp as prevention_bp
    from .summaries import bp as summaries_bp
    from .views import bp as views_bp

    app.config["SESSION_COOKIE_NAME"] = "whistle_officer"
    app.jinja_env.globals["base_layout"] = "officer/base.html"
    app.jinja_env.globals["home_endpoint"] = "officer.home"
    CSRFProtect(app)
    app.register_blueprint(auth_bp)
    app.register_blueprint(views_bp)
    app.register_blueprint(cases_bp)
    app.register_blueprint(record_bp)
    app.register_blueprint(identity_bp)
    app.register_blueprint(summaries_bp)
    app.register_blueprint(prevention_bp)
    app.register_blueprint(access_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(audit_bp)
    # Browsers ask for /favicon.ico on their own, and Chromium sends no SameSite=Strict
    # cookie with it: redirected to the sign-in page, that request got a new session whose
    # cookie replaced the visitor's, so the next form failed its CSRF check (or a signed-in
    # officer was signed out). No icon, and no cookie.
    app.add_url_rule("/favicon.ico", "favicon", lambda: ("", 204))
    app.before_request(_require_sign_in)
