"""Tracking codes: making, showing, parsing and checking them, and what bounds the checking.
The only place Argon2 runs for a code.

A code issued today (layout 2) is 32 digits, shown as eight groups of four:

    LLLL LLTT TTTS SSSS SSSS SSSS SSSS SSSC
    L = lookup part (6 digits, not secret: finds the report's row)
    T = tag (5 digits): a MAC under the server key over the lookup and secret parts
    S = secret part (20 digits from `secrets`, 66.4 bits)
    C = Damm check digit over the 31 digits before it

Codes issued before it (layout 1) are 28 digits in seven groups, `LLLLLLL S×20 C`, and keep
working; the length tells the two apart. Only digits, so a code can be typed on any phone
keypad (Thai digits are accepted too). The check digit catches every single-digit typo and
every swap of two neighbouring digits before any other work. The tag lets the server refuse
a made-up code with one HMAC: only 1 in 100 000 carries a right tag, whether or not a case
has its lookup. The secret is verified with Argon2id under a per-report salt; the same
derivation yields the reporter's own key (see `crypto.code_keys`).

What bounds the Argon2 work of checking codes, so that a flood of wrong codes cannot take
it from real reporters (docs/crypto.md section 12 says why each is there):

* `CheckBudget`: wrong codes with a right tag may run Argon2 a few times per lookup part
  per hour; codes without one (layout 1, or issued under an earlier secret key) share a
  small budget per minute. Both count failures only, so a budget says nothing of whether
  a case exists, and an exhausted one answers "busy" before any Argon2.
* `ArgonGate`: derivations at once in this process, one slot kept for new reports.
* `costs_to_run`: every check runs one derivation per Argon2 cost a live case still has,
  so a wrong code costs what an unknown one costs even after the cost was raised.
"""

from __future__ import annotations

import secrets
import threading
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from . import crypto
from .ephemeral import EphemeralStore, StateUnavailable

LOOKUP_DIGITS = 6
TAG_DIGITS = 5
SECRET_DIGITS = 20
CODE_DIGITS = LOOKUP_DIGITS + TAG_DIGITS + SECRET_DIGITS + 1
#: Layout 1, issued before the tag: a 7-digit lookup part and no tag.
V1_LOOKUP_DIGITS = 7
V1_CODE_DIGITS = V1_LOOKUP_DIGITS + SECRET_DIGITS + 1
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

_TAG_LABEL = b"code tag"
_BUDGET_LABEL = b"code budget"
_SEALED_KEY_INFO = b"whistle v1 reporter key seal"
_SEALED_KEY_AAD = b"whistle v1 sealed reporter key"


class MalformedCode(ValueError):
    """The text is not a well-formed tracking code (length, characters or check digit)."""


class WrongLength(MalformedCode):
    """Digits only, but neither 32 nor 28 of them: a group is missing or doubled."""


# --------------------------------------------------------------------------- costs


@dataclass(frozen=True)
class CodeCost:
    """Argon2id parameters for tracking codes; memory_cost in KiB."""

    time_cost: int = 3
    memory_cost: int = 64 * 1024
    parallelism: int = 4

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.time_cost, self.memory_cost, self.parallelism)

    def within(self, floor: CodeCost) -> bool:
        """Whether each parameter lies between `floor`'s and `CEILING`'s (inclusive), and
        Argon2id can run it (at least 8 KiB of memory per lane)."""
        return self.memory_cost >= 8 * self.parallelism and all(
            low <= value <= high for low, value, high in zip(floor.as_tuple(), self.as_tuple(), CEILING.as_tuple())
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
#: Older costs, besides the current one, that checks still run (those of the most cases).
MAX_OLDER_COSTS = 2


def costs_to_run(current: CodeCost, stored: Iterable[tuple[CodeCost, int]], floor: CodeCost) -> list[CodeCost]:
    """The costs every check runs, one derivation each, in a fixed order.

    `stored` pairs each cost live cases have with how many have it. A case is verified by
    the derivation at its own cost, the others are run with a decoy salt, and an unknown
    lookup runs them all with decoy salts: the work depends on which costs exist at all,
    never on the case the lookup names. A stored cost outside [floor, CEILING] is not run
    (its case cannot be opened); of the others, the `MAX_OLDER_COSTS` held by the most
    cases are.
    """
    older = sorted(
        ((count, cost) for cost, count in stored if cost != current and cost.within(floor)),
        key=lambda pair: (-pair[0], pair[1].as_tuple()),
    )
    return sorted({current, *(cost for _count, cost in older[:MAX_OLDER_COSTS])}, key=CodeCost.as_tuple)


# --------------------------------------------------------------------------- the code


def damm_digit(digits: str) -> str:
    interim = 0
    for ch in digits:
        interim = _DAMM[interim][ord(ch) - 48]
    return str(interim)


def _all_digits(text: str, length: int) -> bool:
    return len(text) == length and text.isascii() and text.isdigit()


@dataclass(frozen=True, repr=False)
class TrackingCode:
    """A code's parts. `tag` is None for a layout-1 code (and then the lookup has 7 digits)."""

    lookup: str
    secret: str
    tag: str | None = None

    def __post_init__(self) -> None:
        lookup_digits = V1_LOOKUP_DIGITS if self.tag is None else LOOKUP_DIGITS
        if not (
            _all_digits(self.lookup, lookup_digits)
            and _all_digits(self.secret, SECRET_DIGITS)
            and (self.tag is None or _all_digits(self.tag, TAG_DIGITS))
        ):
            raise ValueError("a tracking code's parts have fixed numbers of digits")

    def __repr__(self) -> str:
        return f"TrackingCode(lookup={self.lookup!r}, tag={self.tag!r}, secret=<hidden>)"

    @property
    def layout(self) -> int:
        return 1 if self.tag is None else 2

    @property
    def digits(self) -> str:
        body = self.lookup + (self.tag or "") + self.secret
        return body + damm_digit(body)

    def display(self) -> str:
        """The code in groups of four, as the reporter sees and types it."""
        d = self.digits
        return " ".join(d[i : i + GROUP] for i in range(0, len(d), GROUP))

    @property
    def last_group(self) -> str:
        return self.digits[-GROUP:]


def _random_digits(n: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(n))


def code_tag(server_key: bytes, lookup: str, secret: str) -> str:
    """The tag of a layout-2 code: HMAC-SHA256 under the server key over lookup || secret,
    its first 8 bytes as a number, modulo 10^5, as 5 digits."""
    mac = crypto.keyed_hash(server_key, _TAG_LABEL, (lookup + secret).encode("ascii"))
    return str(int.from_bytes(mac[:8], "big") % 10**TAG_DIGITS).zfill(TAG_DIGITS)


def new_code(server_key: bytes) -> TrackingCode:
    """A new code, in the current layout, with its tag under `server_key`."""
    lookup, secret = _random_digits(LOOKUP_DIGITS), _random_digits(SECRET_DIGITS)
    return TrackingCode(lookup, secret, code_tag(server_key, lookup, secret))


def tag_matches(server_key: bytes, code: TrackingCode) -> bool:
    """Whether the code carries the tag this server key gives it (never for layout 1)."""
    return code.tag is not None and crypto.constant_time_equal(
        code.tag.encode(), code_tag(server_key, code.lookup, code.secret).encode()
    )


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
    """A `TrackingCode` from typed text, or `MalformedCode`. Cheap: no key, no Argon2 here."""
    if len(text) > 4 * CODE_DIGITS:  # length cap before any work
        raise MalformedCode("too long")
    digits = normalise_digits(text)
    if len(digits) not in (CODE_DIGITS, V1_CODE_DIGITS):
        raise WrongLength("wrong length")
    if damm_digit(digits[:-1]) != digits[-1]:
        raise MalformedCode("check digit")
    if len(digits) == V1_CODE_DIGITS:
        return TrackingCode(digits[:V1_LOOKUP_DIGITS], digits[V1_LOOKUP_DIGITS:-1])
    tag_end = LOOKUP_DIGITS + TAG_DIGITS
    return TrackingCode(digits[:LOOKUP_DIGITS], digits[tag_end:-1], digits[LOOKUP_DIGITS:tag_end])


# --------------------------------------------------------------------------- budgets


class Busy(Exception):
    """Too many code checks are running, or have failed here lately; retry in a while."""


class CheckBudget:
    """How many wrong codes may run Argon2 under one key in one window.

    Only failures count, and whether a code fails does not depend on whether its lookup
    names a case: a real reporter's own checks never spend the budget of their lookup,
    so its state tells nothing about whether anyone uses it. `admit` runs before any
    Argon2 and refuses with `Busy` once the window's failures reached the limit (a few
    checks already running may still add theirs). A state store that cannot be reached
    also answers `Busy`: without it nothing bounds the flood.
    """

    def __init__(self, store: EphemeralStore, key: str, limit: int, window: float) -> None:
        self.store, self.key, self.limit, self.window = store, key, limit, window

    def admit(self) -> None:
        try:
            used = self.store.get(self.key)
        except StateUnavailable:
            raise Busy() from None
        if used is not None and int(used) >= self.limit:
            raise Busy()

    def failed(self) -> None:
        try:
            self.store.incr(self.key, self.window)
        except StateUnavailable:
            pass  # the answer is the same; the next check will find the store or be busy


def check_budget(
    store: EphemeralStore, server_key: bytes, code: TrackingCode, tagged: bool, per_lookup: int, untagged: int
) -> CheckBudget:
    """The budget a check spends: its lookup's own (per hour) if its tag is right, else the
    one shared by every code without a right tag (per minute)."""
    if tagged:
        name = crypto.keyed_hash(server_key, _BUDGET_LABEL, code.lookup.encode())[:12].hex()
        return CheckBudget(store, "codes:lookup:" + name, per_lookup, 3600)
    return CheckBudget(store, "codes:untagged", untagged, 60)


# --------------------------------------------------------------------------- the gate


class ArgonGate:
    """Caps the code derivations running at once in this process, and keeps one slot free
    of status checks so that new reports still go through under a flood of checks.

    Each derivation takes 64 MiB and every core for ~0.1 s: without a cap, a burst would
    exhaust memory. A check that cannot start within `check_wait` seconds gives up with
    `Busy` (a quick 503) instead of piling up threads, and when three checks already wait
    for each check slot, a new one gives up at once: a flood of checks holds at most four
    threads per check slot, and the rest stay free for pages and reports. A check without
    a right tag also gives up at once while another such check runs here, so that the
    untagged budget, when a new window opens, is not spent in a burst that fills the
    waiting room. A new report always waits its turn.
    """

    def __init__(self, slots: int, check_wait: float = 2.0) -> None:
        self.slots = max(1, slots)
        self.check_wait = check_wait
        self._all = threading.BoundedSemaphore(self.slots)
        check_slots = max(1, self.slots - 1)
        self._checks = threading.BoundedSemaphore(check_slots)
        self._check_room = threading.BoundedSemaphore(4 * check_slots)  # running + waiting
        self._untagged = threading.BoundedSemaphore(1)

    @contextmanager
    def new_report(self) -> Iterator[None]:
        with self._all:
            yield

    @contextmanager
    def check(self, *, untagged: bool) -> Iterator[None]:
        if untagged and not self._untagged.acquire(blocking=False):
            raise Busy()
        try:
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
        finally:
            if untagged:
                self._untagged.release()


_gate = ArgonGate(2)


def set_concurrency(slots: int, check_wait: float = 2.0) -> None:
    global _gate
    _gate = ArgonGate(slots, check_wait)


# --------------------------------------------------------------------------- derivation


@dataclass(frozen=True, repr=False)
class Derivation:
    """What one Argon2id run over a code's secret yields: the verifier and derived
    reporter key (`keys`), and the key that seals a reporter key kept from before."""

    keys: crypto.CodeKeys
    seal_key: bytes


def _argon2(secret: str, salt: bytes, cost: CodeCost) -> bytes:
    return crypto.argon2id(
        secret.encode("ascii"),
        salt,
        time_cost=cost.time_cost,
        memory_cost=cost.memory_cost,
        parallelism=cost.parallelism,
    )


def derive(secret: str, salt: bytes, cost: CodeCost) -> crypto.CodeKeys:
    """The verifier and reporter key for a new report's code: waits its turn at the gate."""
    with _gate.new_report():
        master = _argon2(secret, salt, cost)
    return crypto.code_keys(master)


def derive_each(secret: str, plan: Sequence[tuple[bytes, CodeCost]], *, untagged: bool) -> list[Derivation]:
    """One derivation per (salt, cost) of `plan`, in order, holding one check slot for all
    of them (may raise `Busy`)."""
    with _gate.check(untagged=untagged):
        masters = [_argon2(secret, salt, cost) for salt, cost in plan]
    return [Derivation(crypto.code_keys(m), crypto.hkdf(m, _SEALED_KEY_INFO)) for m in masters]


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_LEN)


def decoy_salt(server_key: bytes, lookup: str) -> bytes:
    """A stable salt for a derivation that verifies nothing (a lookup that matches no report,
    or a cost the report does not have): it costs exactly what a real one costs."""
    return crypto.keyed_hash(server_key, b"decoy salt", lookup.encode())[:SALT_LEN]


def verifier_matches(expected: bytes, derived: bytes) -> bool:
    return crypto.constant_time_equal(expected, derived)


def seal_reporter_key(seal_key: bytes, reporter_key: crypto.PrivateKey) -> bytes:
    """A reporter key kept across a move to a new cost, sealed under the new derivation."""
    return crypto.seal_with_key(seal_key, reporter_key.unsafe_to_bytes(), _SEALED_KEY_AAD)


def open_reporter_key(seal_key: bytes, sealed: bytes) -> crypto.PrivateKey:
    """The kept reporter key; `crypto.OpenError` if it does not open."""
    raw = crypto.open_with_key(seal_key, sealed, _SEALED_KEY_AAD)
    try:
        return crypto.PrivateKey.from_bytes(raw)
    except ValueError:
        raise crypto.OpenError() from None
