"""The officers' pages after signing in."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for

from ..models import Role
from . import current_account

bp = Blueprint("officer", __name__)


@bp.get("/")
def home():
    account = current_account()
    if account.role in (Role.OFFICER, Role.SUPERVISOR):
        return redirect(url_for("officer_cases.index"), 303)
    return render_template("officer/home.html", account=account)
