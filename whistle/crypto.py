"""Every cryptographic operation of whistle, and the only module that imports `cryptography`.

What it owns (the byte formats are specified in docs/crypto.md, with test vectors):

* Recipient keys: a hybrid post-quantum key pair, ML-KEM-768 + X25519, used through HPKE
  (RFC 9180) with HKDF-SHA256 and AES-256-GCM. A private key is kept as its two raw parts
  (a 64-byte ML-KEM seed and a 32-byte X25519 scalar); a public key as its two raw parts.
* Key wraps: a fresh 32-byte data key per item, wrapped for every recipient.
* Envelopes: a small secret item (tip fields, a message) sealed under its data key.
* File streams: a large item sealed in 64 KiB chunks as it arrives (a STREAM construction:
  counter nonces with a last-chunk flag), so memory stays flat and no plaintext touches disk.
* Contexts (format version 2): every sealed item is bound to its case, its kind and its
  slot, and every wrap block carries a MAC under the data key, so someone who can only write
  the database cannot move an item, nor damage or drop another recipient's wrap unnoticed.
* Signatures: a hybrid Ed25519 + ML-DSA-65 signing key derived from every private key,
  certificates by which the recovery key vouches for officer keys, and officer-signed items
  that cannot be replayed onto another case or slot.
* Passphrase-protected private key files and the key material derived from a tracking code.

Every failure to open anything raises `OpenError`, with no detail: callers cannot tell a
wrong key from a damaged or truncated ciphertext, and neither can an attacker. Every failed
signature or certificate check raises `BadSignature`, equally silent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import BinaryIO, Iterable, Iterator, Sequence

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa, mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"whst"
VERSION = 1  # the version of the legacy formats; VERSION_2 is what new items are written in
VERSION_2 = 2
#: Suite 1: HPKE(ML-KEM-768+X25519, HKDF-SHA256, AES-256-GCM) wraps; AES-256-GCM content.
SUITE_V1 = 1

KIND_ITEM = 1  # envelope: tip fields, a message, a note
KIND_FILE = 2  # chunked file stream

HEADER_LEN = 7
DATA_KEY_LEN = 32
KEY_ID_LEN = 16
MLKEM_SEED_LEN = 64
MLKEM_PUBLIC_LEN = 1184
X25519_LEN = 32
PUBLIC_KEY_LEN = MLKEM_PUBLIC_LEN + X25519_LEN
PRIVATE_KEY_LEN = MLKEM_SEED_LEN + X25519_LEN
WRAPPED_KEY_LEN = 1168  # HPKE enc (1120) + sealed data key (32) + tag (16)
WRAP_ENTRY_LEN = KEY_ID_LEN + WRAPPED_KEY_LEN
MAC_LEN = 32
NONCE_LEN = 12
TAG_LEN = 16

ED25519_PUBLIC_LEN = 32
ED25519_SIGNATURE_LEN = 64
MLDSA_PUBLIC_LEN = 1952
MLDSA_SIGNATURE_LEN = 3309
SIGNING_SEED_LEN = 64  # Ed25519 seed (32) || ML-DSA-65 seed (32)
VERIFY_KEY_LEN = ED25519_PUBLIC_LEN + MLDSA_PUBLIC_LEN
SIGNATURE_LEN = ED25519_SIGNATURE_LEN + MLDSA_SIGNATURE_LEN

CASE_LEN = 32
MAX_SLOT_LEN = 128

#: Plaintext bytes per file chunk. 64 KiB keeps per-chunk overhead under 0.03%.
CHUNK_SIZE = 64 * 1024
SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_LEN

_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_WRAP_INFO = {VERSION: b"whistle v1 wrap", VERSION_2: b"whistle v2 wrap"}
_KEY_ID_LABEL = b"whistle v1 key id"
# Version 2 labels. Each names one use, so no key or digest made for one can serve another.
_WRAP_MAC_LABEL = b"whistle v2 wrap mac"
_CONTENT_KEY_LABEL = b"whistle v2 content key"
_CONTEXT_LABEL = b"whistle v2 context"
_CASE_LABEL = b"whistle v2 case"
_SIGNING_KEY_LABEL = b"whistle v2 signing key"
_VERIFY_KEY_ID_LABEL = b"whistle v2 verify key id"
_SIGNATURE_LABEL = b"whistle v2 signature"
CERTIFICATE_LABEL = b"whistle v2 certificate"
SIGNED_ITEM_LABEL = b"whistle v2 signed item"


class OpenError(Exception):
    """Something could not be opened. Deliberately says nothing about why."""

    def __init__(self) -> None:
        super().__init__("could not open")


class BadSignature(Exception):
    """A signature or certificate did not check. Deliberately says nothing about why."""

    def __init__(self) -> None:
        super().__init__("bad signature")


def _lp(*fields: bytes) -> bytes:
    """Length-prefixed fields: each as its length (4 bytes, big-endian) then its bytes."""
    return b"".join(len(f).to_bytes(4, "big") + f for f in fields)


def _read_lp(data: bytes, count: int) -> list[bytes]:
    """The inverse of `_lp` for exactly `count` fields and nothing after; ValueError else."""
    fields, pos = [], 0
    for _ in range(count):
        if pos + 4 > len(data):
            raise ValueError("truncated field")
        n = int.from_bytes(data[pos : pos + 4], "big")
        pos += 4
        if pos + n > len(data):
            raise ValueError("truncated field")
        fields.append(data[pos : pos + n])
        pos += n
    if pos != len(data):
        raise ValueError("trailing bytes")
    return fields


def hkdf(key_material: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(key_material)


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class PublicKey:
    """A recipient's public key: the raw ML-KEM-768 and X25519 public parts."""

    mlkem: bytes
    x25519: bytes

    def __post_init__(self) -> None:
        if len(self.mlkem) != MLKEM_PUBLIC_LEN or len(self.x25519) != X25519_LEN:
            raise ValueError("public key parts have the wrong length")

    @cached_property
    def key_id(self) -> bytes:
        """16 bytes naming this key in wraps; a hash, so it says nothing of the key's owner."""
        return hashlib.sha256(_KEY_ID_LABEL + self.mlkem + self.x25519).digest()[:KEY_ID_LEN]

    def to_bytes(self) -> bytes:
        return self.mlkem + self.x25519

    @classmethod
    def from_bytes(cls, raw: bytes) -> PublicKey:
        if len(raw) != PUBLIC_KEY_LEN:
            raise ValueError("public key has the wrong length")
        return cls(raw[:MLKEM_PUBLIC_LEN], raw[MLKEM_PUBLIC_LEN:])

    @cached_property
    def _hpke(self) -> hpke.MLKEM768X25519PublicKey:
        return hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(self.mlkem),
            x25519.X25519PublicKey.from_public_bytes(self.x25519),
        )


@dataclass(frozen=True, repr=False)
class PrivateKey:
    """A recipient's private key: a 64-byte ML-KEM seed and a 32-byte X25519 scalar."""

    mlkem_seed: bytes
    x25519: bytes

    def __post_init__(self) -> None:
        if len(self.mlkem_seed) != MLKEM_SEED_LEN or len(self.x25519) != X25519_LEN:
            raise ValueError("private key parts have the wrong length")

    def __repr__(self) -> str:  # never print key material by accident
        return "PrivateKey(<secret>)"

    @classmethod
    def generate(cls) -> PrivateKey:
        return cls(os.urandom(MLKEM_SEED_LEN), os.urandom(X25519_LEN))

    @classmethod
    def from_bytes(cls, raw: bytes) -> PrivateKey:
        if len(raw) != PRIVATE_KEY_LEN:
            raise ValueError("private key has the wrong length")
        return cls(raw[:MLKEM_SEED_LEN], raw[MLKEM_SEED_LEN:])

    def unsafe_to_bytes(self) -> bytes:
        """The raw secret; only for sealing it under a passphrase or a session key."""
        return self.mlkem_seed + self.x25519

    def public_key(self) -> PublicKey:
        return self._public

    @property
    def key_id(self) -> bytes:
        return self._public.key_id

    @cached_property
    def signing_key(self) -> SigningKey:
        """This key's signing key, derived from it: key files need no new field, and
        whoever can open a key's items can sign with it, and nobody else."""
        return SigningKey.from_seed(hkdf(self.unsafe_to_bytes(), _SIGNING_KEY_LABEL, SIGNING_SEED_LEN))

    # Expanding the ML-KEM seed is the costly part of opening anything (about 0.2 ms);
    # done once per key object, not once per item opened.
    @cached_property
    def _hpke(self) -> hpke.MLKEM768X25519PrivateKey:
        return hpke.MLKEM768X25519PrivateKey(
            mlkem.MLKEM768PrivateKey.from_seed_bytes(self.mlkem_seed),
            x25519.X25519PrivateKey.from_private_bytes(self.x25519),
        )

    @cached_property
    def _public(self) -> PublicKey:
        m = mlkem.MLKEM768PrivateKey.from_seed_bytes(self.mlkem_seed)
        x = x25519.X25519PrivateKey.from_private_bytes(self.x25519)
        return PublicKey(m.public_key().public_bytes_raw(), x.public_key().public_bytes_raw())


# --------------------------------------------------------------------------- signatures
#
# A hybrid signature is an Ed25519 signature and an ML-DSA-65 signature over the same
# labelled message; it checks only if both do, so it holds while either algorithm holds.
# The signed message names the signer's verify key id, so each half is bound to the whole
# hybrid key and cannot be lifted into another key's signature.


def _check_label(label: bytes) -> None:
    # ML-DSA's context string, which carries the label, is at most 255 bytes.
    if not isinstance(label, bytes) or not 0 < len(label) <= 255:
        raise ValueError("a signature label is 1 to 255 bytes")


def _to_be_signed(key_id: bytes, label: bytes, message: bytes) -> bytes:
    return _lp(_SIGNATURE_LABEL, key_id, label, message)


class SigningKey:
    """A hybrid Ed25519 + ML-DSA-65 signing key, made from a 64-byte seed."""

    def __init__(self, ed25519_key: ed25519.Ed25519PrivateKey, mldsa_key: mldsa.MLDSA65PrivateKey) -> None:
        self._ed25519 = ed25519_key
        self._mldsa = mldsa_key
        self._verify_key = VerifyKey(
            ed25519_key.public_key().public_bytes_raw(), mldsa_key.public_key().public_bytes_raw()
        )

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        if len(seed) != SIGNING_SEED_LEN:
            raise ValueError("a signing seed is 64 bytes")
        return cls(
            ed25519.Ed25519PrivateKey.from_private_bytes(seed[:32]),
            mldsa.MLDSA65PrivateKey.from_seed_bytes(seed[32:]),
        )

    def __repr__(self) -> str:
        return "SigningKey(<secret>)"

    def verify_key(self) -> VerifyKey:
        return self._verify_key

    def sign(self, message: bytes, *, label: bytes) -> bytes:
        """Ed25519 signature (64) || ML-DSA-65 signature (3309) over the labelled message.

        ML-DSA signing is randomised (FIPS 204 "hedged"), so signing twice gives two valid
        signatures that differ in their ML-DSA half; the Ed25519 half is deterministic.
        """
        _check_label(label)
        tbs = _to_be_signed(self._verify_key.key_id, label, message)
        return self._ed25519.sign(tbs) + self._mldsa.sign(tbs, label)


@dataclass(frozen=True)
class VerifyKey:
    """The public half of a `SigningKey`: Ed25519 public (32) || ML-DSA-65 public (1952)."""

    ed25519: bytes
    mldsa: bytes

    def __post_init__(self) -> None:
        if len(self.ed25519) != ED25519_PUBLIC_LEN or len(self.mldsa) != MLDSA_PUBLIC_LEN:
            raise ValueError("verify key parts have the wrong length")

    @cached_property
    def key_id(self) -> bytes:
        return hashlib.sha256(_VERIFY_KEY_ID_LABEL + self.to_bytes()).digest()[:KEY_ID_LEN]

    def to_bytes(self) -> bytes:
        return self.ed25519 + self.mldsa

    @classmethod
    def from_bytes(cls, raw: bytes) -> VerifyKey:
        if len(raw) != VERIFY_KEY_LEN:
            raise ValueError("verify key has the wrong length")
        return cls(raw[:ED25519_PUBLIC_LEN], raw[ED25519_PUBLIC_LEN:])

    def verify(self, signature: bytes, message: bytes, *, label: bytes) -> None:
        """Return if both halves of `signature` check; `BadSignature` on anything else."""
        if not isinstance(signature, (bytes, bytearray)) or len(signature) != SIGNATURE_LEN:
            raise BadSignature()
        if not isinstance(label, bytes) or not 0 < len(label) <= 255:
            raise BadSignature()
        tbs = _to_be_signed(self.key_id, label, bytes(message))
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(self.ed25519).verify(signature[:ED25519_SIGNATURE_LEN], tbs)
            mldsa.MLDSA65PublicKey.from_public_bytes(self.mldsa).verify(signature[ED25519_SIGNATURE_LEN:], tbs, label)
        except (InvalidSignature, ValueError):
            raise BadSignature() from None


# --------------------------------------------------------------------------- contexts
#
# A context says where a sealed item belongs: which case, and which slot in it. Version 2
# binds its digest into every wrap block's MAC and every envelope's associated data, so an
# item copied to another case or slot no longer opens.

_SLOT_CHARS = re.compile(r"[\x21-\x7e]+")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _check_date(value: str) -> None:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError("a date is YYYY-MM-DD")
    dt.date.fromisoformat(value)  # ValueError for 2026-02-30


def _check_token(value: str, what: str, max_len: int = 32) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= max_len or not _SLOT_CHARS.fullmatch(value):
        raise ValueError(f"{what} is 1 to {max_len} printable ASCII characters, no spaces")


def case_binding(uid: bytes, reporter_public_key: bytes, channel: str, received_on: str) -> bytes:
    """The 32 bytes that name one case in every context of its items.

    Binding the reporter's key, channel and date as well as the uid makes those clear
    columns tamper-evident: change one and none of the case's items opens any more.
    `received_on` is an ISO date, YYYY-MM-DD.
    """
    if not isinstance(uid, bytes) or not 0 < len(uid) <= 64:
        raise ValueError("a case uid is 1 to 64 bytes")
    if not isinstance(reporter_public_key, bytes) or len(reporter_public_key) != PUBLIC_KEY_LEN:
        raise ValueError("the reporter's public key has the wrong length")
    _check_token(channel, "a channel")
    _check_date(received_on)
    fields = (_CASE_LABEL, uid, reporter_public_key, channel.encode("ascii"), received_on.encode("ascii"))
    return hashlib.sha256(_lp(*fields)).digest()


@dataclass(frozen=True)
class Context:
    """Where a sealed item belongs: a case binding (`case_binding`) and a slot name such as
    "tip", "message/3/officer" or "file/<32 hex digits>/data"."""

    case: bytes
    slot: str

    def __post_init__(self) -> None:
        if not isinstance(self.case, bytes) or len(self.case) != CASE_LEN:
            raise ValueError("a case binding is 32 bytes")
        _check_token(self.slot, "a slot", MAX_SLOT_LEN)

    @cached_property
    def digest(self) -> bytes:
        return hashlib.sha256(_lp(_CONTEXT_LABEL, self.case, self.slot.encode("ascii"))).digest()


def _context_digest(context: Context | None) -> bytes:
    if not isinstance(context, Context):
        raise OpenError()  # a version 2 item does not open without its context
    return context.digest


# --------------------------------------------------------------------------- headers


def _header(version: int, kind: int) -> bytes:
    return MAGIC + bytes([version, SUITE_V1, kind])


def _fixed_header(kind: int) -> bytes:
    """The version 1 header."""
    return _header(VERSION, kind)


def _version_of(header: bytes, kind: int) -> int:
    """The format version of a header of `kind`; `OpenError` for anything else."""
    for version in (VERSION, VERSION_2):
        if hmac.compare_digest(header, _header(version, kind)):
            return version
    raise OpenError()


def is_legacy(sealed: bytes) -> bool:
    """True for a version 1 envelope or file stream (pass the first 7 bytes or more):
    readable, but bound to no case or slot, so a caller should say so. False for
    version 2 and for anything that is not a whistle item at all (which will not open)."""
    if not isinstance(sealed, (bytes, bytearray)):
        return False
    head = bytes(sealed[:HEADER_LEN])
    return head in (_fixed_header(KIND_ITEM), _fixed_header(KIND_FILE))


# --------------------------------------------------------------------------- key wraps
#
# A wrap block lists, for each recipient, its key id and the data key sealed to it with
# HPKE. Each HPKE seal binds the item's header (so its version and kind) and the
# recipient's key id through `info`, so a wrap cannot be moved to another kind or version of
# item, or relabelled. Version 2 appends a MAC, keyed from the data key, over the header,
# the context and every entry: whoever opens one wrap checks them all. The block is kept
# apart from the sealed content so that recipients can be added or removed later (officer
# rotation) without touching, or even reading, the content: see docs/crypto.md.


def _wrap_info(kind: int, key_id: bytes, version: int = VERSION) -> bytes:
    return _WRAP_INFO[version] + _header(version, kind) + key_id


def _wrap_entries(data_key: bytes, recipients: Sequence[PublicKey], kind: int, version: int) -> bytes:
    if not recipients:
        raise ValueError("an item needs at least one recipient")
    if len(recipients) > 255:
        raise ValueError("too many recipients")
    ids = [r.key_id for r in recipients]
    if len(set(ids)) != len(ids):
        raise ValueError("a recipient is listed twice")
    out = [bytes([len(recipients)])]
    for recipient, key_id in zip(recipients, ids, strict=True):
        out.append(key_id)
        out.append(_SUITE.encrypt(data_key, recipient._hpke, info=_wrap_info(kind, key_id, version)))
    return b"".join(out)


def _wrap_mac(data_key: bytes, kind: int, digest: bytes, entries: bytes) -> bytes:
    mac_key = hkdf(data_key, _WRAP_MAC_LABEL)
    return hmac.new(mac_key, _header(VERSION_2, kind) + digest + entries, hashlib.sha256).digest()


def wrap_data_key(data_key: bytes, recipients: Sequence[PublicKey], kind: int, context: Context | None = None) -> bytes:
    """Seal `data_key` for every recipient; returns the wrap block.

    With a context, a version 2 block (authenticated, bound to the context); without one,
    a version 1 block, which only callers not yet moved to contexts still ask for.
    """
    if context is None:
        return _wrap_entries(data_key, recipients, kind, VERSION)
    entries = _wrap_entries(data_key, recipients, kind, VERSION_2)
    return entries + _wrap_mac(data_key, kind, context.digest, entries)


def _wraps_version(block: bytes) -> int:
    """A block's version from its length: 1 + n × 1184 for version 1, 32 more for 2.

    Safe to trust: the version is also in every wrap's HPKE info, so a block cut or
    padded to look like the other version does not open."""
    if not block or block[0] == 0:
        raise OpenError()
    entries_len = 1 + block[0] * WRAP_ENTRY_LEN
    if len(block) == entries_len:
        return VERSION
    if len(block) == entries_len + MAC_LEN:
        return VERSION_2
    raise OpenError()


def _split_wraps(block: bytes, version: int) -> tuple[list[tuple[bytes, bytes]], bytes, bytes]:
    """(entries, the bytes the MAC covers, the MAC) of a block of a known version."""
    if not block or block[0] == 0:
        raise OpenError()
    entries_len = 1 + block[0] * WRAP_ENTRY_LEN
    if len(block) != entries_len + (MAC_LEN if version == VERSION_2 else 0):
        raise OpenError()
    entries = []
    for start in range(1, entries_len, WRAP_ENTRY_LEN):
        entries.append((block[start : start + KEY_ID_LEN], block[start + KEY_ID_LEN : start + WRAP_ENTRY_LEN]))
    return entries, block[:entries_len], block[entries_len:]


def wrap_block_len(block_prefix: bytes, version: int = VERSION) -> int:
    """Length of a wrap block from its first byte (the recipient count)."""
    if not block_prefix or block_prefix[0] == 0:
        raise OpenError()
    return 1 + block_prefix[0] * WRAP_ENTRY_LEN + (MAC_LEN if version == VERSION_2 else 0)


def recipient_ids(block: bytes) -> list[bytes]:
    """Key ids a wrap block (either version) is sealed to."""
    return [key_id for key_id, _ in _split_wraps(block, _wraps_version(block))[0]]


def _unwrap(block: bytes, private_key: PrivateKey, kind: int, version: int, context: Context | None) -> bytes:
    digest = _context_digest(context) if version == VERSION_2 else b""
    entries, covered, mac = _split_wraps(block, version)
    my_id = private_key.key_id
    for key_id, wrapped in entries:
        if hmac.compare_digest(key_id, my_id):
            try:
                data_key = _SUITE.decrypt(wrapped, private_key._hpke, info=_wrap_info(kind, key_id, version))
            except (InvalidTag, ValueError):
                raise OpenError() from None
            if len(data_key) != DATA_KEY_LEN:
                raise OpenError()
            if version == VERSION_2 and not hmac.compare_digest(mac, _wrap_mac(data_key, kind, digest, covered)):
                raise OpenError()
            return data_key
    raise OpenError()


def unwrap_data_key(block: bytes, private_key: PrivateKey, kind: int, context: Context | None = None) -> bytes:
    """The data key of a wrap block, for one of its recipients; `OpenError` otherwise.

    Without a context only a version 1 block opens. With one, a version 2 block opens only
    if its MAC checks for that context (so every other entry is intact too); a version 1
    block, which has no context, still opens.
    """
    version = _wraps_version(block) if context is not None else VERSION
    return _unwrap(block, private_key, kind, version, context)


def rewrap(
    block: bytes, private_key: PrivateKey, recipients: Sequence[PublicKey], kind: int, context: Context | None = None
) -> bytes:
    """A new wrap block for exactly `recipients`, opened with one current recipient's key.

    The block keeps its version: a version 2 block is re-authenticated for the same
    context; a version 1 block stays version 1 (binding it is `rebind_*`'s job).
    """
    version = _wraps_version(block) if context is not None else VERSION
    data_key = _unwrap(block, private_key, kind, version, context)
    return wrap_data_key(data_key, recipients, kind, context if version == VERSION_2 else None)


def _content_key(data_key: bytes) -> bytes:
    """Version 2 encrypts under a key derived from the data key, not the data key itself,
    which also keys the wrap MAC: one key, one use."""
    return hkdf(data_key, _CONTENT_KEY_LABEL)


# --------------------------------------------------------------------------- envelopes
#
# envelope = header (magic, version, suite, kind) || wrap block || nonce || AES-GCM
# Version 1: the data key encrypts, the header is the associated data.
# Version 2: the content key encrypts, header || context digest is the associated data.


def seal(plaintext: bytes, recipients: Sequence[PublicKey], context: Context | None = None) -> bytes:
    """Seal one small item for `recipients` under a fresh data key.

    With a context, a version 2 envelope bound to it. Without one, version 1: kept only
    while callers are moved to contexts; it will then become an error.
    """
    data_key = AESGCM.generate_key(bit_length=256)
    wraps = wrap_data_key(data_key, recipients, KIND_ITEM, context)
    return _seal_with(plaintext, data_key, os.urandom(NONCE_LEN), wraps, context)


def _seal_with(plaintext: bytes, data_key: bytes, nonce: bytes, wraps: bytes, context: Context | None = None) -> bytes:
    if context is None:
        header = _fixed_header(KIND_ITEM)
        return header + wraps + nonce + AESGCM(data_key).encrypt(nonce, plaintext, header)
    header = _header(VERSION_2, KIND_ITEM)
    return header + wraps + nonce + AESGCM(_content_key(data_key)).encrypt(nonce, plaintext, header + context.digest)


def _split_envelope(envelope: bytes) -> tuple[int, bytes, bytes]:
    """(version, wrap block, nonce || ciphertext) of an envelope; lengths checked."""
    if not isinstance(envelope, (bytes, bytearray)):
        raise OpenError()
    envelope = bytes(envelope)
    version = _version_of(envelope[:HEADER_LEN], KIND_ITEM)
    wraps_len = wrap_block_len(envelope[HEADER_LEN : HEADER_LEN + 1], version)
    body_start = HEADER_LEN + wraps_len
    if len(envelope) < body_start + NONCE_LEN + TAG_LEN:
        raise OpenError()
    return version, envelope[HEADER_LEN:body_start], envelope[body_start:]


def open_sealed(
    envelope: bytes, private_key: PrivateKey, context: Context | None = None, *, accept_legacy: bool = True
) -> bytes:
    """Open an envelope with one recipient's private key; `OpenError` on any failure.

    A version 2 envelope opens only with the context it was sealed for. A version 1
    envelope opens with or without a context (it was bound to none: see `is_legacy`),
    unless `accept_legacy` is false.
    """
    version, wraps, body = _split_envelope(envelope)
    if version == VERSION and not accept_legacy:
        raise OpenError()
    data_key = _unwrap(wraps, private_key, KIND_ITEM, version, context)
    if version == VERSION:
        key, associated = data_key, _fixed_header(KIND_ITEM)
    else:
        key, associated = _content_key(data_key), _header(VERSION_2, KIND_ITEM) + _context_digest(context)
    try:
        return AESGCM(key).decrypt(body[:NONCE_LEN], body[NONCE_LEN:], associated)
    except InvalidTag:
        raise OpenError() from None


def envelope_recipients(envelope: bytes) -> list[bytes]:
    _, wraps, _ = _split_envelope(envelope)
    return recipient_ids(wraps)


def rewrap_envelope(
    envelope: bytes, private_key: PrivateKey, recipients: Sequence[PublicKey], context: Context | None = None
) -> bytes:
    """The same envelope, its content untouched, sealed to exactly `recipients`.

    A version 2 envelope needs its context (its MAC is recomputed for it); a version 1
    envelope stays version 1 whatever the context.
    """
    version, wraps, body = _split_envelope(envelope)
    bound = context if version == VERSION_2 else None
    data_key = _unwrap(wraps, private_key, KIND_ITEM, version, bound)
    return _header(version, KIND_ITEM) + wrap_data_key(data_key, recipients, KIND_ITEM, bound) + body


def rebind_envelope(
    envelope: bytes,
    private_key: PrivateKey,
    recipients: Sequence[PublicKey],
    context: Context,
    *,
    signing_key: SigningKey | None = None,
) -> bytes:
    """A version 1 envelope's plaintext, sealed anew as version 2 for `context`.

    It binds the item where it is found: it cannot tell whether a database writer moved
    it there before. With `signing_key`, the holder also signs it (`seal_signed`),
    vouching for it. Anything but a version 1 envelope is `OpenError`.
    """
    if not is_legacy(envelope):
        raise OpenError()
    plaintext = open_sealed(envelope, private_key)
    if signing_key is not None:
        return seal_signed(plaintext, recipients, context, signing_key)
    return seal(plaintext, recipients, context)


# --------------------------------------------------------------------------- file streams
#
# file = header (magic, version, suite, kind=file) || chunk*
# chunk i = AES-256-GCM(key, nonce = i as 11 bytes big-endian || last flag, aad = header)
# key = the data key (version 1) or the content key derived from it (version 2).
# Every chunk but the last holds exactly CHUNK_SIZE plaintext bytes; the last holds 1 to
# CHUNK_SIZE bytes (0 only for an empty file) and is flagged, so truncation, extension and
# reordering are all detected. A version 2 stream is bound to its case and slot by its wrap
# block's MAC, made when the case is known (`FileSealer.wrap_for`), not by its chunks.


def _chunk_nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class FileSealer:
    """Encrypts a file as its bytes arrive and writes only ciphertext to `sink`.

    Holds at most one chunk of plaintext in memory. `FileSealer(sink)` writes version 2:
    after `close`, `wrap_for(recipients, context)` returns the wrap block to store with
    the file's record, once the case it belongs to is known. `FileSealer(sink, recipients)`
    writes version 1 with its wrap block in `wraps` at once: kept only while callers are
    moved to contexts. The sealed stream itself names no recipient.
    """

    def __init__(
        self, sink: BinaryIO, recipients: Sequence[PublicKey] | None = None, *, data_key: bytes | None = None
    ) -> None:
        data_key = data_key or AESGCM.generate_key(bit_length=256)
        self._sink = sink
        self._chunk = bytearray(CHUNK_SIZE)  # the one chunk of plaintext held, fixed size
        self._fill = 0
        self._counter = 0
        self._closed = False
        self.plaintext_size = 0
        if recipients is None:
            self.version = VERSION_2
            self._data_key: bytes | None = data_key  # kept until wrap_for, then dropped
            self._wraps: bytes | None = None
            self._aead: AESGCM | None = AESGCM(_content_key(data_key))
        else:
            self.version = VERSION
            self._data_key = None
            self._wraps = wrap_data_key(data_key, recipients, KIND_FILE) if recipients else b""
            self._aead = AESGCM(data_key)
        self._header = _header(self.version, KIND_FILE)
        sink.write(self._header)

    @property
    def wraps(self) -> bytes:
        """The version 1 wrap block. A version 2 file is wrapped by `wrap_for`."""
        if self._wraps is None:
            raise ValueError("a version 2 file gets its wrap block from wrap_for")
        return self._wraps

    def write(self, data: bytes) -> int:
        if self._closed:
            raise ValueError("sealer is closed")
        # A full chunk is sealed only once more data follows it: it may turn out to be last.
        # Bytes are copied once into the fixed chunk buffer, which is never reallocated.
        with memoryview(data) as view, view.cast("B") as source, memoryview(self._chunk) as chunk:
            size = source.nbytes
            self.plaintext_size += size
            taken = 0
            while taken < size:
                if self._fill == CHUNK_SIZE:
                    self._emit(chunk, last=False)
                    self._fill = 0
                n = min(CHUNK_SIZE - self._fill, size - taken)
                chunk[self._fill : self._fill + n] = source[taken : taken + n]
                self._fill += n
                taken += n
        return size

    def _emit(self, chunk: bytes | memoryview, *, last: bool) -> None:
        if self._aead is None:  # closed: nothing more may be sealed into this stream
            raise ValueError("sealer is closed")
        self._sink.write(self._aead.encrypt(_chunk_nonce(self._counter, last), chunk, self._header))
        self._counter += 1

    def close(self) -> None:
        """Seal the last chunk. Must be called, or the file will not open. A second call
        does nothing: the stream has exactly one chunk flagged last."""
        if not self._closed:
            self._emit(bytes(self._chunk[: self._fill]), last=True)
            self._chunk = bytearray()
            self._aead = None
            self._closed = True

    def wrap_for(self, recipients: Sequence[PublicKey], context: Context) -> bytes:
        """The version 2 wrap block binding this closed file to `context`.

        Callable once: the data key is dropped afterwards, so a sealer cannot bind one
        stream into two places.
        """
        if self.version != VERSION_2:
            raise ValueError("a version 1 file was wrapped when its sealer was made")
        if not self._closed:
            raise ValueError("close the sealer before wrapping its file")
        if self._data_key is None:
            raise ValueError("this file is already wrapped")
        if not isinstance(context, Context):
            raise TypeError("wrap_for needs a Context")
        wraps = wrap_data_key(self._data_key, recipients, KIND_FILE, context)
        self._data_key = None
        return wraps


def sealed_file_size(plaintext_size: int) -> int:
    """Sealed size of a file, either version (both have a 7-byte header)."""
    chunks = max(1, -(-plaintext_size // CHUNK_SIZE))
    return HEADER_LEN + plaintext_size + chunks * TAG_LEN


def open_file_stream(
    source: BinaryIO,
    wraps: bytes,
    private_key: PrivateKey,
    context: Context | None = None,
    *,
    accept_legacy: bool = True,
) -> Iterator[bytes]:
    """Yield a sealed file's plaintext chunk by chunk; `OpenError` if anything is wrong.

    A version 2 stream needs the context its wrap block was made for; a version 1 stream
    opens with or without one, unless `accept_legacy` is false. A chunk is yielded only
    after it authenticated, and the stream only ends cleanly on a chunk flagged as last,
    so a truncated or extended file raises instead of ending early.
    """
    header = source.read(HEADER_LEN)
    version = _version_of(header, KIND_FILE)
    if version == VERSION and not accept_legacy:
        raise OpenError()
    data_key = _unwrap(wraps, private_key, KIND_FILE, version, context)
    yield from _open_chunks(source, data_key if version == VERSION else _content_key(data_key), header)


def _open_chunks(source: BinaryIO, key: bytes, header: bytes) -> Iterator[bytes]:
    aead = AESGCM(key)
    counter = 0
    current = source.read(SEALED_CHUNK_SIZE)
    while True:
        following = source.read(SEALED_CHUNK_SIZE)
        last = not following
        if len(current) < TAG_LEN or (not last and len(current) != SEALED_CHUNK_SIZE):
            raise OpenError()
        try:
            chunk = aead.decrypt(_chunk_nonce(counter, last), current, header)
        except InvalidTag:
            raise OpenError() from None
        yield chunk
        if last:
            return
        counter += 1
        current = following


def rebind_file_stream(
    source: BinaryIO,
    sink: BinaryIO,
    wraps: bytes,
    private_key: PrivateKey,
    recipients: Sequence[PublicKey],
    context: Context,
) -> bytes:
    """Re-seal a version 1 file stream from `source` as version 2 into `sink`, chunk by
    chunk (flat memory); returns its version 2 wrap block for `context`.

    On `OpenError` (damage found part-way, or `source` not version 1) `sink` holds an
    unfinished stream with no wrap block, which nobody can open: discard it.
    """
    sealer = FileSealer(sink)
    for chunk in _open_legacy_stream(source, wraps, private_key):
        sealer.write(chunk)
    sealer.close()
    return sealer.wrap_for(recipients, context)


def _open_legacy_stream(source: BinaryIO, wraps: bytes, private_key: PrivateKey) -> Iterator[bytes]:
    header = source.read(HEADER_LEN)
    if _version_of(header, KIND_FILE) != VERSION:
        raise OpenError()
    yield from _open_chunks(source, _unwrap(wraps, private_key, KIND_FILE, VERSION, None), header)


# --------------------------------------------------------------------------- certificates
#
# The recovery key vouches for officer keys: a certificate names the officer's recipient
# key and verify key, role, label and date, signed by the issuer. Its verify key, pinned
# outside the database, is the anchor every check starts from.


@dataclass(frozen=True)
class Certified:
    """What a certificate that checked says about its subject."""

    public_key: PublicKey
    verify_key: VerifyKey
    role: str
    label: str
    issued_on: str


def _check_key_label(label: str) -> None:
    if not isinstance(label, str) or not label.isprintable() or not 0 < len(label.encode("utf-8")) <= 200:
        raise ValueError("a key label is 1 to 200 bytes of printable text")


def certify(
    issuer: SigningKey, subject: PublicKey, subject_verify: VerifyKey, role: str, label: str, issued_on: str
) -> bytes:
    """A certificate by `issuer` for a recipient key and its verify key.

    `role` is an ASCII token ("officer"), `label` a printable name ("officer-2"),
    `issued_on` an ISO date. The issuer should have both keys from the subject's own key
    file, checked by key id: nothing here proves the two belong to one holder.
    """
    _check_token(role, "a role")
    _check_key_label(label)
    _check_date(issued_on)
    body = _lp(
        CERTIFICATE_LABEL,
        issuer.verify_key().key_id,
        subject.to_bytes(),
        subject_verify.to_bytes(),
        role.encode("ascii"),
        label.encode("utf-8"),
        issued_on.encode("ascii"),
    )
    return body + issuer.sign(body, label=CERTIFICATE_LABEL)


def check_certificate(anchor: VerifyKey, certificate: bytes) -> Certified:
    """What `certificate` says, if `anchor` signed it; `BadSignature` on anything wrong."""
    if not isinstance(certificate, (bytes, bytearray)) or len(certificate) <= SIGNATURE_LEN:
        raise BadSignature()
    certificate = bytes(certificate)
    body, signature = certificate[:-SIGNATURE_LEN], certificate[-SIGNATURE_LEN:]
    anchor.verify(signature, body, label=CERTIFICATE_LABEL)
    try:
        label_field, issuer_id, public, verify, role, label, issued_on = _read_lp(body, 7)
        if label_field != CERTIFICATE_LABEL or not hmac.compare_digest(issuer_id, anchor.key_id):
            raise ValueError("not a certificate by this anchor")
        certified = Certified(
            PublicKey.from_bytes(public),
            VerifyKey.from_bytes(verify),
            role.decode("ascii"),
            label.decode("utf-8"),
            issued_on.decode("ascii"),
        )
        _check_token(certified.role, "a role")
        _check_key_label(certified.label)
        _check_date(certified.issued_on)
    except (ValueError, UnicodeDecodeError):
        raise BadSignature() from None
    return certified


# --------------------------------------------------------------------------- signed items
#
# What a reader must trust as the officers' (a message to the reporter) is signed over
# its context and plaintext. The signature goes *inside* the envelope: a signature over a
# plaintext, stored in clear, would let anyone confirm a guess of that plaintext.


def sign_for(signing_key: SigningKey, context: Context, payload: bytes) -> bytes:
    """A signature on `payload` that holds only for `context` (this case, this slot)."""
    return signing_key.sign(context.digest + payload, label=SIGNED_ITEM_LABEL)


def check_signed(verify_key: VerifyKey, context: Context, payload: bytes, signature: bytes) -> None:
    """Return if `signature` is `verify_key`'s on `payload` for `context`; else `BadSignature`."""
    if not isinstance(context, Context) or not isinstance(payload, (bytes, bytearray)):
        raise BadSignature()
    verify_key.verify(signature, context.digest + bytes(payload), label=SIGNED_ITEM_LABEL)


@dataclass(frozen=True)
class Signed:
    """An opened, signed item: its plaintext and the key that signed it."""

    plaintext: bytes
    signer: VerifyKey


def seal_signed(plaintext: bytes, recipients: Sequence[PublicKey], context: Context, signing_key: SigningKey) -> bytes:
    """A version 2 envelope whose plaintext is signer key id (16) || signature || plaintext."""
    signature = sign_for(signing_key, context, plaintext)
    return seal(signing_key.verify_key().key_id + signature + plaintext, recipients, context)


class SignatureMemo:
    """Signed items already checked in this process, so that showing the same case again
    does not verify the same signatures again (about 0.3 ms each). An entry is a hash of
    the whole envelope, its context and the signer's key id: only those very bytes, opened
    for that very place and still signed by a key among the signers, skip the check."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._seen: dict[bytes, None] = {}
        self._capacity = capacity
        self._lock = threading.Lock()

    @staticmethod
    def _key(envelope: bytes, context: Context, signer: VerifyKey) -> bytes:
        return hashlib.sha256(_lp(b"whistle signature memo", envelope, context.digest, signer.key_id)).digest()

    def checked(self, envelope: bytes, context: Context, signer: VerifyKey) -> bool:
        return self._key(envelope, context, signer) in self._seen

    def remember(self, envelope: bytes, context: Context, signer: VerifyKey) -> None:
        with self._lock:
            if len(self._seen) >= self._capacity:
                self._seen.pop(next(iter(self._seen)))
            self._seen[self._key(envelope, context, signer)] = None


def open_signed(
    envelope: bytes,
    private_key: PrivateKey,
    context: Context,
    signers: Iterable[VerifyKey],
    memo: SignatureMemo | None = None,
) -> Signed:
    """Open a `seal_signed` envelope and check it was signed, for `context`, by one of
    `signers` (verify keys whose certificates checked). `OpenError` if it does not open,
    `BadSignature` if it opens but is not so signed. A version 1 envelope never passes:
    check `is_legacy` first to show such an item as unverified. With a `memo`, an
    envelope it has seen checked for this context and signer is not checked again."""
    inner = open_sealed(envelope, private_key, context, accept_legacy=False)
    if len(inner) < KEY_ID_LEN + SIGNATURE_LEN:
        raise BadSignature()
    key_id, signature = inner[:KEY_ID_LEN], inner[KEY_ID_LEN : KEY_ID_LEN + SIGNATURE_LEN]
    payload = inner[KEY_ID_LEN + SIGNATURE_LEN :]
    for signer in signers:
        if hmac.compare_digest(signer.key_id, key_id):
            if memo is None or not memo.checked(envelope, context, signer):
                check_signed(signer, context, payload, signature)
                if memo is not None:
                    memo.remember(envelope, context, signer)
            return Signed(payload, signer)
    raise BadSignature()


def unsafe_open_signed_unchecked(envelope: bytes, private_key: PrivateKey, context: Context) -> bytes:
    """The payload of a `seal_signed` envelope WITHOUT checking who signed it: for an
    officer reading an exported case offline with no anchor at hand, who is told so.
    Never for what a reporter is shown."""
    inner = open_sealed(envelope, private_key, context, accept_legacy=False)
    if len(inner) < KEY_ID_LEN + SIGNATURE_LEN:
        raise OpenError()
    return inner[KEY_ID_LEN + SIGNATURE_LEN :]


# --------------------------------------------------------------------------- passphrases

#: RFC 9106 second recommended option; at about 90 ms on a 2-core server.
PASSPHRASE_KDF = {"time_cost": 3, "memory_cost": 64 * 1024, "parallelism": 4}


def argon2id(secret: bytes, salt: bytes, *, time_cost: int, memory_cost: int, parallelism: int) -> bytes:
    """32 bytes of key material from a low-entropy secret (a passphrase or tracking code)."""
    return hash_secret_raw(secret, salt, time_cost, memory_cost, parallelism, 32, Type.ID)


def seal_with_key(key: bytes, plaintext: bytes, associated: bytes) -> bytes:
    """Symmetric seal under a 32-byte key: nonce || AES-256-GCM."""
    nonce = os.urandom(NONCE_LEN)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated)


def open_with_key(key: bytes, sealed: bytes, associated: bytes) -> bytes:
    if len(sealed) < NONCE_LEN + TAG_LEN:
        raise OpenError()
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_LEN], sealed[NONCE_LEN:], associated)
    except InvalidTag:
        raise OpenError() from None


# --------------------------------------------------------------------------- tracking codes


@dataclass(frozen=True, repr=False)
class CodeKeys:
    """What a tracking code's Argon2id output yields: a verifier and the reporter's key."""

    verifier: bytes
    reporter_key: PrivateKey


def code_keys(master: bytes) -> CodeKeys:
    """Split the Argon2id output of a tracking code into independent keys (HKDF)."""
    verifier = hkdf(master, b"whistle v1 code verifier")
    seed = hkdf(master, b"whistle v1 reporter key", MLKEM_SEED_LEN + X25519_LEN)
    return CodeKeys(verifier, PrivateKey(seed[:MLKEM_SEED_LEN], seed[MLKEM_SEED_LEN:]))


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def keyed_hash(key: bytes, label: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 under a server secret, with a label for domain separation."""
    return hmac.new(key, label + b"\x00" + data, hashlib.sha256).digest()


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


# --------------------------------------------------------------------------- passwords
#
# Officer sign-in passphrases are kept as Argon2id PHC strings (argon2-cffi's
# PasswordHasher), at the same RFC 9106 cost as key files unless a test injects less.


class PasswordHashing:
    """Hash and check sign-in passphrases; says when a stored hash wants the current cost."""

    def __init__(self, time_cost: int = 3, memory_cost: int = 64 * 1024, parallelism: int = 4) -> None:
        from argon2 import PasswordHasher

        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
        # A hash of nothing anyone knows, checked for unknown accounts so that they cost
        # exactly what a wrong passphrase costs.
        self._decoy = self._hasher.hash(os.urandom(16).hex())

    def hash(self, passphrase: str) -> str:
        return self._hasher.hash(passphrase)

    def check(self, stored: str | None, passphrase: str) -> bool:
        """True if `passphrase` matches `stored`; None (no such account) costs the same."""
        from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

        try:
            return self._hasher.verify(stored or self._decoy, passphrase) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self._hasher.check_needs_rehash(stored)


__all__ = [
    "CHUNK_SIZE",
    "BadSignature",
    "Certified",
    "CodeKeys",
    "Context",
    "FileSealer",
    "OpenError",
    "PrivateKey",
    "PublicKey",
    "Signed",
    "SigningKey",
    "VerifyKey",
    "argon2id",
    "case_binding",
    "certify",
    "check_certificate",
    "check_signed",
    "code_keys",
    "is_legacy",
    "open_file_stream",
    "open_sealed",
    "open_signed",
    "rebind_envelope",
    "rebind_file_stream",
    "rewrap",
    "rewrap_envelope",
    "seal",
    "seal_signed",
    "sign_for",
    "unwrap_data_key",
    "wrap_data_key",
]
