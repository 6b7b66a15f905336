"""Translated names of the values stored in plain columns (categories, statuses, ...)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from flask import Flask, current_app
from flask_babel import get_locale, gettext, ngettext
from flask_babel import lazy_gettext as _l

from .config import Organisation

if TYPE_CHECKING:
    from .cases import DaysLeft

CATEGORY_LABELS = {
    "bribery": _l("Bribery, gifts or other benefits"),
    "procurement": _l("Procurement and bid rigging"),
    "budget_fraud": _l("Budget and financial fraud"),
    "conflict_of_interest": _l("Conflict of interest"),
    "personnel": _l("Abuse in hiring, promotion or other personnel matters"),
    "public_property": _l("Misuse of public property"),
    "unfair_service": _l("Unfair or discriminatory service"),
    "abuse_of_authority": _l("Abuse of authority or local influence"),
    "other": _l("Other corruption or misconduct by officials"),
}

STATUS_LABELS = {
    "received": _l("Received"),
    "acknowledged": _l("Acknowledged"),
    "under_review": _l("Under review"),
    "investigating": _l("Being investigated"),
    "referred": _l("Referred to another agency"),
    "closed": _l("Closed"),
}

OUTCOME_LABELS = {
    "substantiated": _l("The allegation was substantiated"),
    "unsubstantiated": _l("The allegation was not substantiated"),
    "insufficient_information": _l("There was not enough information to act on"),
    "outside_jurisdiction": _l("The matter is outside this organisation's authority"),
}


CHANNEL_LABELS = {
    "web": _l("This website"),
    "phone": _l("Telephone"),
    "letter": _l("Letter"),
    "walk_in": _l("In person"),
    "email": _l("E-mail"),
    "general_channel": _l("Passed on from the general complaints channel"),
}

AGENCY_LABELS = {
    "nacc": _l("National Anti-Corruption Commission (NACC)"),
    "pacc": _l("Public Sector Anti-Corruption Commission (PACC)"),
    "state_audit_office": _l("State Audit Office"),
    "ombudsman": _l("Office of the Ombudsman"),
    "police": _l("The police"),
    "other": _l("Another agency"),
}

ROLE_LABELS = {
    "officer": _l("Designated officer"),
    "supervisor": _l("Supervisor"),
    "admin": _l("Administrator"),
}

#: What an audit entry says was done (audit.ACTIONS); an action without a label here is
#: shown by its name.
ACTION_LABELS = {
    "login": _l("Signed in"),
    "login_failed": _l("Failed sign-in"),
    "logout": _l("Signed out"),
    "unlock": _l("Key unlocked"),
    "passphrase_changed": _l("Changed own passphrase"),
    "totp_enrolled": _l("Turned on the second factor"),
    "recovery_code_used": _l("Used a recovery code"),
    "account_created": _l("Created an account"),
    "account_changed": _l("Changed an account"),
    "account_disabled": _l("Disabled an account"),
    "passphrase_reset": _l("Reset a passphrase"),
    "second_factor_reset": _l("Reset a second factor"),
    "case_list": _l("Listed cases"),
    "case_view": _l("Viewed a case's details"),
    "tip_decrypt": _l("Read a case"),
    "file_download": _l("Downloaded a file"),
    "case_export": _l("Exported a case"),
    "status_change": _l("Moved a case to a new step"),
    "assign": _l("Assigned a case"),
    "deadline_extended": _l("Set a new deadline"),
    "message_sent": _l("Wrote to the reporter"),
    "note_added": _l("Added a note"),
    "tip_recorded": _l("Recorded a tip"),
    "identity_requested": _l("Asked to open an identity"),
    "identity_approved": _l("Approved opening an identity"),
    "identity_refused": _l("Refused opening an identity"),
    "identity_revealed": _l("Opened an identity"),
    "key_added": _l("Registered a key"),
    "key_certified": _l("Key certified by the recovery key"),
    "key_retired": _l("Retired a key"),
    "key_revoked": _l("Revoked a key"),
    "rewrap": _l("Re-wrapped stored cases"),
    "access_granted": _l("Stored cases given to the current keys"),
    "recovery_used": _l("Used the recovery key"),
    "audit_viewed": _l("Read the audit trail"),
    "notices_sent": _l("Sent notices"),
}


def category_label(organisation: Organisation, key: str) -> str:
    category = organisation.category(key)
    locale = get_locale()
    if category is not None and (category.label_th or category.label_en):
        if locale is not None and locale.language == "en" and category.label_en:
            return category.label_en
        return category.label_th or category.label_en or key
    return str(CATEGORY_LABELS.get(key, key))


def category_choices(organisation: Organisation) -> list[tuple[str, str]]:
    return [(c.key, category_label(organisation, c.key)) for c in organisation.categories]


def organisation_name(organisation: Organisation) -> str:
    locale = get_locale()
    return organisation.name_en if locale is not None and locale.language == "en" else organisation.name_th


def days_left(left: DaysLeft) -> str:
    """'3 days left', 'due today', '2 days late', or 'the deadline has passed' (late by no
    whole working day, on a weekend after a Friday deadline): one deadline of
    cases.deadline_state, in the same words on the case list and the case page."""
    if left.late:
        if left.days == 0:
            return gettext("the deadline has passed")
        return ngettext("%(num)d day late", "%(num)d days late", -left.days)
    if left.days > 0:
        return ngettext("%(num)d day left", "%(num)d days left", left.days)
    return gettext("due today")


def waiting_time(seconds: int) -> str:
    """'about 40 minutes', 'about 2 hours and 5 minutes': how long a refused reporter must
    wait, rounded up to the minute."""
    minutes = max(1, -(-seconds // 60))
    if minutes < 60:
        return ngettext("about %(num)d minute", "about %(num)d minutes", minutes)
    hours, rest = divmod(minutes, 60)
    said = ngettext("about %(num)d hour", "about %(num)d hours", hours)
    if rest:
        said = gettext("%(hours)s and %(minutes)s", hours=said, minutes=ngettext("%(num)d minute", "%(num)d minutes", rest))
    return said


def deadline_distance(organisation: Organisation, due: dt.date, today: dt.date) -> str:
    """'in 3 working days', 'today', '2 days late': a deadline seen from today, in words a
    reporter reads, saying which kind of day is counted. Lateness is judged by the dates:
    on the Saturday after a Friday deadline no working day has passed, yet it is late."""
    from .cases import days_between

    if due == today:
        return gettext("today")
    working = organisation.day_count == "working"
    if due > today:
        days = days_between(organisation, today, due)
        if working and days > 0:
            return ngettext("in %(num)d working day", "in %(num)d working days", days)
        return ngettext("in %(num)d day", "in %(num)d days", (due - today).days)
    days = days_between(organisation, due, today)
    if not working:
        return ngettext("%(num)d day late", "%(num)d days late", days)
    if days == 0:
        return gettext("the deadline has passed")
    return ngettext("%(num)d working day late", "%(num)d working days late", days)


def init_app(app: Flask) -> None:
    app.jinja_env.globals["organisation"] = lambda: organisation_name(
        current_app.extensions["whistle.settings"].organisation
    )
    app.jinja_env.globals.update(
        STATUS_LABELS=STATUS_LABELS,
        OUTCOME_LABELS=OUTCOME_LABELS,
        CHANNEL_LABELS=CHANNEL_LABELS,
        AGENCY_LABELS=AGENCY_LABELS,
        ROLE_LABELS=ROLE_LABELS,
        days_left=days_left,
        deadline_distance=lambda due: deadline_distance(
            current_app.extensions["whistle.settings"].organisation, due, current_app.extensions["whistle.clock"]()
        ),
        category_label=lambda key: category_label(current_app.extensions["whistle.settings"].organisation, key),
    )
