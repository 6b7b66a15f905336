"""Every cryptographic operation of whistle, and the only module that imports `cryptography`.

What it owns (the byte formats are specified in docs/crypto.md, with test vectors):

* Recipient keys: a hybrid post-quantum key pair, ML-KEM-768 + X25519, used through HPKE
  (RFC 9180) with HKDF-SHA256 and AES-256-GCM. A private key is kept as its two raw parts
  (a 64-byte ML-KEM seed and a 32-byte X25519 scalar); a public key as its two raw parts.
* Key wraps: a fresh 32-byte data key per item, wrapped for every recipient.
* Envelopes: a small secret item (tip fields, a message) sealed under its data key.
* File streams: a large item sealed in 64 KiB chunks as it arrives (a STREAM construction:
  counter nonces with a last-chunk flag), so memory stays flat and no plaintext touches disk.
* Passphrase-protected private key files and the key material derived from a tracking code.

Every failure to open anything raises `OpenError`, with no detail: callers cannot tell a
wrong key from a damaged or truncated ciphertext, and neither can an attacker.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from functools import cached_property
from typing import BinaryIO, Iterator, Sequence

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"whst"
VERSION = 1
#: Suite 1: HPKE(ML-KEM-768+X25519, HKDF-SHA256, AES-256-GCM) wraps; AES-256-GCM content.
SUITE_V1 = 1

KIND_ITEM = 1  # envelope: tip fields, a message, a note
KIND_FILE = 2  # chunked file stream

DATA_KEY_LEN = 32
KEY_ID_LEN = 16
MLKEM_SEED_LEN = 64
MLKEM_PUBLIC_LEN = 1184
X25519_LEN = 32
PUBLIC_KEY_LEN = MLKEM_PUBLIC_LEN + X25519_LEN
PRIVATE_KEY_LEN = MLKEM_SEED_LEN + X25519_LEN
WRAPPED_KEY_LEN = 1168  # HPKE enc (1120) + sealed data key (32) + tag (16)
NONCE_LEN = 12
TAG_LEN = 16

#: Plaintext bytes per file chunk. 64 KiB keeps per-chunk overhead under 0.03%.
CHUNK_SIZE = 64 * 1024
SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_LEN

_SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_WRAP_INFO = b"whistle v1 wrap"
_KEY_ID_LABEL = b"whistle v1 key id"


class OpenError(Exception):
    """Something could not be opened. Deliberately says nothing about why."""

    def __init__(self) -> None:
        super().__init__("could not open")


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


# --------------------------------------------------------------------------- key wraps
#
# A wrap block lists, for each recipient, its key id and the data key sealed to it with
# HPKE. Each HPKE seal binds the item's fixed header and the recipient's key id through
# `info`, so a wrap cannot be moved to another kind of item or relabelled. The block is kept
# apart from the sealed content so that recipients can be added or removed later (officer
# rotation) without touching, or even reading, the content: see docs/crypto.md.


def _fixed_header(kind: int) -> bytes:
    return MAGIC + bytes([VERSION, SUITE_V1, kind])


def _wrap_info(kind: int, key_id: bytes) -> bytes:
    return _WRAP_INFO + _fixed_header(kind) + key_id


def wrap_data_key(data_key: bytes, recipients: Sequence[PublicKey], kind: int) -> bytes:
    """Seal `data_key` for every recipient; returns the wrap block."""
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
        out.append(_SUITE.encrypt(data_key, recipient._hpke, info=_wrap_info(kind, key_id)))
    return b"".join(out)


def _parse_wraps(block: bytes) -> list[tuple[bytes, bytes]]:
    if not block:
        raise OpenError()
    count = block[0]
    entry = KEY_ID_LEN + WRAPPED_KEY_LEN
    if count == 0 or len(block) != 1 + count * entry:
        raise OpenError()
    wraps = []
    for i in range(count):
        start = 1 + i * entry
        wraps.append((block[start : start + KEY_ID_LEN], block[start + KEY_ID_LEN : start + entry]))
    return wraps


def wrap_block_len(block_prefix: bytes) -> int:
    """Length of a wrap block from its first byte (the recipient count)."""
    if not block_prefix or block_prefix[0] == 0:
        raise OpenError()
    return 1 + block_prefix[0] * (KEY_ID_LEN + WRAPPED_KEY_LEN)


def recipient_ids(block: bytes) -> list[bytes]:
    """Key ids a wrap block is sealed to."""
    return [key_id for key_id, _ in _parse_wraps(block)]


def unwrap_data_key(block: bytes, private_key: PrivateKey, kind: int) -> bytes:
    my_id = private_key.key_id
    for key_id, wrapped in _parse_wraps(block):
        if hmac.compare_digest(key_id, my_id):
            try:
                data_key = _SUITE.decrypt(wrapped, private_key._hpke, info=_wrap_info(kind, key_id))
            except (InvalidTag, ValueError):
                raise OpenError() from None
            if len(data_key) != DATA_KEY_LEN:
                raise OpenError()
            return data_key
    raise OpenError()


def rewrap(block: bytes, private_key: PrivateKey, recipients: Sequence[PublicKey], kind: int) -> bytes:
    """A new wrap block for exactly `recipients`, opened with one current recipient's key."""
    return wrap_data_key(unwrap_data_key(block, private_key, kind), recipients, kind)


# --------------------------------------------------------------------------- envelopes
#
# envelope = fixed header (magic, version, suite, kind) || wrap block || nonce || AES-GCM
# The fixed header is the associated data of the content.


def seal(plaintext: bytes, recipients: Sequence[PublicKey]) -> bytes:
    """Seal one small item for `recipients` under a fresh data key."""
    data_key = AESGCM.generate_key(bit_length=256)
    return _seal_with(plaintext, data_key, os.urandom(NONCE_LEN), wrap_data_key(data_key, recipients, KIND_ITEM))


def _seal_with(plaintext: bytes, data_key: bytes, nonce: bytes, wraps: bytes) -> bytes:
    header = _fixed_header(KIND_ITEM)
    return header + wraps + nonce + AESGCM(data_key).encrypt(nonce, plaintext, header)


def _split_envelope(envelope: bytes) -> tuple[bytes, bytes]:
    header = _fixed_header(KIND_ITEM)
    if len(envelope) < len(header) + 1 or not hmac.compare_digest(envelope[: len(header)], header):
        raise OpenError()
    wraps_len = wrap_block_len(envelope[len(header) : len(header) + 1])
    body_start = len(header) + wraps_len
    if len(envelope) < body_start + NONCE_LEN + TAG_LEN:
        raise OpenError()
    return envelope[len(header) : body_start], envelope[body_start:]


def open_sealed(envelope: bytes, private_key: PrivateKey) -> bytes:
    """Open an envelope with one recipient's private key; `OpenError` on any failure."""
    if not isinstance(envelope, (bytes, bytearray)):
        raise OpenError()
    wraps, body = _split_envelope(bytes(envelope))
    data_key = unwrap_data_key(wraps, private_key, KIND_ITEM)
    try:
        return AESGCM(data_key).decrypt(body[:NONCE_LEN], body[NONCE_LEN:], _fixed_header(KIND_ITEM))
    except InvalidTag:
        raise OpenError() from None


def envelope_recipients(envelope: bytes) -> list[bytes]:
    return recipient_ids(_split_envelope(envelope)[0])


def rewrap_envelope(envelope: bytes, private_key: PrivateKey, recipients: Sequence[PublicKey]) -> bytes:
    """The same envelope, its content untouched, sealed to exactly `recipients`."""
    wraps, body = _split_envelope(envelope)
    return _fixed_header(KIND_ITEM) + rewrap(wraps, private_key, recipients, KIND_ITEM) + body


# --------------------------------------------------------------------------- file streams
#
# file = fixed header (magic, version, suite, kind=file) || chunk*
# chunk i = AES-256-GCM(data key, nonce = i as 11 bytes big-endian || last flag, aad = header)
# Every chunk but the last holds exactly CHUNK_SIZE plaintext bytes; the last holds 1 to
# CHUNK_SIZE bytes (0 only for an empty file) and is flagged, so truncation, extension and
# reordering are all detected.


def _chunk_nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class FileSealer:
    """Encrypts a file as its bytes arrive and writes only ciphertext to `sink`.

    Holds at most one chunk of plaintext in memory. `wraps` is the wrap block to store
    with the file's record; the sealed stream itself names no recipient.
    """

    def __init__(self, sink: BinaryIO, recipients: Sequence[PublicKey], *, data_key: bytes | None = None) -> None:
        self._key = data_key or AESGCM.generate_key(bit_length=256)
        self._aead = AESGCM(self._key)
        self._sink = sink
        self._chunk = bytearray(CHUNK_SIZE)  # the one chunk of plaintext held, fixed size
        self._fill = 0
        self._counter = 0
        self._closed = False
        self.plaintext_size = 0
        self.wraps = wrap_data_key(self._key, recipients, KIND_FILE) if recipients else b""
        self._header = _fixed_header(KIND_FILE)
        sink.write(self._header)

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
        self._sink.write(self._aead.encrypt(_chunk_nonce(self._counter, last), chunk, self._header))
        self._counter += 1

    def close(self) -> None:
        """Seal the last chunk. Must be called, or the file will not open."""
        if not self._closed:
            self._emit(bytes(self._chunk[: self._fill]), last=True)
            self._chunk = bytearray()
            self._closed = True


def sealed_file_size(plaintext_size: int) -> int:
    chunks = max(1, -(-plaintext_size // CHUNK_SIZE))
    return len(_fixed_header(KIND_FILE)) + plaintext_size + chunks * TAG_LEN


def open_file_stream(source: BinaryIO, wraps: bytes, private_key: PrivateKey) -> Iterator[bytes]:
    """Yield a sealed file's plaintext chunk by chunk; `OpenError` if anything is wrong.

    A chunk is yielded only after it authenticated, and the stream only ends cleanly on a
    chunk flagged as last, so a truncated or extended file raises instead of ending early.
    """
    data_key = unwrap_data_key(wraps, private_key, KIND_FILE)
    yield from _open_chunks(source, data_key)


def _open_chunks(source: BinaryIO, data_key: bytes) -> Iterator[bytes]:
    header = _fixed_header(KIND_FILE)
    if source.read(len(header)) != header:
        raise OpenError()
    aead = AESGCM(data_key)
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


def hkdf(key_material: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(key_material)


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
    "CodeKeys",
    "FileSealer",
    "OpenError",
    "PrivateKey",
    "PublicKey",
    "argon2id",
    "code_keys",
    "open_file_stream",
    "open_sealed",
    "rewrap",
    "rewrap_envelope",
    "seal",
    "unwrap_data_key",
    "wrap_data_key",
]
