"""The analysis for prevention: the tag on each case page, and the page of counts by unit
and kind of weakness across fiscal years, with a chart. Officers' app only."""

from __future__ import annotations

from collections import Counter

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField

from .. import cases, db, prevention, publication
from ..config import Category
from ..extensions import settings, today
from ..models import Role
from . import current_account, roles

bp = Blueprint("officer_prevention", __name__)

WEAKNESS_LABELS = {
    "procedure_unclear": _l("Unclear or missing procedure"),
    "no_separation_of_duties": _l("No separation of duties"),
    "weak_oversight": _l("Weak oversight or checks"),
    "discretion_unchecked": _l("Discretion without criteria"),
    "information_not_public": _l("Information not made public"),
    "conflict_not_declared": _l("Conflict of interest not declared"),
    "other": _l("Other weakness"),
}


def _label(choice: Category, defaults: dict) -> str:
    """The organisation's own label for a listed unit or kind, else the shipped one."""
    locale = get_locale()
    if locale is not None and locale.language == "en" and choice.label_en:
        return choice.label_en
    return choice.label_th or choice.label_en or str(defaults.get(choice.key, choice.key))


class TagForm(FlaskForm):
    unit = SelectField(_l("Unit concerned"), validate_choice=False)
    weakness = SelectField(_l("Kind of weakness"), validate_choice=False)


def _form(tag=None) -> TagForm:
    org = settings().organisation
    form = TagForm()
    form.unit.choices = [(u.key, _label(u, {})) for u in org.units]
    form.weakness.choices = [(w.key, _label(w, WEAKNESS_LABELS)) for w in org.weaknesses]
    if tag is not None and request.method == "GET":
        form.unit.data, form.weakness.data = tag.unit, tag.weakness
    return form


@bp.app_context_processor
def _tag_helpers():
    """For the case page's tag block (templates/officer/_prevention_tag.html)."""
    return {"prevention_tag": lambda case_id: prevention.tag_of(db.session(), case_id), "prevention_form": lambda tag: _form(tag)}


@bp.post("/cases/<int:case_id>/tags")
@roles(Role.OFFICER)
def tag(case_id: int):
    try:
        report = cases.get_case(db.session(), case_id)
    except cases.CaseNotFound:
        abort(404)
    form = _form()
    form.validate_on_submit()
    try:
        prevention.set_tag(db.session(), settings().organisation, report, form.unit.data or "", form.weakness.data or "", current_account(), today())
    except prevention.UnknownTag:
        db.session().rollback()
        flash(_("Choose a unit and a kind of weakness from the lists."), "error")
    else:
        flash(_("The case was tagged for the analysis for prevention."), "success")
    return redirect(url_for("officer_cases.show", case_id=case_id) + "#prevention", 303)


@bp.get("/prevention")
@roles(Role.OFFICER, Role.SUPERVISOR)
def index():
    org = settings().organisation
    by_year = prevention.counts(db.session())
    units = {u.key: _label(u, {}) for u in org.units}
    kinds = {w.key: _label(w, WEAKNESS_LABELS) for w in org.weaknesses}
    per_unit: Counter = Counter()
    for counter in by_year.values():
        for (unit, _kind), n in counter.items():
            per_unit[unit] += n
    chart_rows = [publication.Row(key, units.get(key, key), per_unit.get(key, 0)) for key in [*units, *sorted(set(per_unit) - set(units))]]
    chart = publication.bar_chart(_("Cases by unit concerned, all fiscal years"), chart_rows, "")
    return render_template("officer/prevention.html", by_year=dict(sorted(by_year.items(), reverse=True)), units=units, kinds=kinds, chart=chart)
