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
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

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

    def within(self, floor: CodeCost, ceiling: CodeCost | None = None) -> bool:
        """Whether each parameter lies between `floor`'s and `ceiling`'s (inclusive), and
        Argon2id can run it (at least 8 KiB of memory per lane)."""
        ceiling = ceiling or CEILING
        return self.memory_cost >= 8 * self.parallelism and all(
            low <= value <= high for low, value, high in zip(floor.as_tuple(), self.as_tuple(), ceiling.as_tuple())
        )


#: The real cost (RFC 9106 second option). Tests inject a cheaper one.
DEFAULT_COST = CodeCost()
#: The least a deployment may configure: RFC 9106's second option in memory and passes.
FLOOR = CodeCost(time_cost=3, memory_cost=64 * 1024, parallelism=1)
#: The least Argon2id itself takes; only a test's `unsafe_code_cost` brings the floor here.
UNSAFE_FLOOR = CodeCost(time_cost=1, memory_cost=8, parallelism=1)
#: The most one derivation may ask for, configured or read from a case's row: a database
#: writer cannot make a check take the server's memory.
CEILING = CodeCost(time_cost=10, memory_cost=1024 * 1024, parallelism=8)


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


class Busy(Exception):
    """Too many code checks are running in this process; the reporter should retry soon."""


class ArgonGate:
    """Caps the code derivations running at once in this process, and keeps one slot free
    of status checks so that new reports still go through under a flood of checks.

    Each derivation takes 64 MiB and every core for ~0.1 s: without a cap, a burst would
    exhaust memory. A check that cannot start within `check_wait` seconds gives up with
    `Busy` (a quick 503) instead of piling up threads, and when three checks already wait
    for each check slot, a new one gives up at once: a flood of checks holds at most four
    threads per check slot, and the rest stay free for pages and reports. A new report
    always waits its turn.
    """

    def __init__(self, slots: int, check_wait: float = 2.0) -> None:
        self.slots = max(1, slots)
        self.check_wait = check_wait
        self._all = threading.BoundedSemaphore(self.slots)
        check_slots = max(1, self.slots - 1)
        self._checks = threading.BoundedSemaphore(check_slots)
        self._check_room = threading.BoundedSemaphore(4 * check_slots)  # running + waiting

    @contextmanager
    def new_report(self) -> Iterator[None]:
        with self._all:
            yield

    @contextmanager
    def check(self) -> Iterator[None]:
        if not self._check_room.acquire(blocking=False):
            raise Busy()
        try:
            if not self._checks.acquire(timeout=self.check_wait):
                raise Busy()
            try:
                with self._all:
                    yield
            finally:
                self._checks.release()
        finally:
            self._check_room.release()


_gate = ArgonGate(2)


def set_concurrency(slots: int, check_wait: float = 2.0) -> None:
    global _gate
    _gate = ArgonGate(slots, check_wait)


def derive(secret: str, salt: bytes, cost: CodeCost, *, check: bool = False) -> crypto.CodeKeys:
    """The verifier and reporter key for a code's secret part under a report's salt.

    `check=True` for proving a typed code (may raise `Busy`); false for a new report.
    """
    with _gate.check() if check else _gate.new_report():
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
