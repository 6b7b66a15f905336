"""The audit trail: every look at a case and every change, in a hash-chained log.

Each entry's hash covers the previous entry's hash and its own fields, so editing,
deleting or reordering an entry breaks every link after it; `verify` names the first
broken one. Entries are added with `record` in the same transaction as the change they
describe (the service's own commit), so a change that committed cannot lack its entry and
an entry cannot describe a change that rolled back.

Truncating the tail of a chain leaves a shorter, valid chain. To catch that, the head
(its sequence number and hash) is also written outside the database: `anchor` appends it
to a file in the instance folder (run daily by deploy/systemd/whistle-audit-anchor.timer)
and `verify` checks the chain still passes through every anchored head.

Entries never hold tip content, a tracking code or anything a reporter wrote: only who,
what, which case and when (to the minute).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .models import Account, AuditEntry, AuditHead

GENESIS = bytes(32)
_LABEL = b"whistle audit v1"

#: What an entry may say it did; anything else is a programming error.
ACTIONS = frozenset(
    {
        "login", "login_failed", "logout", "unlock", "passphrase_changed", "totp_enrolled",
        "recovery_code_used", "account_created", "account_changed", "account_disabled",
        "case_list", "case_view", "tip_decrypt", "file_download", "case_export",
        "status_change", "assign", "deadline_extended", "message_sent", "note_added",
        "tip_recorded", "identity_requested", "identity_approved", "identity_refused",
        "identity_revealed", "key_added", "key_retired", "access_granted", "rewrap",
        "recovery_used", "report_written", "report_signed_off", "report_published", "tags_changed",
        "rating_read", "audit_viewed", "settings_viewed", "key_certified", "key_revoked", "passphrase_reset",
        "second_factor_reset", "notices_sent",
    }
)


class UnknownAction(ValueError):
    pass


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0, tzinfo=None)


def entry_hash(prev_hash: bytes, seq: int, at: dt.datetime, actor: str, action: str, case_id: int | None, detail: str) -> bytes:
    """The hash of one entry: its predecessor's hash and its own fields, unambiguously."""
    fields = json.dumps(
        [seq, at.isoformat(timespec="minutes"), actor, action, case_id, detail],
        ensure_ascii=True,
        separators=(",", ":"),
    ).encode()
    return hashlib.sha256(_LABEL + prev_hash + len(fields).to_bytes(4, "big") + fields).digest()


def record(
    session: Session,
    action: str,
    actor: Account | None,
    case_id: int | None = None,
    now: dt.datetime | None = None,
    **detail: Any,
) -> AuditEntry:
    """Append an entry to the chain, in the caller's transaction (the caller commits)."""
    if action not in ACTIONS:
        raise UnknownAction(action)
    # Take the head's row lock first (PostgreSQL's row lock, SQLite's write lock), so a
    # concurrent append waits here and then reads the head this one leaves.
    # The head row is made by the migration that made the table (0003).
    # One statement takes the lock and reads the head (RETURNING: PostgreSQL, SQLite 3.35+).
    head = session.execute(
        update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq).returning(AuditHead.seq, AuditHead.hash)
    ).one()
    seq = head.seq + 1
    at = now or _now()
    label = actor.username if actor is not None else "system"
    text = json.dumps(detail, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    digest = entry_hash(head.hash, seq, at, label, action, case_id, text)
    entry = AuditEntry(
        seq=seq,
        at=at,
        actor_id=actor.id if actor is not None else None,
        actor=label,
        action=action,
        case_id=case_id,
        detail=text,
        prev_hash=head.hash,
        hash=digest,
    )
    session.add(entry)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=digest))
    return entry


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Page:
    rows: list[AuditEntry]
    total: int
    page: int
    pages: int


PER_PAGE = 100


def entries(session: Session, *, case_id: int | None = None, actor_id: int | None = None, page: int = 1) -> Page:
    """One page of the trail, newest first, filtered by case and by person."""
    conditions = []
    if case_id is not None:
        conditions.append(AuditEntry.case_id == case_id)
    if actor_id is not None:
        conditions.append(AuditEntry.actor_id == actor_id)
    total = session.scalar(select(func.count()).select_from(AuditEntry).where(*conditions)) or 0
    pages = max(1, -(-total // PER_PAGE))
    page = min(max(1, page), pages)
    rows = session.scalars(
        select(AuditEntry).where(*conditions).order_by(AuditEntry.seq.desc()).limit(PER_PAGE).offset((page - 1) * PER_PAGE)
    ).all()
    return Page(list(rows), total, page, pages)


def details(entry: AuditEntry) -> list[tuple[str, str]]:
    """An entry's details as (name, value) pairs to show; never anything but what
    `record` was given (which never holds content)."""
    try:
        doc = json.loads(entry.detail)
    except ValueError:
        return [("detail", entry.detail)]
    if not isinstance(doc, dict):
        return [("detail", str(doc))]
    return [(str(k), v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)) for k, v in sorted(doc.items())]


# --------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class Break:
    """The first place the chain does not hold, in words an auditor can act on."""

    seq: int
    reason: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.reason}"


def _walk(entries: Iterable[AuditEntry]) -> tuple[Break | None, dict[int, bytes]]:
    hashes: dict[int, bytes] = {}
    prev, expected_seq = GENESIS, 1
    for e in entries:
        if e.seq != expected_seq:
            reason = "missing or moved" if e.seq > expected_seq else "out of order"
            return Break(expected_seq, f"{reason} (found entry {e.seq} where entry {expected_seq} belongs)"), hashes
        if e.prev_hash != prev:
            return Break(e.seq, "does not follow the entry before it (its link was changed, or an entry was removed)"), hashes
        if entry_hash(prev, e.seq, e.at, e.actor, e.action, e.case_id, e.detail) != e.hash:
            return Break(e.seq, "was altered after it was written"), hashes
        hashes[e.seq] = e.hash
        prev, expected_seq = e.hash, e.seq + 1
    return None, hashes


def verify(session: Session, anchors: list[tuple[int, bytes]] = ()) -> Break | None:
    """None if the chain is whole and passes through every anchored head; else the first break.

    Entries are read in the order they were inserted (their primary key), so reordering
    rows, not only editing them, is seen.
    """
    entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).yield_per(1000)
    broken, hashes = _walk(entries)
    if broken is not None:
        return broken
    for seq, digest in anchors:
        if seq not in hashes:
            return Break(seq, "is anchored outside the database but is no longer in it (the log was cut short)")
        if hashes[seq] != digest:
            return Break(seq, "differs from the copy anchored outside the database")
    head_seq, head_hash = head(session)
    last = max(hashes) if hashes else 0
    if head_seq != last or (last and head_hash != hashes[last]):
        return Break(min(head_seq, last + 1), "the chain's recorded head does not match its last entry (entries were removed from its end)")
    return None


def head(session: Session) -> tuple[int, bytes]:
    """The chain's head: its last sequence number (0 when empty) and hash."""
    row = session.get(AuditHead, 1)
    return (row.seq, row.hash) if row is not None else (0, GENESIS)


# --------------------------------------------------------------------------- anchors


def read_anchors(path: Path) -> list[tuple[int, bytes]]:
    """(seq, hash) of every head written to the anchor file; a missing file has none."""
    anchors = []
    if not path.exists():
        return anchors
    for line in path.read_text("ascii").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            anchors.append((int(parts[1]), bytes.fromhex(parts[2])))
    return anchors


def anchor(session: Session, path: Path, today: dt.date) -> tuple[int, bytes] | None:
    """Append the chain's head to the anchor file (`date seq hash`); None if the chain is empty."""
    seq, digest = head(session)
    if seq == 0:
        return None
    with open(path, "a", encoding="ascii") as fh:
        fh.write(f"{today.isoformat()} {seq} {digest.hex()}\n")
    return seq, digest
