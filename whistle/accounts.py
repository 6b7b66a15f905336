"""Accounts of the officers' app: creating them, passphrases, the TOTP second factor,
recovery codes, and signing in.

One passphrase both signs an officer in and unlocks their private key (kept in the
account as a passphrase-sealed key document, keyring.py), so signing in is unlocking and
the key exists in usable form only inside that officer's session (officer/sessions.py).
Supervisors and admins have no private key: they can never read a tip.

Signing in answers the same way for an unknown account, a wrong passphrase and a wrong
code (`SignInFailed`), costs the same Argon2id work for all three, and is throttled per
account name (whether or not it exists) on top of the per-client rate limit.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
import unicodedata
from dataclasses import dataclass

import pyotp
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit, crypto, keyring
from .ephemeral import EphemeralStore
from .models import Account, KeyRole, Role

MIN_PASSPHRASE = keyring.MIN_PASSPHRASE
MAX_PASSPHRASE = 1024  # a cap before any hashing
#: Failed sign-ins allowed per account name in `THROTTLE_SECONDS` before it is held.
THROTTLE_FAILURES = 10
THROTTLE_SECONDS = 15 * 60
TOTP_STEP = 30
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_TOTP_INFO = b"whistle v1 totp secret"


class SignInFailed(Exception):
    """The name, the passphrase or the code is wrong (deliberately not saying which)."""


class Throttled(Exception):
    """Too many failed sign-ins for this account name; try again later."""


class AccountError(ValueError):
    """An account cannot be created or changed this way; the message says why."""


def generate_passphrase() -> str:
    """A one-time passphrase: six groups of five lowercase letters and digits (about 148
    bits), easy to copy from paper."""
    return "-".join("".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(5)) for _ in range(6))


def normalise_username(name: str) -> str:
    return unicodedata.normalize("NFKC", name or "").strip().lower()[:64]


def _check_passphrase_rules(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE:
        raise AccountError(f"the passphrase must be at least {MIN_PASSPHRASE} characters")
    if len(passphrase) > MAX_PASSPHRASE:
        raise AccountError(f"the passphrase must be at most {MAX_PASSPHRASE} characters")


def find(session: Session, username: str) -> Account | None:
    return session.scalar(select(Account).where(Account.username == normalise_username(username)))


def create_account(
    session: Session,
    hashing: crypto.PasswordHashing,
    username: str,
    display_name: str,
    role: Role,
    passphrase: str,
    today: dt.date,
    *,
    by: Account | None = None,
    private_key: crypto.PrivateKey | None = None,
    key_kdf: dict | None = None,
) -> Account:
    """A new account with a passphrase to change at first sign-in (the caller commits).

    An officer's key pair is sealed under the passphrase: given (`private_key`, e.g. the
    first officer's from `whistle init`), or made at their first passphrase change.
    """
    name = normalise_username(username)
    if not name or not all(c.isalnum() or c in "._-" for c in name):
        raise AccountError("a user name is letters, digits, '.', '_' or '-'")
    if session.scalar(select(func.count()).select_from(Account).where(Account.username == name)):
        raise AccountError(f"the user name {name!r} is taken")
    _check_passphrase_rules(passphrase)
    account = Account(
        username=name,
        display_name=display_name.strip()[:200] or name,
        role=Role(role),
        password_hash=hashing.hash(passphrase),
        must_change_passphrase=True,
        created_on=today,
    )
    if private_key is not None:
        if account.role is not Role.OFFICER:
            raise AccountError("only officers hold a private key")
        _seal_key(account, private_key, passphrase, key_kdf)
    session.add(account)
    session.flush()
    audit.record(session, "account_created", by, target=name, role=account.role.value)
    return account


def _seal_key(account: Account, private_key: crypto.PrivateKey, passphrase: str, kdf: dict | None) -> None:
    doc = keyring.private_key_document(private_key, passphrase, KeyRole.OFFICER, account.username, kdf)
    account.private_key = json.dumps(doc)
    account.key_id = private_key.key_id


def unlock_key(account: Account, passphrase: str) -> crypto.PrivateKey | None:
    """The account's private key, opened with its passphrase; None if it holds none."""
    if account.private_key is None:
        return None
    return keyring.unlock(json.loads(account.private_key), passphrase)


# --------------------------------------------------------------------------- TOTP


def _totp_key(server_key: bytes) -> bytes:
    return crypto.hkdf(server_key, _TOTP_INFO)


def _aad(account: Account) -> bytes:
    return f"totp:{account.id}".encode()


def new_totp_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: Account, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=account.username, issuer_name=issuer)


def _matching_step(secret: str, code: str, now: float, after_step: int) -> int | None:
    """The time step (±1 for clock drift) whose code this is, if newer than `after_step`."""
    code = "".join(ch for ch in code if ch.isdigit())
    if len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    step = int(now // TOTP_STEP)
    for candidate in (step - 1, step, step + 1):
        if candidate > after_step and secrets.compare_digest(totp.at(candidate * TOTP_STEP), code):
            return candidate
    return None


def enroll_totp(session: Session, server_key: bytes, account: Account, secret: str, code: str, now: float, today: dt.date) -> list[str]:
    """Turn on the second factor once the officer has typed a code from their app; returns
    the recovery codes, shown once. Raises `SignInFailed` for a wrong code. Commits."""
    step = _matching_step(secret, code, now, 0)
    if step is None:
        raise SignInFailed()
    account.totp_secret = crypto.seal_with_key(_totp_key(server_key), secret.encode(), _aad(account))
    account.totp_enrolled_on = today
    account.totp_last_step = step
    codes = _new_recovery_codes(server_key, account)
    audit.record(session, "totp_enrolled", account)
    session.commit()
    return codes


def _recovery_hash(server_key: bytes, account: Account, code: str) -> str:
    cleaned = "".join(ch for ch in code.lower() if ch.isalnum())
    return crypto.keyed_hash(server_key, b"recovery code", f"{account.id}:{cleaned}".encode()).hex()


def _new_recovery_codes(server_key: bytes, account: Account) -> list[str]:
    codes = [
        "-".join("".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(5)) for _ in range(2))
        for _ in range(RECOVERY_CODES)
    ]
    account.recovery_codes = json.dumps([_recovery_hash(server_key, account, c) for c in codes])
    return codes


def _second_factor_ok(session: Session, server_key: bytes, account: Account, code: str, now: float) -> bool:
    if account.totp_secret is None:
        return True  # not enrolled yet: the session that follows can only enrol
    try:
        secret = crypto.open_with_key(_totp_key(server_key), account.totp_secret, _aad(account)).decode()
    except crypto.OpenError:
        return False
    step = _matching_step(secret, code, now, account.totp_last_step)
    if step is not None:
        account.totp_last_step = step
        return True
    wanted = _recovery_hash(server_key, account, code)
    remaining = json.loads(account.recovery_codes or "[]")
    for stored in remaining:
        if secrets.compare_digest(stored, wanted):
            remaining.remove(stored)
            account.recovery_codes = json.dumps(remaining)
            audit.record(session, "recovery_code_used", account, left=len(remaining))
            return True
    return False


# --------------------------------------------------------------------------- signing in


@dataclass(frozen=True, repr=False)
class SignedIn:
    account_id: int
    private_key: crypto.PrivateKey | None


def _throttle_key(server_key: bytes, username: str) -> str:
    return "signin:" + crypto.keyed_hash(server_key, b"sign-in throttle", normalise_username(username).encode())[:12].hex()


def sign_in(
    session: Session,
    hashing: crypto.PasswordHashing,
    server_key: bytes,
    state: EphemeralStore,
    username: str,
    passphrase: str,
    code: str,
    *,
    now: float | None = None,
) -> SignedIn:
    """Check a sign-in and unlock the officer's key. Commits (the audit entry, a rehash)."""
    now = time.time() if now is None else now
    throttle = _throttle_key(server_key, username)
    failures = state.get(throttle)
    if failures is not None and int(failures) >= THROTTLE_FAILURES:
        raise Throttled()
    passphrase = passphrase[:MAX_PASSPHRASE]
    account = find(session, username)
    usable = account is not None and account.disabled_on is None
    ok = hashing.check(account.password_hash if usable else None, passphrase)
    if ok:
        ok = _second_factor_ok(session, server_key, account, code, now)
    if not ok:
        state.incr(throttle, THROTTLE_SECONDS)
        if usable:
            audit.record(session, "login_failed", account)
            session.commit()
        raise SignInFailed()
    state.delete(throttle)
    if hashing.needs_rehash(account.password_hash):
        account.password_hash = hashing.hash(passphrase)
    private_key = unlock_key(account, passphrase)
    audit.record(session, "login", account)
    if private_key is not None:
        audit.record(session, "unlock", account)
    session.commit()
    return SignedIn(account.id, private_key)


def change_passphrase(
    session: Session,
    hashing: crypto.PasswordHashing,
    account: Account,
    current: str,
    new: str,
    private_key: crypto.PrivateKey | None,
    today: dt.date,
    *,
    key_kdf: dict | None = None,
) -> crypto.PrivateKey | None:
    """Set a new passphrase and re-seal the officer's key under it. An officer who has no
    key yet (a new account) gets their key pair now. Returns the (possibly new) key. Commits."""
    if not hashing.check(account.password_hash, current[:MAX_PASSPHRASE]):
        raise SignInFailed()
    _check_passphrase_rules(new)
    if new == current:
        raise AccountError("the new passphrase must differ from the old one")
    if account.role is Role.OFFICER:
        if private_key is None:
            private_key = unlock_key(account, current) or crypto.PrivateKey.generate()
            if account.key_id is None:
                keyring.register(session, keyring.KeyInfo(KeyRole.OFFICER, account.username, private_key.public_key()), today)
        _seal_key(account, private_key, new, key_kdf)
    account.password_hash = hashing.hash(new)
    account.must_change_passphrase = False
    audit.record(session, "passphrase_changed", account)
    session.commit()
    return private_key


# --------------------------------------------------------------------------- administration
#
# What an admin does to an account. None of it touches a key: an officer's key is sealed
# under their own passphrase, which nobody else can reset (access.py removes an officer).
# The caller ends the account's sessions (officer/sessions.py) once these have committed.


def _not_self(account: Account, by: Account) -> None:
    if account.id == by.id:
        raise AccountError("use your own passphrase page, or ask another administrator")


def stage_disable(session: Session, account: Account, by: Account, today: dt.date) -> None:
    """Refuse the account every sign-in from now on, in the caller's transaction."""
    _not_self(account, by)
    if account.disabled_on is None:
        account.disabled_on = today
        audit.record(session, "account_disabled", by, target=account.username)


def disable(session: Session, account: Account, by: Account, today: dt.date) -> None:
    """`stage_disable`, committed. An officer's key is retired with it: access.remove_officer."""
    stage_disable(session, account, by, today)
    session.commit()


def reset_passphrase(session: Session, hashing: crypto.PasswordHashing, account: Account, by: Account) -> str:
    """A new one-time passphrase for a supervisor or an admin, returned to be handed over
    and changed at the next sign-in. An officer's cannot be reset: it seals their key.
    Commits."""
    _not_self(account, by)
    if account.role is Role.OFFICER:
        raise AccountError("an officer's passphrase seals their key: nobody can reset it")
    passphrase = generate_passphrase()
    account.password_hash = hashing.hash(passphrase)
    account.must_change_passphrase = True
    audit.record(session, "passphrase_reset", by, target=account.username)
    session.commit()
    return passphrase


def reset_second_factor(session: Session, account: Account, by: Account | None) -> None:
    """Forget the account's TOTP secret and recovery codes: the person enrols again at
    their next sign-in (their passphrase is still needed). For a lost phone, or for
    everyone after the secret key changed (it seals the TOTP secrets). `by` is None from
    the command line. Commits."""
    if by is not None:
        _not_self(account, by)
    account.totp_secret = None
    account.totp_enrolled_on = None
    account.totp_last_step = 0
    account.recovery_codes = "[]"
    audit.record(session, "second_factor_reset", by, target=account.username)
    session.commit()


MAX_EMAIL = 254


def set_email(session: Session, account: Account, email: str, by: Account) -> None:
    """Where notices go (notify.py); empty: none. Commits."""
    email = (email or "").strip()
    if email and (len(email) > MAX_EMAIL or email.count("@") != 1 or any(c.isspace() or c in "<>,;\"'" for c in email)
                  or not all(email.split("@"))):
        raise AccountError("this is not an e-mail address")
    account.email = email or None
    audit.record(session, "account_changed", by, target=account.username, change="email")
    session.commit()
