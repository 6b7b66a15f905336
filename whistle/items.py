"""A case's sealed items: what each one holds, and the one way to seal and open it.

Every item is sealed for its context, the case and its slot (cases.context, crypto §4),
so that an item copied to another case or slot does not open. What a reader must take as
the officers' words (their messages to the reporter, their notes) is also signed by the
officer's key (crypto §10), and counts only if the signer's certificate checks under the
instance's anchor (keyring.Trust); anything else is shown as unverified, never as theirs.

Version 1 items (written before contexts existed) still open, marked `legacy`: they are
bound to nothing, so an officer's legacy message is not shown to the reporter until it is
re-bound (`whistle keys rebind`).

Plaintexts: the tip is a JSON object of the reporter's fields; the identity a reporter
chose to give is a JSON object {"name", "contact"}, sealed apart from the tip; the rating's
comment is {"comment"}; a message or a note is a
JSON object {"text", "files"}, where "files" lists the id and SHA-256 of each attached
file, so an officer's signature covers the files too, and a reporter's message that adds
to their report (rather than answering in the conversation) also holds "adds": true, inside
the seal, so nobody without a key can turn a reply into an addition or the reverse; a file's metadata is a JSON object
{"name", "type", "size", "cleaned", "sha256", "in"}, "in" naming the item it belongs to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from . import crypto
from .cases import IDENTITY_SLOT, RATING_SLOT, TIP_SLOT, context, file_slot, message_slot, note_slot
from .models import Attachment, Author, Message, Note, Report


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --------------------------------------------------------------------------- the tip


def seal_tip(report: Report, fields: dict[str, str], recipients: Sequence[crypto.PublicKey]) -> bytes:
    return crypto.seal(_json(fields), recipients, context(report, TIP_SLOT))


def open_tip(report: Report, key: crypto.PrivateKey) -> dict[str, str]:
    """The reporter's fields; `crypto.OpenError` if this key cannot open them here."""
    fields = json.loads(crypto.open_sealed(report.content, key, context(report, TIP_SLOT)))
    if not isinstance(fields, dict):
        raise crypto.OpenError()
    return fields


# --------------------------------------------------------------------------- the identity

#: What a reporter may give of themselves, confidentially (DESIGN §7, identity on request).
IDENTITY_FIELDS = ("name", "contact")


def seal_identity(report: Report, identity: dict[str, str], recipients: Sequence[crypto.PublicKey]) -> bytes:
    """The reporter's name and contact, sealed to `recipients` (the officers and the
    recovery key, never the reporter's own key) for this case's identity slot alone."""
    return crypto.seal(_json({k: identity.get(k, "") for k in IDENTITY_FIELDS}), recipients, context(report, IDENTITY_SLOT))


def open_identity(report: Report, key: crypto.PrivateKey) -> dict[str, str]:
    """The reporter's name and contact; `crypto.OpenError` if there is none or this key
    cannot open it here. Callers check the approval first (identity.py)."""
    if report.identity is None:
        raise crypto.OpenError()
    doc = json.loads(crypto.open_sealed(report.identity, key, context(report, IDENTITY_SLOT)))
    if not isinstance(doc, dict):
        raise crypto.OpenError()
    return {k: str(doc.get(k) or "") for k in IDENTITY_FIELDS}


# --------------------------------------------------------------------------- the rating's comment


def seal_rating_comment(report: Report, comment: str, recipients: Sequence[crypto.PublicKey]) -> bytes:
    """The reporter's comment on the handling, sealed to the officers and the recovery key."""
    return crypto.seal(_json({"comment": comment}), recipients, context(report, RATING_SLOT))


def open_rating_comment(report: Report, sealed: bytes, key: crypto.PrivateKey) -> str:
    """`crypto.OpenError` if this key cannot open it here."""
    doc = json.loads(crypto.open_sealed(sealed, key, context(report, RATING_SLOT)))
    if not isinstance(doc, dict) or not isinstance(doc.get("comment"), str):
        raise crypto.OpenError()
    return doc["comment"]


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class FileMeta:
    name: str
    type: str
    size: int
    cleaned: str | None
    sha256: str | None
    belongs_to: str | None


def seal_file_meta(report: Report, attachment: Attachment, meta: FileMeta, recipients: Sequence[crypto.PublicKey]) -> bytes:
    doc = {
        "name": meta.name, "type": meta.type, "size": meta.size, "cleaned": meta.cleaned,
        "sha256": meta.sha256, "in": meta.belongs_to,
    }
    return crypto.seal(_json(doc), recipients, context(report, file_slot(attachment.blob_name, "meta")))


def open_file_meta(report: Report, attachment: Attachment, key: crypto.PrivateKey, expected_in: str) -> FileMeta:
    """A file's metadata; `crypto.OpenError` if it does not open here, or says it belongs
    to another item of the case than the one it is listed under (moved by a writer)."""
    doc = json.loads(crypto.open_sealed(attachment.meta, key, context(report, file_slot(attachment.blob_name, "meta"))))
    if not isinstance(doc, dict):
        raise crypto.OpenError()
    belongs_to = doc.get("in")
    if belongs_to is not None and belongs_to != expected_in:
        raise crypto.OpenError()
    return FileMeta(str(doc.get("name") or ""), str(doc.get("type") or ""), int(doc.get("size") or 0),
                    doc.get("cleaned"), doc.get("sha256"), belongs_to)


def file_context(report: Report, attachment: Attachment) -> crypto.Context:
    return context(report, file_slot(attachment.blob_name, "data"))


def parent_slot(message: Message | None) -> str:
    """The slot of the item a file is attached to: the tip, or a message."""
    return TIP_SLOT if message is None else message_slot(message.seq, message.author)


# --------------------------------------------------------------------------- messages and notes


@dataclass(frozen=True)
class Opened:
    """An opened message or note. `verified`: for an officer's item, whether its signature
    checked under the anchor (False: its text is withheld from reporters); always None for
    the reporter's own. `legacy`: sealed before contexts and signatures (version 1)."""

    text: str
    files: list[dict] = field(default_factory=list)
    verified: bool | None = None
    legacy: bool = False
    readable: bool = True
    #: A reporter's addition to their report (sealed inside the message, never a column).
    adds: bool = False


UNREADABLE = Opened("", readable=False)


def _payload(text: str, files: Iterable[tuple[str, str]], adds: bool = False) -> bytes:
    doc: dict[str, object] = {"text": text, "files": [{"id": blob, "sha256": digest} for blob, digest in files]}
    if adds:
        doc["adds"] = True
    return _json(doc)


def _parse(plain: bytes, legacy: bool) -> tuple[str, list[dict], bool]:
    if legacy:  # version 1 held the text alone
        return plain.decode("utf-8"), [], False
    doc = json.loads(plain)
    if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
        raise ValueError("not a message")
    files = doc.get("files") or []
    if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
        raise ValueError("not a message")
    return doc["text"], files, doc.get("adds") is True


def seal_message(
    report: Report,
    message: Message,
    text: str,
    files: Iterable[tuple[str, str]],
    recipients: Sequence[crypto.PublicKey],
    signing_key: crypto.SigningKey | None = None,
    *,
    adds: bool = False,
) -> bytes:
    """Seal a message for its place in the thread; an officer's must be signed. `adds`: a
    reporter's addition to their report (only the reporter adds)."""
    ctx = context(report, message_slot(message.seq, message.author))
    if message.author is Author.OFFICER:
        if signing_key is None:
            raise ValueError("an officer's message is signed by the officer")
        if adds:
            raise ValueError("only the reporter adds to the report")
        return crypto.seal_signed(_payload(text, files), recipients, ctx, signing_key)
    return crypto.seal(_payload(text, files, adds), recipients, ctx)


def reseal_message(
    report: Report,
    message: Message,
    text: str,
    recipients: Sequence[crypto.PublicKey],
    signing_key: crypto.SigningKey | None,
) -> bytes:
    """A message sealed anew for its place (re-binding a version 1 one); an officer's is
    signed by whoever vouches for it."""
    return seal_message(report, message, text, (), recipients, signing_key)


def _open_signed_or_not(
    sealed: bytes,
    key: crypto.PrivateKey,
    ctx: crypto.Context,
    signed: bool,
    signers: Sequence[crypto.VerifyKey] | None,
    memo: crypto.SignatureMemo | None,
) -> Opened:
    """`signers` None: an officer reading offline without an anchor; the signature is not
    checked and `verified` stays None (never for a reporter's page)."""
    try:
        if crypto.is_legacy(sealed):
            text, files, _adds = _parse(crypto.open_sealed(sealed, key), legacy=True)
            return Opened(text, files, verified=False if signed else None, legacy=True)
        if not signed:
            text, files, adds = _parse(crypto.open_sealed(sealed, key, ctx, accept_legacy=False), legacy=False)
            return Opened(text, files, adds=adds)
        if signers is None:
            text, files, _adds = _parse(crypto.unsafe_open_signed_unchecked(sealed, key, ctx), legacy=False)
            return Opened(text, files)
        try:
            opened = crypto.open_signed(sealed, key, ctx, signers, memo)
        except crypto.BadSignature:
            return Opened("", verified=False)
        text, files, _adds = _parse(opened.plaintext, legacy=False)
        return Opened(text, files, verified=True)
    except (crypto.OpenError, ValueError, UnicodeDecodeError):
        return UNREADABLE


def open_message(
    report: Report,
    message: Message,
    key: crypto.PrivateKey,
    signers: Sequence[crypto.VerifyKey] | None,
    memo: crypto.SignatureMemo | None = None,
) -> Opened:
    """Open a message for its place in the thread; an officer's is checked against
    `signers` (keyring.signers; `memo`: keyring.Trust.memo). Never raises: an item that
    does not open is UNREADABLE."""
    ctx = context(report, message_slot(message.seq, message.author))
    return _open_signed_or_not(message.body, key, ctx, message.author is Author.OFFICER, signers, memo)


def seal_note(report: Report, note: Note, text: str, recipients: Sequence[crypto.PublicKey], signing_key: crypto.SigningKey) -> bytes:
    return crypto.seal_signed(_payload(text, ()), recipients, context(report, note_slot(note.seq)), signing_key)


def open_note(
    report: Report,
    note: Note,
    key: crypto.PrivateKey,
    signers: Sequence[crypto.VerifyKey] | None,
    memo: crypto.SignatureMemo | None = None,
) -> Opened:
    return _open_signed_or_not(note.body, key, context(report, note_slot(note.seq)), True, signers, memo)


def next_seq(rows: Iterable[Message] | Iterable[Note]) -> int:
    """The next place in a case's thread or notes (a unique constraint catches a race)."""
    return max((r.seq for r in rows), default=0) + 1
