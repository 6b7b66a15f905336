"""The officers' pages after signing in."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for

from .. import access, db
from ..extensions import trust
from ..models import Role
from . import current_account, current_session

bp = Blueprint("officer", __name__)


@bp.get("/")
def home():
    account = current_account()
    if account.role is Role.ADMIN:
        return redirect(url_for("officer_admin.index"), 303)
    if account.role is Role.OFFICER:
        # Work on keys comes first: a key not yet certified receives nothing, and stored
        # cases not yet re-wrapped are still open to a removed officer's key.
        key = access.key_state(db.session(), trust(), current_session().private_key)
        if not key.certified or key.pending:
            return render_template("officer/home.html", account=account, key=key)
    return redirect(url_for("officer_cases.index"), 303)
