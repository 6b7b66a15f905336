"""Recipient keys: key files on disk, the registry of public keys in the database, the
trust anchor and certificates that decide which registered keys count, and re-wrapping
stored secrets when the set of recipients changes.

A private key file holds the key sealed under a passphrase (Argon2id, then AES-256-GCM);
the server only ever stores public keys. Formats: docs/crypto.md.

Why an anchor: the registry is a table, and someone who can write the database could add
a key of their own to it and receive every new tip, or sign messages that reporters would
take for the officers'. So the recovery key's public half is pinned in the instance
folder (`trust-anchor.json`, written by `whistle init` or `whistle keys anchor`), out of
the database's reach, and an officer key counts, as a recipient and as a signer, only with
a certificate by the recovery key (`whistle keys certify`) that checks under that anchor.
The anchor file also lists revoked keys (`whistle keys revoke`), for a key that was lost
or stolen: their signatures stop counting at once, whatever the database says.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import crypto
from .models import KeyRole, RecipientKey, Report

ANCHOR_FILE = "trust-anchor.json"
ANCHOR_FORMAT = "whistle-trust-anchor"

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
    #: The signing half, when the key file was written from the private key (crypto §2.2).
    verify_key: crypto.VerifyKey | None = None

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
        "verify_key": _b64(private_key.signing_key.verify_key().to_bytes()),
        "kdf": {"name": "argon2id", "salt": _b64(salt), **kdf},
    }
    wrapping_key = crypto.argon2id(passphrase.encode("utf-8"), salt, **kdf)
    doc["sealed"] = _b64(crypto.seal_with_key(wrapping_key, private_key.unsafe_to_bytes(), _canonical(doc)))
    return doc


def public_key_document(info: KeyInfo) -> dict[str, Any]:
    doc = {
        "format": PUBLIC_FORMAT,
        "version": FILE_VERSION,
        "role": info.role.value,
        "label": info.label,
        "key_id": info.key_id_hex,
        "public_key": _b64(info.public_key.to_bytes()),
    }
    if info.verify_key is not None:
        doc["verify_key"] = _b64(info.verify_key.to_bytes())
    return doc


def write_new_file(path: Path, doc: dict[str, Any]) -> None:
    """Write a key file that must not exist yet, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")


def read_document(path: Path) -> dict[str, Any]:
    try:
        return document_from_bytes(Path(path).read_bytes(), str(path))
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc}") from None


def document_from_bytes(raw: bytes, name: str = "the file") -> dict[str, Any]:
    """A key file's document from its bytes (a file uploaded to a page, read in memory)."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise KeyFileError(f"cannot read {name}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != FILE_VERSION:
        raise KeyFileError(f"{name} is not a whistle key file of version {FILE_VERSION}")
    return doc


def key_info(doc: dict[str, Any]) -> KeyInfo:
    """The public part of a private or public key file."""
    try:
        public = crypto.PublicKey.from_bytes(_unb64(doc["public_key"]))
        verify = crypto.VerifyKey.from_bytes(_unb64(doc["verify_key"])) if "verify_key" in doc else None
        info = KeyInfo(KeyRole(doc["role"]), str(doc["label"]), public, verify)
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
    info = key_info(doc)
    if private.public_key() != info.public_key or (
        info.verify_key is not None and private.signing_key.verify_key().to_bytes() != info.verify_key.to_bytes()
    ):
        raise KeyFileError("the key file is damaged (public and private parts differ)")
    return private


# --------------------------------------------------------------------------- the anchor


class MissingAnchor(MissingRecipients):
    """The instance has no trust anchor, or it cannot be read."""


@dataclass(frozen=True)
class Anchor:
    """The recovery key's public halves, pinned outside the database, and revoked key ids."""

    public_key: crypto.PublicKey
    verify_key: crypto.VerifyKey
    revoked: frozenset[bytes] = frozenset()


def anchor_document(public: crypto.PublicKey, verify: crypto.VerifyKey, revoked: frozenset[bytes] = frozenset()) -> dict[str, Any]:
    return {
        "format": ANCHOR_FORMAT,
        "version": FILE_VERSION,
        "recovery_key_id": public.key_id.hex(),
        "public_key": _b64(public.to_bytes()),
        "verify_key": _b64(verify.to_bytes()),
        "verify_key_id": verify.key_id.hex(),
        "revoked": sorted(k.hex() for k in revoked),
    }


def _write_atomically(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_anchor(path: Path, recovery: crypto.PrivateKey | KeyInfo) -> Anchor:
    """Pin the recovery key as the instance's anchor (keeping any revocations listed)."""
    if isinstance(recovery, crypto.PrivateKey):
        public, verify = recovery.public_key(), recovery.signing_key.verify_key()
    else:
        if recovery.verify_key is None:
            raise KeyFileError("this public key file has no verify key: use the private recovery key file")
        public, verify = recovery.public_key, recovery.verify_key
    revoked = read_anchor(path).revoked if path.exists() else frozenset()
    _write_atomically(path, anchor_document(public, verify, revoked))
    return Anchor(public, verify, revoked)


def read_anchor(path: Path) -> Anchor:
    try:
        doc = json.loads(Path(path).read_text("utf-8"))
        if doc.get("format") != ANCHOR_FORMAT or doc.get("version") != FILE_VERSION:
            raise ValueError("not a trust anchor")
        public = crypto.PublicKey.from_bytes(_unb64(doc["public_key"]))
        verify = crypto.VerifyKey.from_bytes(_unb64(doc["verify_key"]))
        revoked = frozenset(bytes.fromhex(k) for k in doc.get("revoked", []))
        if public.key_id.hex() != doc.get("recovery_key_id") or verify.key_id.hex() != doc.get("verify_key_id"):
            raise ValueError("key ids do not match")
    except FileNotFoundError:
        raise MissingAnchor(
            f"no trust anchor at {path} (run `whistle keys anchor --recovery-key FILE`, keys/README.md)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MissingAnchor(f"the trust anchor {path} cannot be read ({type(exc).__name__})") from None
    return Anchor(public, verify, revoked)


def revoke_in_anchor(path: Path, key_id: bytes) -> None:
    """List a key as revoked in the anchor: its certificate and signatures stop counting."""
    anchor = read_anchor(path)
    _write_atomically(path, anchor_document(anchor.public_key, anchor.verify_key, anchor.revoked | {key_id}))


class Trust:
    """The anchor of one instance, read from its file when the file changes, and the
    certificates already checked under it (checking costs about 0.3 ms each)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._anchor: Anchor | None = None
        self._stamp: tuple[int, int] | None = None
        self._checked: dict[tuple[bytes, bytes], crypto.Certified | None] = {}
        #: Officers' signatures already checked under this anchor (forgotten when it changes).
        self.memo = crypto.SignatureMemo()

    def anchor(self) -> Anchor:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._anchor = None
            return read_anchor(self.path)  # raises MissingAnchor, naming the file
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._anchor is None or stamp != self._stamp:
            self._anchor, self._stamp, self._checked = read_anchor(self.path), stamp, {}
            self.memo = crypto.SignatureMemo()
        return self._anchor

    def certified(self, row: RecipientKey) -> crypto.Certified | None:
        """What the row's certificate vouches for, if it checks under the anchor, is about
        this very key, and the key is not revoked; else None."""
        anchor = self.anchor()
        if row.role is not KeyRole.OFFICER or not row.certificate or row.key_id in anchor.revoked:
            return None
        cache_key = (row.certificate, row.public_key)
        if cache_key not in self._checked:
            try:
                certified = crypto.check_certificate(anchor.verify_key, row.certificate)
                same_key = certified.public_key.to_bytes() == row.public_key and certified.role == KeyRole.OFFICER.value
                self._checked[cache_key] = certified if same_key else None
            except crypto.BadSignature:
                self._checked[cache_key] = None
        return self._checked[cache_key]


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
        verify_key=info.verify_key.to_bytes() if info.verify_key is not None else None,
        created_on=today,
    )
    session.add(row)
    return row


def certify(
    session: Session, trust: Trust, officer: crypto.PrivateKey, recovery: crypto.PrivateKey, label: str, today: dt.date
) -> RecipientKey:
    """Have the recovery key vouch for an officer key, from both private keys (so the
    certificate binds the officer's real signing half, not one a database row claims).
    Registers the key if it is not yet. The caller commits."""
    anchor = trust.anchor()
    if recovery.public_key() != anchor.public_key:
        raise KeyFileError("this is not the recovery key this instance's trust anchor names")
    public, verify = officer.public_key(), officer.signing_key.verify_key()
    row = session.scalar(select(RecipientKey).where(RecipientKey.key_id == public.key_id))
    if row is None:
        row = register(session, KeyInfo(KeyRole.OFFICER, label, public, verify), today)
    if row.role is not KeyRole.OFFICER:
        raise KeyFileError("only officer keys are certified")
    row.verify_key = verify.to_bytes()
    row.certificate = crypto.certify(recovery.signing_key, public, verify, KeyRole.OFFICER.value, row.label, today.isoformat())
    return row


def install_first_keys(
    session: Session, trust: Trust, officer: crypto.PrivateKey, recovery: crypto.PrivateKey, officer_label: str, today: dt.date
) -> None:
    """What a new instance needs to take tips (`whistle init`): the recovery key pinned as
    the anchor and registered, and the first officer key registered with its certificate.
    The caller commits."""
    write_anchor(trust.path, recovery)
    register(session, KeyInfo(KeyRole.RECOVERY, "recovery", recovery.public_key(), recovery.signing_key.verify_key()), today)
    certify(session, trust, officer, recovery, officer_label, today)


def find_key(session: Session, key_id: bytes) -> RecipientKey | None:
    return session.scalar(select(RecipientKey).where(RecipientKey.key_id == key_id))


CERTIFICATE_FORMAT = "whistle-certificate"


def certificate_document(officer: crypto.PrivateKey, recovery: crypto.PrivateKey, label: str, today: dt.date) -> dict[str, Any]:
    """A certificate as a file, made where both private keys are (`keys certify --out`)."""
    public, verify = officer.public_key(), officer.signing_key.verify_key()
    return {
        "format": CERTIFICATE_FORMAT,
        "version": FILE_VERSION,
        "key_id": public.key_id.hex(),
        "recovery_key_id": recovery.key_id.hex(),
        "certificate": _b64(crypto.certify(recovery.signing_key, public, verify, KeyRole.OFFICER.value, label, today.isoformat())),
    }


def read_certificate(path: Path) -> bytes:
    doc = read_document(path)
    if doc.get("format") != CERTIFICATE_FORMAT:
        raise KeyFileError(f"{path} is not a certificate file")
    try:
        return _unb64(doc["certificate"])
    except (KeyError, ValueError):
        raise KeyFileError(f"{path} is damaged") from None


def attach_certificate(row: RecipientKey, trust: Trust, certificate: bytes) -> None:
    """Store a certificate made elsewhere, after checking it under this instance's anchor
    and for this very key. The caller commits."""
    try:
        certified = crypto.check_certificate(trust.anchor().verify_key, certificate)
    except crypto.BadSignature:
        raise KeyFileError("the certificate was not made by this instance's recovery key") from None
    if certified.public_key.to_bytes() != row.public_key:
        raise KeyFileError("the certificate is for another key")
    row.verify_key = certified.verify_key.to_bytes()
    row.certificate = certificate


def active_keys(session: Session) -> list[RecipientKey]:
    return list(
        session.scalars(select(RecipientKey).where(RecipientKey.retired_on.is_(None)).order_by(RecipientKey.id))
    )


def recipients(session: Session, trust: Trust) -> list[crypto.PublicKey]:
    """Every key a new secret must be sealed to: each active officer key whose certificate
    checks under the anchor, and the anchor's recovery key. `MissingRecipients` (naming
    what is missing) if there is no anchor or no such officer key."""
    anchor = trust.anchor()
    officers = [crypto.PublicKey.from_bytes(r.public_key) for r in active_keys(session) if trust.certified(r)]
    if not officers:
        raise MissingRecipients(
            "no active officer key with a certificate from the recovery key is registered "
            "(see keys/README.md: `whistle keys new-officer`, `whistle keys certify`)"
        )
    return [*officers, anchor.public_key]


def signers(session: Session, trust: Trust) -> list[crypto.VerifyKey]:
    """The verify keys whose signatures count as the officers': every officer key, retired
    or not (an old message stays verifiable), certified under the anchor and not revoked."""
    rows = session.scalars(select(RecipientKey).where(RecipientKey.role == KeyRole.OFFICER))
    return [c.verify_key for c in (trust.certified(r) for r in rows) if c is not None]


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


def recipients_digest(keys: list[crypto.PublicKey]) -> bytes:
    """What names a set of recipients, whatever their order (`Report.sealed_for`)."""
    return hashlib.sha256(b"whistle recipients v1" + b"".join(sorted(k.key_id for k in keys))).digest()


def rewrap_case(report: Report, private_key: crypto.PrivateKey, targets: list[crypto.PublicKey]) -> int:
    """Seal every item of one case to exactly `targets` (plus the reporter's key for each
    item that was sealed to it: messages, and the tip and files sent since reporters can
    re-read them); `crypto.OpenError` if the key does not open one. Returns the records
    rewritten."""
    from .cases import context, sealed_items  # cases builds on keyring's services

    reporter = crypto.PublicKey.from_bytes(report.reporter_public_key)
    rewritten: set[int] = set()
    for item in sealed_items(report):
        sealed, ctx = getattr(item.row, item.column), context(report, item.slot)
        to = [*targets, reporter] if item.to_reporter else targets
        if item.kind == "file":
            setattr(item.row, item.column, crypto.rewrap(sealed, private_key, to, crypto.KIND_FILE, ctx))
        else:
            setattr(item.row, item.column, crypto.rewrap_envelope(sealed, private_key, to, ctx))
        rewritten.add(id(item.row))
    report.sealed_for = recipients_digest(targets)
    return len(rewritten)


def rewrap_all(session: Session, trust: Trust, private_key: crypto.PrivateKey) -> int:
    """Seal every stored secret to exactly the current recipients (plus the reporter's key
    where an item was sealed to it, `rewrap_case`). Content is untouched; only wrapped data keys change (and, for version
    2 items, the MAC over them). Returns the number of records rewritten (a tip, a message,
    a file). The caller commits."""
    targets = recipients(session, trust)
    return sum(
        rewrap_case(report, private_key, targets)
        for report in session.scalars(select(Report).where(Report.purged_on.is_(None)))  # purged: nothing sealed
    )
