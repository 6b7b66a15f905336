"""Who can open the stored cases, as the officers' workspace changes it: certifying a new
officer's key with the recovery key, re-wrapping stored cases for the current recipients
in batches, the re-wrap work still to do, and removing an officer's key.

The rules are keyring's: a key receives new tips and signs only once the recovery key
certified it (`keyring.certify`, which needs both private keys); giving it the cases
stored before needs a key that opens them (an officer's unlocked key, or the recovery
key), and so does taking them from a retired key. Each case records which recipients its
items are wrapped for (`Report.sealed_for`); a case whose record differs from the current
recipients is work still to do, shown to every certified officer until someone does it.

Every change here is on the audit trail in its own transaction: a certification, each
batch of a re-wrap (`rewrap`), the end of one (`access_granted`), a retired or revoked key.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from . import accounts, audit, crypto, keyring
from .models import Account, KeyRole, RecipientKey, Report

#: Cases re-wrapped per batch: each batch is one request of the progress page and one
#: transaction. 25 cases of five items took 0.24-0.30 s on a busy 2-core machine
#: (docs/benchmarks.md, "Re-wrapping stored cases"), a short step for the page.
REWRAP_BATCH = 25


class RecoveryKeyRefused(Exception):
    """The file is not a private key file, its passphrase is wrong, or it is not the key
    this instance's trust anchor names. `reason` says which, for the page."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CannotOpen(Exception):
    """This key does not open a case still to re-wrap; nothing of the batch changed."""

    def __init__(self, case_id: int) -> None:
        super().__init__(case_id)
        self.case_id = case_id


def _target_digest(session: Session, trust: keyring.Trust) -> bytes | None:
    """The current recipients' digest; None when there are none (no certified officer)."""
    try:
        return keyring.recipients_digest(keyring.recipients(session, trust))
    except keyring.MissingRecipients:
        return None


def _still_to_do(digest: bytes):
    return Report.purged_on.is_(None), or_(Report.sealed_for.is_(None), Report.sealed_for != digest)


def pending(session: Session, trust: keyring.Trust) -> int:
    """How many stored cases are not wrapped for exactly the current recipients."""
    digest = _target_digest(session, trust)
    if digest is None:
        return 0  # nothing to wrap for until an officer key is certified
    return session.scalar(select(func.count()).select_from(Report).where(*_still_to_do(digest))) or 0


@dataclass(frozen=True)
class KeyState:
    """Where an officer's key stands, for their pages."""

    key_id: str | None
    certified: bool
    retired: bool
    #: Cases still to re-wrap, and whether this key opens the first of them.
    pending: int
    can_rewrap: bool


def key_state(session: Session, trust: keyring.Trust, key: crypto.PrivateKey | None) -> KeyState:
    if key is None:
        return KeyState(None, False, False, 0, False)
    row = keyring.find_key(session, key.key_id)
    certified = row is not None and row.retired_on is None and trust.certified(row) is not None
    to_do, can = pending(session, trust), False
    digest = _target_digest(session, trust)
    if certified and to_do and digest is not None:
        first = session.scalars(select(Report.content).where(*_still_to_do(digest)).order_by(Report.id).limit(1)).first()
        try:
            can = first is not None and key.key_id in crypto.envelope_recipients(first)
        except crypto.OpenError:
            can = False
    return KeyState(key.key_id.hex(), certified, row is not None and row.retired_on is not None, to_do, can)


# --------------------------------------------------------------------------- certifying


def read_recovery_key(raw: bytes, passphrase: str, trust: keyring.Trust) -> crypto.PrivateKey:
    """The recovery key from its file's bytes and its passphrase, checked against the
    instance's anchor; `RecoveryKeyRefused` otherwise."""
    try:
        doc = keyring.document_from_bytes(raw)
        if doc.get("format") != keyring.PRIVATE_FORMAT or doc.get("role") != KeyRole.RECOVERY.value:
            raise RecoveryKeyRefused("not_a_recovery_key")
    except keyring.KeyFileError:
        raise RecoveryKeyRefused("not_a_recovery_key") from None
    try:
        recovery = keyring.unlock(doc, passphrase)
    except keyring.KeyFileError:
        raise RecoveryKeyRefused("wrong_passphrase") from None
    if recovery.public_key() != trust.anchor().public_key:
        raise RecoveryKeyRefused("not_the_anchor")
    return recovery


def certify(
    session: Session, trust: keyring.Trust, officer: crypto.PrivateKey, recovery: crypto.PrivateKey, account: Account, today: dt.date
) -> None:
    """Have the recovery key vouch for the officer's own unlocked key: new tips are sealed
    to it from now on. Commits."""
    row = keyring.find_key(session, officer.key_id)
    if row is not None and row.retired_on is not None:
        raise keyring.KeyFileError("this key was retired")
    keyring.certify(session, trust, officer, recovery, account.username, today)
    audit.record(session, "key_certified", account, key=officer.key_id.hex())
    session.commit()


@dataclass(frozen=True)
class CustodianVisit:
    certified_now: bool
    rewrapped: Batch | None


def custodian(
    session: Session, trust: keyring.Trust, officer: crypto.PrivateKey, recovery: crypto.PrivateKey, account: Account,
    today: dt.date, *, rewrap: bool,
) -> CustodianVisit:
    """What the recovery key does on the custodian's page: certify the officer's own key
    if it is not yet, and with `rewrap`, re-wrap every case still to do (the recovery
    ceremony, when no officer's key can). Commits each step."""
    certified_now = False
    if not key_state(session, trust, officer).certified:
        certify(session, trust, officer, recovery, account, today)
        certified_now = True
    done = rewrap_everything(session, trust, recovery, account, with_recovery=True) if rewrap else None
    return CustodianVisit(certified_now, done)


# --------------------------------------------------------------------------- re-wrapping


@dataclass(frozen=True)
class Batch:
    cases: int
    items: int
    remaining: int


def rewrap_batch(
    session: Session, trust: keyring.Trust, key: crypto.PrivateKey, actor: Account, *, with_recovery: bool = False,
    limit: int | None = None,
) -> Batch:
    """Re-wrap the next `limit` cases still to do for the current recipients, in one
    transaction with its audit entry. `CannotOpen` (nothing changed) at a case this key
    does not open. Commits."""
    targets = keyring.recipients(session, trust)
    digest = keyring.recipients_digest(targets)
    every_item = (selectinload(Report.messages), selectinload(Report.notes), selectinload(Report.attachments))
    rows = session.scalars(
        select(Report).options(*every_item).where(*_still_to_do(digest)).order_by(Report.id).limit(limit or REWRAP_BATCH)
    ).all()
    items = 0
    for report in rows:
        try:
            items += keyring.rewrap_case(report, key, targets)
        except crypto.OpenError:
            session.rollback()
            raise CannotOpen(report.id) from None
    session.flush()
    remaining = session.scalar(select(func.count()).select_from(Report).where(*_still_to_do(digest))) or 0
    if rows:
        by = "recovery key" if with_recovery else "officer key"
        audit.record(session, "rewrap", actor, cases=len(rows), items=items, first=rows[0].id, last=rows[-1].id, by=by)
        if not remaining:
            labels = sorted(r.label for r in keyring.active_keys(session) if r.role is KeyRole.OFFICER and trust.certified(r))
            audit.record(session, "access_granted", actor, officer_keys=labels)
    session.commit()
    return Batch(len(rows), items, remaining)


def rewrap_everything(session: Session, trust: keyring.Trust, key: crypto.PrivateKey, actor: Account, *, with_recovery: bool) -> Batch:
    """Every case still to do, batch after batch (each its own transaction), in one call:
    for the recovery key, which is forgotten at the end of the request that brought it."""
    cases = items = 0
    left = None
    while True:
        batch = rewrap_batch(session, trust, key, actor, with_recovery=with_recovery)
        cases, items = cases + batch.cases, items + batch.items
        # Stop when done, and should a batch ever leave as much to do as before, rather
        # than loop (the recipients changed under it: the next run takes up the rest).
        if not batch.remaining or not batch.cases or batch.remaining == left:
            return Batch(cases, items, batch.remaining)
        left = batch.remaining


# --------------------------------------------------------------------------- removing


@dataclass(frozen=True)
class Removal:
    #: The key no longer receives new tips (False: it is the last certified officer key,
    #: kept until another is certified, or the account had no key).
    retired: bool
    revoked: bool


def _last_certified(session: Session, trust: keyring.Trust, row: RecipientKey) -> bool:
    return not any(
        r.role is KeyRole.OFFICER and r.id != row.id and trust.certified(r) for r in keyring.active_keys(session)
    )


def remove_officer(
    session: Session, trust: keyring.Trust, account: Account, by: Account, today: dt.date, *, revoke: bool = False
) -> Removal:
    """Disable an officer's account and retire their key, so that nothing new is sealed to
    it; its wraps on stored cases go at the next re-wrap. With `revoke` (the key may be in
    someone else's hands), it is also listed as revoked in the trust anchor, so that its
    signatures stop counting, and retired even if it is the last (new tips are then
    refused until another officer key is certified). Commits."""
    accounts.stage_disable(session, account, by, today)
    row = officer_key_row(session, account)
    revoked = retired = False
    if revoke and account.key_id is not None:
        # The file first: should the commit fail, the key is revoked all the same.
        keyring.revoke_in_anchor(trust.path, account.key_id)
        audit.record(session, "key_revoked", by, target=account.username, key=account.key_id.hex())
        revoked = True
    if row is not None and row.retired_on is None and (revoke or not _last_certified(session, trust, row)):
        keyring.retire(session, row.key_id.hex(), today, allow_last=True)
        audit.record(session, "key_retired", by, target=account.username, key=row.key_id.hex())
        retired = True
    session.commit()
    return Removal(retired, revoked)


def retire_key(session: Session, trust: keyring.Trust, account: Account, by: Account, today: dt.date) -> bool:
    """Retire a disabled officer's key that was kept as the last certified one, once
    another is certified; False if it still is the last. Commits."""
    row = officer_key_row(session, account)
    if account.disabled_on is None or row is None or row.retired_on is not None or _last_certified(session, trust, row):
        return False
    keyring.retire(session, row.key_id.hex(), today, allow_last=True)
    audit.record(session, "key_retired", by, target=account.username, key=row.key_id.hex())
    session.commit()
    return True


def officer_key_row(session: Session, account: Account) -> RecipientKey | None:
    return keyring.find_key(session, account.key_id) if account.key_id is not None else None
