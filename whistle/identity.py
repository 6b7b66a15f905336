"""Identity on request: a reporter's confidential name and contact, opened only for a
stated reason that a supervisor approved (DESIGN §7).

The identity is sealed apart from the tip, to the officers' keys and the recovery key
(items.seal_identity): the cryptography cannot tell an approved officer from another, as
it cannot for the tip. What keeps it shut in the service is this module's gate, and every
step is on the audit trail in the transaction of the step: an officer asks with a reason
(`identity_requested`); a supervisor other than the asker approves or refuses it
(`identity_approved`, `identity_refused`); only then may the asking officer open it, each
look recorded (`identity_revealed`). The first look under an approval adds a dated step
that the reporter sees on their status page.

Supervisors read the reason and the case's metadata, never content: the form asks the
officer not to quote the report in the reason.

Services here commit their own transaction.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from . import audit, crypto, items
from .models import Account, EventKind, IdentityRequest, Report, Role, StatusEvent

#: A stated reason: long enough to say something, short enough to read at a glance.
MIN_REASON = 20
MAX_REASON = 2000


class NoIdentity(LookupError):
    """The reporter gave no name or contact: there is nothing to open."""


class WrongRole(PermissionError):
    """Officers ask and open; supervisors decide."""


class RequestOpen(Exception):
    """This officer already has a request on this case waiting or approved."""


class ReasonLength(ValueError):
    """The reason is too short to be a reason, or too long."""


class RequestNotFound(LookupError):
    pass


class AlreadyDecided(Exception):
    """The request was approved or refused already."""


class OwnRequest(PermissionError):
    """Nobody decides their own request."""


class NotApproved(PermissionError):
    """This officer holds no approved request for this case."""


def _require(actor: Account, role: Role) -> None:
    if actor.role is not role or actor.disabled_on is not None:
        raise WrongRole(actor.role.value)


def requests_for(session: Session, report: Report) -> list[IdentityRequest]:
    """Every request made on a case, oldest first."""
    return list(session.scalars(
        select(IdentityRequest).options(selectinload(IdentityRequest.requester), selectinload(IdentityRequest.decider))
        .where(IdentityRequest.report_id == report.id).order_by(IdentityRequest.id)
    ))


def _open_request(session: Session, report: Report, actor: Account) -> IdentityRequest | None:
    """The actor's latest request on the case, if it is waiting or approved."""
    latest = session.scalar(
        select(IdentityRequest)
        .where(IdentityRequest.report_id == report.id, IdentityRequest.requested_by == actor.id)
        .order_by(IdentityRequest.id.desc()).limit(1)
    )
    return latest if latest is not None and latest.approved is not False else None


def request_reveal(session: Session, report: Report, actor: Account, reason: str, today: dt.date) -> IdentityRequest:
    """An officer asks to open the case's identity, for a stated reason. Commits."""
    _require(actor, Role.OFFICER)
    if report.identity is None:
        raise NoIdentity(report.id)
    reason = reason.strip()
    if not MIN_REASON <= len(reason) <= MAX_REASON:
        raise ReasonLength(len(reason))
    if _open_request(session, report, actor) is not None:
        raise RequestOpen(report.id)
    request = IdentityRequest(report_id=report.id, requested_by=actor.id, requested_on=today, reason=reason)
    session.add(request)
    session.flush()
    audit.record(session, "identity_requested", actor, report.id, request=request.id)
    session.commit()
    return request


def pending_requests(session: Session) -> list[IdentityRequest]:
    """Requests waiting for a supervisor, oldest first, with their cases' metadata."""
    return list(session.scalars(
        select(IdentityRequest)
        .options(selectinload(IdentityRequest.requester), selectinload(IdentityRequest.report).load_only(
            Report.id, Report.category, Report.channel, Report.status, Report.received_on, Report.purged_on,
        ))
        .where(IdentityRequest.approved.is_(None)).order_by(IdentityRequest.id)
    ))


def recent_decisions(session: Session, limit: int = 20) -> list[IdentityRequest]:
    """The latest decided requests, newest first."""
    return list(session.scalars(
        select(IdentityRequest)
        .options(selectinload(IdentityRequest.requester), selectinload(IdentityRequest.decider))
        .where(IdentityRequest.approved.is_not(None)).order_by(IdentityRequest.decided_on.desc(), IdentityRequest.id.desc())
        .limit(limit)
    ))


def decide(session: Session, request_id: int, approve: bool, actor: Account, today: dt.date) -> IdentityRequest:
    """A supervisor approves or refuses a waiting request, never their own. Commits."""
    _require(actor, Role.SUPERVISOR)
    request = session.get(IdentityRequest, request_id)
    if request is None or request.report.purged_on is not None:
        raise RequestNotFound(request_id)
    if request.requested_by == actor.id:
        raise OwnRequest(request_id)
    if request.approved is not None:
        raise AlreadyDecided(request_id)
    request.approved = approve
    request.decided_by = actor.id
    request.decided_on = today
    action = "identity_approved" if approve else "identity_refused"
    audit.record(session, action, actor, request.report_id, request=request.id)
    session.commit()
    return request


def reveal(session: Session, report: Report, actor: Account, key: crypto.PrivateKey, today: dt.date) -> dict[str, str]:
    """The reporter's name and contact, for the officer whose request was approved; each
    look is recorded, and the first under an approval is a step the reporter sees. Commits.
    `crypto.OpenError` if the officer's key cannot open it (nothing is recorded then)."""
    _require(actor, Role.OFFICER)
    if report.identity is None:
        raise NoIdentity(report.id)
    request = _open_request(session, report, actor)
    if request is None or request.approved is not True:
        raise NotApproved(report.id)
    identity = items.open_identity(report, key)
    if request.revealed_on is None:
        request.revealed_on = today
        report.events.append(
            StatusEvent(kind=EventKind.IDENTITY_OPENED, status=report.status, on=today, actor_id=actor.id)
        )
    audit.record(session, "identity_revealed", actor, report.id, request=request.id)
    session.commit()
    return identity
