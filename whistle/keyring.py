"""Recipient keys: key files on disk, the registry of public keys in the database, and
re-wrapping stored secrets when the set of recipients changes.

A private key file holds the key sealed under a passphrase (Argon2id, then AES-256-GCM);
the server only ever stores public keys. Formats: docs/crypto.md.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import crypto
from .models import KeyRole, RecipientKey, Report

PRIVATE_FORMAT = "whistle-private-key"
PUBLIC_FORMAT = "whistle-public-key"
FILE_VERSION = 1
MIN_PASSPHRASE = 12


class KeyFileError(Exception):
    """A key file is unreadable, or the passphrase does not open it."""


class MissingRecipients(Exception):
    """New tips could not be sealed: an officer key or the recovery key is missing."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64 text")
    return base64.b64decode(text.encode("ascii"), validate=True)


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True)
class KeyInfo:
    role: KeyRole
    label: str
    public_key: crypto.PublicKey

    @property
    def key_id_hex(self) -> str:
        return self.public_key.key_id.hex()


def private_key_document(
    private_key: crypto.PrivateKey,
    passphrase: str,
    role: KeyRole,
    label: str,
    kdf: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The JSON document of a passphrase-protected private key file."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise KeyFileError(f"the passphrase must be at least {MIN_PASSPHRASE} characters")
    kdf = dict(kdf or crypto.PASSPHRASE_KDF)
    salt = os.urandom(16)
    public = private_key.public_key()
    doc: dict[str, Any] = {
        "format": PRIVATE_FORMAT,
        "version": FILE_VERSION,
        "role": role.value,
        "label": label,
        "key_id": public.key_id.hex(),
        "public_key": _b64(public.to_bytes()),
        "kdf": {"name": "argon2id", "salt": _b64(salt), **kdf},
    }
    wrapping_key = crypto.argon2id(passphrase.encode("utf-8"), salt, **kdf)
    doc["sealed"] = _b64(crypto.seal_with_key(wrapping_key, private_key.unsafe_to_bytes(), _canonical(doc)))
    return doc


def public_key_document(info: KeyInfo) -> dict[str, Any]:
    return {
        "format": PUBLIC_FORMAT,
        "version": FILE_VERSION,
        "role": info.role.value,
        "label": info.label,
        "key_id": info.key_id_hex,
        "public_key": _b64(info.public_key.to_bytes()),
    }


def write_new_file(path: Path, doc: dict[str, Any]) -> None:
    """Write a key file that must not exist yet, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")


def read_document(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != FILE_VERSION:
        raise KeyFileError(f"{path} is not a whistle key file of version {FILE_VERSION}")
    return doc


def key_info(doc: dict[str, Any]) -> KeyInfo:
    """The public part of a private or public key file."""
    try:
        public = crypto.PublicKey.from_bytes(_unb64(doc["public_key"]))
        info = KeyInfo(KeyRole(doc["role"]), str(doc["label"]), public)
    except (KeyError, ValueError, TypeError):
        raise KeyFileError("the key file is damaged") from None
    if info.key_id_hex != doc.get("key_id"):
        raise KeyFileError("the key file is damaged (key id does not match)")
    return info


def unlock(doc: dict[str, Any], passphrase: str) -> crypto.PrivateKey:
    """The private key from a private key file; `KeyFileError` on a wrong passphrase."""
    if doc.get("format") != PRIVATE_FORMAT:
        raise KeyFileError("this is not a private key file")
    try:
        kdf = doc["kdf"]
        salt = _unb64(kdf["salt"])
        params = {k: int(kdf[k]) for k in ("time_cost", "memory_cost", "parallelism")}
        sealed = _unb64(doc["sealed"])
    except (KeyError, ValueError, TypeError):
        raise KeyFileError("the key file is damaged") from None
    # Bounds before any work: a crafted file must not ask for terabytes of memory.
    if not (1 <= params["time_cost"] <= 64 and 8 <= params["memory_cost"] <= 4 * 1024 * 1024
            and 1 <= params["parallelism"] <= 64 and params["memory_cost"] >= 8 * params["parallelism"]):
        raise KeyFileError("the key file asks for key-derivation parameters out of range")
    aad = _canonical({k: v for k, v in doc.items() if k != "sealed"})
    wrapping_key = crypto.argon2id(passphrase.encode("utf-8"), salt, **params)
    try:
        private = crypto.PrivateKey.from_bytes(crypto.open_with_key(wrapping_key, sealed, aad))
    except (crypto.OpenError, ValueError):
        raise KeyFileError("wrong passphrase, or the key file is damaged") from None
    if private.public_key() != key_info(doc).public_key:
        raise KeyFileError("the key file is damaged (public and private parts differ)")
    return private


# --------------------------------------------------------------------------- registry


def register(session: Session, info: KeyInfo, today: dt.date) -> RecipientKey:
    existing = session.scalar(select(RecipientKey).where(RecipientKey.key_id == info.public_key.key_id))
    if existing is not None:
        raise KeyFileError(f"key {info.key_id_hex} is registered already")
    row = RecipientKey(
        key_id=info.public_key.key_id,
        role=info.role,
        label=info.label,
        public_key=info.public_key.to_bytes(),
        created_on=today,
    )
    session.add(row)
    return row


def active_keys(session: Session) -> list[RecipientKey]:
    return list(
        session.scalars(select(RecipientKey).where(RecipientKey.retired_on.is_(None)).order_by(RecipientKey.id))
    )


def recipients(session: Session) -> list[crypto.PublicKey]:
    """Every key a new secret must be sealed to; `MissingRecipients` if that set is unsafe."""
    rows = active_keys(session)
    roles = {r.role for r in rows}
    missing = [role.value for role in (KeyRole.OFFICER, KeyRole.RECOVERY) if role not in roles]
    if missing:
        raise MissingRecipients(
            "no active " + " and no active ".join(missing) + " public key is registered "
            "(see keys/README.md: `whistle keys new-officer`, `whistle keys new-recovery`)"
        )
    return [crypto.PublicKey.from_bytes(r.public_key) for r in rows]


def retire(session: Session, key_id_hex: str, today: dt.date, *, allow_last: bool = False) -> RecipientKey:
    """Stop sealing to a key. Refuses the last active key of its role unless `allow_last`:
    without an officer key and the recovery key the service accepts no tips."""
    row = session.scalar(select(RecipientKey).where(RecipientKey.key_id == bytes.fromhex(key_id_hex)))
    if row is None or row.retired_on is not None:
        raise KeyFileError(f"no active key {key_id_hex}")
    others = [r for r in active_keys(session) if r.role == row.role and r.id != row.id]
    if not others and not allow_last:
        raise KeyFileError(
            f"{key_id_hex} is the last active {row.role.value} key: register its replacement first, "
            "or the service will refuse new tips"
        )
    row.retired_on = today
    return row


def rewrap_all(session: Session, private_key: crypto.PrivateKey) -> int:
    """Seal every stored secret to exactly the active recipients (plus, for messages, the
    reporter's key). Content is untouched; only wrapped data keys change. Returns the number
    of records rewritten (a tip, a message, a file). The caller commits."""
    from .cases import sealed_items  # cases reads settings' types; keyring stays below it

    targets = recipients(session)
    rewritten: set[int] = set()
    for report in session.scalars(select(Report).where(Report.purged_on.is_(None))):  # purged: nothing sealed
        reporter = crypto.PublicKey.from_bytes(report.reporter_public_key)
        for item in sealed_items(report):
            sealed = getattr(item.row, item.column)
            if item.kind == "file":
                setattr(item.row, item.column, crypto.rewrap(sealed, private_key, targets, crypto.KIND_FILE))
            else:
                to = [*targets, reporter] if item.to_reporter else targets
                setattr(item.row, item.column, crypto.rewrap_envelope(sealed, private_key, to))
            rewritten.add(id(item.row))
    return len(rewritten)
