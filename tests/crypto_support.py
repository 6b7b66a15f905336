"""What the crypto tests share: the committed known-answer vectors, the fixed keys they
were made from (as fixtures), and small byte helpers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from whistle import crypto

VECTORS = Path(__file__).parent / "vectors"


def vector(name: str) -> dict:
    return json.loads((VECTORS / f"{name}.json").read_text("utf-8"))


def fixed_key(name: str) -> crypto.PrivateKey:
    """A key of keys.json ("officer", "recovery", "outsider"), or the reporter key of code.json."""
    if name == "reporter":
        code = vector("code")
        return crypto.PrivateKey(bytes.fromhex(code["reporter_mlkem_seed"]), bytes.fromhex(code["reporter_x25519_private"]))
    k = vector("keys")["keys"][name]
    return crypto.PrivateKey(bytes.fromhex(k["mlkem_seed"]), bytes.fromhex(k["x25519_private"]))


def lp(*fields: bytes) -> bytes:
    """docs/crypto.md's length-prefixed fields, written out again from the spec."""
    return b"".join(len(f).to_bytes(4, "big") + f for f in fields)


def pattern(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


def assert_large_stream_matches(stream: bytes, v: dict) -> None:
    """A large file-stream vector is pinned by size, digest, tail and every chunk's tag."""
    assert len(stream) == v["sealed_size"] == crypto.sealed_file_size(v["plaintext_size"])
    assert hashlib.sha256(stream).hexdigest() == v["sealed_sha256"]
    assert stream[-64:].hex() == v["sealed_tail"]
    body = stream[crypto.HEADER_LEN :]
    assert [body[i : i + crypto.SEALED_CHUNK_SIZE][-16:].hex() for i in range(0, len(body), crypto.SEALED_CHUNK_SIZE)] == v["tags"]


def flipped(data: bytes, index: int, mask: int = 0x01) -> bytes:
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


@pytest.fixture(scope="module")
def officer() -> crypto.PrivateKey:
    return fixed_key("officer")


@pytest.fixture(scope="module")
def recovery() -> crypto.PrivateKey:
    return fixed_key("recovery")


@pytest.fixture(scope="module")
def outsider() -> crypto.PrivateKey:
    return fixed_key("outsider")


@pytest.fixture(scope="module")
def both(officer, recovery) -> list[crypto.PublicKey]:
    return [officer.public_key(), recovery.public_key()]
