"""The officers' pages after signing in."""

from __future__ import annotations

from flask import Blueprint, render_template

from . import current_account

bp = Blueprint("officer", __name__)


@bp.get("/")
def home():
    return render_template("officer/home.html", account=current_account())
