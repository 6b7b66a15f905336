"""Re-binding: moving a case's version 1 items (sealed before contexts and signatures
existed) to version 2, with a private key that opens them (`whistle keys rebind`).

A version 1 item opens anywhere: a database writer could have moved it, or planted one
made with the public keys alone. Re-binding seals each where it stands now, so it is worth
what its reader checked before: `whistle keys rebind --list` shows what would change, and
officers' messages are signed by the re-binding officer only with `--sign-officer-messages`,
after the officers have read them and recognised them as their own. Without that flag a
legacy officer message is left as it is: officers still read it, marked as legacy, and the
reporter does not see it.

Files are re-sealed chunk by chunk into a new blob (flat memory); the old blob is deleted
after the commit that points at the new one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import cases, crypto, items, keyring
from .models import Attachment, Author, Report
from .storage import BlobStore


@dataclass
class Legacy:
    """The version 1 items of one case."""

    case_id: int
    tip: bool = False
    messages: list[tuple[int, Author]] = field(default_factory=list)  # (seq, author)
    files: int = 0

    @property
    def count(self) -> int:
        return int(self.tip) + len(self.messages) + self.files


def find_legacy(session: Session) -> list[Legacy]:
    """Every case with version 1 items, and which ones (no key needed)."""
    found = []
    for report in session.scalars(select(Report).where(Report.purged_on.is_(None)).order_by(Report.id)):
        legacy = Legacy(report.id, tip=crypto.is_legacy(report.content))
        legacy.messages = [(m.seq, m.author) for m in report.messages if crypto.is_legacy(m.body)]
        legacy.files = sum(1 for a in report.attachments if crypto.is_legacy(a.meta))
        if legacy.count:
            found.append(legacy)
    return found


def _rebind_file(
    store: BlobStore, report: Report, attachment: Attachment, key: crypto.PrivateKey, recipients: list[crypto.PublicKey]
) -> str:
    """Re-seal a file into a new blob and re-seal its metadata; returns the old blob's name."""
    meta = json.loads(crypto.open_sealed(attachment.meta, key))
    old_name = attachment.blob_name
    new_name, sink = store.new_incoming()
    try:
        with store.open(old_name) as source, sink:
            attachment.blob_name = new_name
            attachment.wraps = crypto.rebind_file_stream(
                source, sink, attachment.wraps, key, recipients, items.file_context(report, attachment)
            )
        store.claim(new_name)
    except BaseException:
        attachment.blob_name = old_name
        store.discard_incoming(new_name)
        raise
    belongs_to = items.parent_slot(attachment.message)
    file_meta = items.FileMeta(str(meta.get("name") or ""), str(meta.get("type") or ""), int(meta.get("size") or 0),
                               meta.get("cleaned"), None, belongs_to)
    attachment.meta = items.seal_file_meta(report, attachment, file_meta, recipients)
    return old_name


def rebind_all(
    session: Session,
    store: BlobStore,
    trust: keyring.Trust,
    key: crypto.PrivateKey,
    *,
    sign_officer_messages: bool = False,
) -> int:
    """Re-seal every version 1 item as version 2, each for where it stands. Commits case by
    case; returns how many items changed. `crypto.OpenError` if the key cannot open one
    (that case is left as it was)."""
    recipients = keyring.recipients(session, trust)
    changed = 0
    for legacy in find_legacy(session):
        report = cases.get_case(session, legacy.case_id)
        reporter = crypto.PublicKey.from_bytes(report.reporter_public_key)
        old_blobs: list[str] = []
        try:
            with session.no_autoflush:
                if legacy.tip:
                    report.content = items.seal_tip(report, json.loads(crypto.open_sealed(report.content, key)), recipients)
                    changed += 1
                for message in report.messages:
                    officer = message.author is Author.OFFICER
                    if not crypto.is_legacy(message.body) or (officer and not sign_officer_messages):
                        continue
                    text = crypto.open_sealed(message.body, key).decode("utf-8")
                    signing = key.signing_key if officer else None
                    message.body = items.reseal_message(report, message, text, [*recipients, reporter], signing)
                    changed += 1
                for attachment in report.attachments:
                    if crypto.is_legacy(attachment.meta):
                        old_blobs.append(_rebind_file(store, report, attachment, key, recipients))
                        changed += 1
            session.commit()
        except BaseException:
            session.rollback()
            raise
        for name in old_blobs:
            store.delete(name)
    return changed
