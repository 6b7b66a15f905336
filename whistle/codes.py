"""Tracking codes: making, showing, parsing and verifying them. The only place Argon2 runs
for a code.

A code is 28 digits, shown as seven groups of four:

    LLLL LLLS SSSS SSSS SSSS SSSS SSSC
    L = lookup part (7 digits, not secret: finds the report's row)
    S = secret part (20 digits from `secrets`, 66.4 bits)
    C = Damm check digit over the 27 digits before it

Only digits, so it can be typed on any phone keypad (Thai digits are accepted too). The
check digit catches every single-digit typo and every swap of two neighbouring digits
before any expensive work is done. The secret is verified with Argon2id under a per-report
salt; the same derivation yields the reporter's own key (see `crypto.code_keys`).
"""

from __future__ import annotations

import secrets
import threading
import unicodedata
from dataclasses import dataclass

from . import crypto

LOOKUP_DIGITS = 7
SECRET_DIGITS = 20
CODE_DIGITS = LOOKUP_DIGITS + SECRET_DIGITS + 1
GROUP = 4
SALT_LEN = 16

# Damm's totally anti-symmetric quasigroup of order 10.
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


class MalformedCode(ValueError):
    """The text is not a well-formed tracking code (length, characters or check digit)."""


@dataclass(frozen=True)
class CodeCost:
    """Argon2id parameters for tracking codes; memory_cost in KiB."""

    time_cost: int = 3
    memory_cost: int = 64 * 1024
    parallelism: int = 4

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.time_cost, self.memory_cost, self.parallelism)


#: The real cost (RFC 9106 second option). Tests inject a cheaper one.
DEFAULT_COST = CodeCost()


def damm_digit(digits: str) -> str:
    interim = 0
    for ch in digits:
        interim = _DAMM[interim][ord(ch) - 48]
    return str(interim)


@dataclass(frozen=True, repr=False)
class TrackingCode:
    lookup: str
    secret: str

    def __repr__(self) -> str:
        return f"TrackingCode(lookup={self.lookup!r}, secret=<hidden>)"

    @property
    def digits(self) -> str:
        body = self.lookup + self.secret
        return body + damm_digit(body)

    def display(self) -> str:
        """The code in groups of four, as the reporter sees and types it."""
        d = self.digits
        return " ".join(d[i : i + GROUP] for i in range(0, len(d), GROUP))

    @property
    def last_group(self) -> str:
        return self.digits[-GROUP:]


def new_code() -> TrackingCode:
    lookup = "".join(secrets.choice("0123456789") for _ in range(LOOKUP_DIGITS))
    secret = "".join(secrets.choice("0123456789") for _ in range(SECRET_DIGITS))
    return TrackingCode(lookup, secret)


def normalise_digits(text: str) -> str:
    """ASCII digits from what was typed: spaces, dashes and dots dropped, Thai digits mapped."""
    out = []
    for ch in text:
        if ch in " -.\u00a0\t":
            continue
        if ch.isdecimal():
            out.append(str(unicodedata.decimal(ch)))
        else:
            raise MalformedCode("not a digit")
    return "".join(out)


def parse_code(text: str) -> TrackingCode:
    """A `TrackingCode` from typed text, or `MalformedCode`. Cheap: no Argon2 here."""
    if len(text) > 4 * CODE_DIGITS:  # length cap before any work
        raise MalformedCode("too long")
    digits = normalise_digits(text)
    if len(digits) != CODE_DIGITS:
        raise MalformedCode("wrong length")
    if damm_digit(digits[:-1]) != digits[-1]:
        raise MalformedCode("check digit")
    return TrackingCode(digits[:LOOKUP_DIGITS], digits[LOOKUP_DIGITS:-1])


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_LEN)


class ArgonLimiter:
    """Caps how many code derivations run at once in this process.

    Each derivation takes 64 MiB and all cores for ~0.1 s; without a cap a burst of status
    checks could exhaust memory. Waiters queue instead of failing.
    """

    def __init__(self, slots: int) -> None:
        self._sem = threading.BoundedSemaphore(max(1, slots))

    def __enter__(self) -> None:
        self._sem.acquire()

    def __exit__(self, *exc: object) -> None:
        self._sem.release()


_limiter = ArgonLimiter(2)


def set_concurrency(slots: int) -> None:
    global _limiter
    _limiter = ArgonLimiter(slots)


def derive(secret: str, salt: bytes, cost: CodeCost) -> crypto.CodeKeys:
    """The verifier and reporter key for a code's secret part under a report's salt."""
    with _limiter:
        master = crypto.argon2id(
            secret.encode("ascii"),
            salt,
            time_cost=cost.time_cost,
            memory_cost=cost.memory_cost,
            parallelism=cost.parallelism,
        )
    return crypto.code_keys(master)


def decoy_salt(server_key: bytes, lookup: str) -> bytes:
    """A stable salt for a lookup that matches no report, so an unknown code costs exactly
    what a wrong one costs, and repeating it gives the same work."""
    return crypto.keyed_hash(server_key, b"decoy salt", lookup.encode())[:SALT_LEN]


def verifier_matches(expected: bytes, derived: bytes) -> bool:
    return crypto.constant_time_equal(expected, derived)
