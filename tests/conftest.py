"""Fixtures: an app on a throwaway instance, on SQLite and (when reachable) PostgreSQL,
with cheap Argon2 parameters, fixed recipient keys and a movable clock."""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import create_engine, text

from whistle import create_app, create_officer_app, crypto, db, keyring
from whistle.codes import CodeCost
from whistle.models import KeyRole, Role

#: Cheap enough for hundreds of derivations; the real cost is checked in test_codes.
CHEAP_COST = CodeCost(time_cost=1, memory_cost=256, parallelism=1)
POSTGRES_URL = os.environ.get("WHISTLE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("WHISTLE_TEST_REDIS", "redis://127.0.0.1:6379/15")

_reachable: dict[str, bool] = {}


def postgres_reachable() -> bool:
    if "pg" not in _reachable:
        try:
            engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 2})
            with engine.connect() as conn:
                conn.execute(text("select 1"))
            engine.dispose()
            _reachable["pg"] = True
        except Exception:
            _reachable["pg"] = False
    return _reachable["pg"]


def redis_reachable() -> bool:
    if "redis" not in _reachable:
        try:
            import redis

            redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
            _reachable["redis"] = True
        except Exception:
            _reachable["redis"] = False
    return _reachable["redis"]


class Clock:
    def __init__(self) -> None:
        self.today = dt.date(2026, 11, 25)

    def __call__(self) -> dt.date:
        return self.today

    def advance(self, days: int) -> None:
        self.today += dt.timedelta(days=days)


class WallClock:
    """Seconds since the epoch, moved by tests (session expiry, TOTP time steps)."""

    def __init__(self) -> None:
        self.now = 1_795_000_000.0  # November 2026

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def officer_key() -> crypto.PrivateKey:
    return crypto.PrivateKey.generate()


@pytest.fixture(scope="session")
def recovery_key() -> crypto.PrivateKey:
    return crypto.PrivateKey.generate()


@pytest.fixture(scope="session")
def postgres_url():
    """A schema of its own in the test database, so parallel test runs never collide."""
    if not postgres_reachable():
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}")
    schema = f"whistle_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"

    def fresh() -> str:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        return f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"

    yield fresh
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'instance' / 'whistle.sqlite3'}"
    return request.getfixturevalue("postgres_url")()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def wallclock() -> WallClock:
    return WallClock()


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    path = tmp_path / "instance"
    path.mkdir()
    return path


@pytest.fixture
def secret_key() -> str:
    """One secret key per test, shared by its reporter and officer apps (as in production)."""
    return "test-" + secrets.token_hex(24)


@pytest.fixture
def make_app(instance, database_url, clock, wallclock, secret_key, officer_key, recovery_key):
    """Build an app; keyword arguments override settings. `factory=create_officer_app`
    builds the officers' app on the same instance and database."""
    made = []

    def _make(factory=create_app, **overrides):
        config = {
            "instance_path": instance,
            "secret_key": secret_key,
            "database_url": database_url,
            "unsafe_code_cost": CHEAP_COST,
            "password_cost": CHEAP_COST,
            "clock": clock,
            "wallclock": wallclock,
            "ratelimit_enabled": False,
        }
        config.update(overrides)
        app = factory(config, require_recipients=False)
        app.config["TESTING"] = True
        with app.app_context():
            db.create_schema()
            session = db.session()
            if not keyring.active_keys(session):
                install_keys(app, session, officer_key, recovery_key, clock())
                session.commit()
        made.append(app)
        return app

    yield _make
    for app in made:
        app.extensions["whistle.engine"].dispose()


def install_keys(app, session, officer_key, recovery_key, today) -> None:
    """What `whistle init` does for keys: pin the recovery key as the anchor, register it,
    and have it certify the officer key."""
    from whistle.extensions import trust_of

    keyring.install_first_keys(session, trust_of(app), officer_key, recovery_key, "officer-1", today)


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token in page"
    return match.group(1)


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" type="hidden" value="([^"]*)"', html) or re.search(
        rf'id="{name}" name="{name}" type="hidden" value="([^"]*)"', html
    )
    assert match, f"no hidden field {name}"
    return match.group(1)


TIP = {
    "category": "procurement",
    "what": "The head of procurement split a road contract to avoid tender.",
    "people": "Head of procurement, Division of Public Works",
    "when": "March 2569",
    "where": "Town hall, building 2",
    "how_known": "I saw the documents",
    "evidence": "Copies of the purchase orders",
}


class Reporter:
    """A reporter's browser: fetches forms for their CSRF token, then posts them."""

    def __init__(self, client) -> None:
        self.client = client

    def submit(self, files=(), **fields):
        page = self.client.get("/report?lang=en")
        data = {**TIP, **fields, "csrf_token": csrf_token(page.get_data(as_text=True))}
        if files:
            data["files"] = list(files)
        return self.client.post("/report", data=data, content_type="multipart/form-data")

    def submit_ok(self, **kwargs) -> str:
        """Submit and return the code shown on the receipt."""
        response = self.submit(**kwargs)
        assert response.status_code == 200, response.get_data(as_text=True)[:2000]
        return receipt_code(response.get_data(as_text=True))

    def open_case(self, code: str):
        page = self.client.get("/status")
        return self.client.post(
            "/status", data={"code": code, "csrf_token": csrf_token(page.get_data(as_text=True))}
        )

    def reply(self, text: str, files=()):
        page = self.client.get("/case")
        data = {"text": text, "csrf_token": csrf_token(page.get_data(as_text=True))}
        if files:
            data["files"] = list(files)
        return self.client.post("/case/reply", data=data, content_type="multipart/form-data")


def receipt_code(html: str) -> str:
    """The code as the receipt shows it: groups of four, each in its own unbreakable span."""
    match = re.search(r'<p class="code"[^>]*>(.*?)</p>', html, re.S)
    assert match, "no code on the receipt"
    code = " ".join(re.findall(r"\d{4}", re.sub(r"<[^>]+>", " ", match.group(1))))
    assert code, "no code on the receipt"
    return code


@pytest.fixture
def reporter(client) -> Reporter:
    return Reporter(client)


# --------------------------------------------------------------------------- officers

#: Passphrase of the accounts tests make; key documents sealed at a cheap cost.
OFFICER_PASSPHRASE = "correct horse battery staple"
FAST_KDF = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


@dataclass
class Creds:
    username: str
    passphrase: str
    totp_secret: str | None

    def code(self, wallclock) -> str:
        return pyotp.TOTP(self.totp_secret).at(wallclock()) if self.totp_secret else ""


@pytest.fixture
def officer_app(make_app):
    return make_app(factory=create_officer_app)


@pytest.fixture
def make_account(officer_app, wallclock, clock, officer_key):
    """Make an account through the services; by default an officer holding the officer key,
    with the second factor on and the one-time passphrase already changed."""

    def _make(username="officer-a", role=Role.OFFICER, private_key=None, enrolled=True, must_change=False):
        from whistle import accounts
        from whistle.extensions import password_hashing, server_key

        with officer_app.app_context():
            session = db.session()
            key = (private_key or officer_key) if role is Role.OFFICER else None
            account = accounts.create_account(
                session, password_hashing(), username, username.title(), role, OFFICER_PASSPHRASE, clock(),
                private_key=key, key_kdf=FAST_KDF,
            )
            account.must_change_passphrase = must_change
            secret = None
            if enrolled:
                secret = accounts.new_totp_secret()
                accounts.enroll_totp(session, server_key(), account, secret, pyotp.TOTP(secret).at(wallclock()), wallclock(), clock())
                account.totp_last_step -= 1  # the code of this very moment may sign in once
            session.commit()
        return Creds(account.username, OFFICER_PASSPHRASE, secret)

    return _make


class OfficerBrowser:
    """An officer's browser on the officers' app: CSRF tokens read from its pages."""

    def __init__(self, client, wallclock) -> None:
        self.client = client
        self.wallclock = wallclock

    def token(self, path: str = "/sign-in") -> str:
        return csrf_token(self.client.get(path).get_data(as_text=True))

    def sign_in(self, creds: Creds, code: str | None = None):
        data = {
            "username": creds.username,
            "passphrase": creds.passphrase,
            "code": creds.code(self.wallclock) if code is None else code,
            "csrf_token": self.token(),
        }
        return self.client.post("/sign-in", data=data)

    def post(self, path: str, data: dict | None = None, page: str | None = None, **kwargs):
        body = {**(data or {}), "csrf_token": self.token(page or path)}
        return self.client.post(path, data=body, **kwargs)


@pytest.fixture
def officer_browser(officer_app, wallclock) -> OfficerBrowser:
    return OfficerBrowser(officer_app.test_client(), wallclock)


# --------------------------------------------------------------------------- sealed items


def officer_says(app, case_id: int, text: str, officer_key) -> None:
    """An officer's message, signed and sealed as the workspace stores one."""
    from whistle import intake
    from whistle.extensions import trust_of
    from whistle.models import Author

    with app.app_context():
        intake.add_message(
            db.session(), app.extensions["whistle.blobs"], trust_of(app), case_id, Author.OFFICER, text, [],
            app.extensions["whistle.clock"](), signing_key=officer_key.signing_key,
        )


def message_text(report, message, key) -> str:
    """A message's text as an officer reads it (signature not checked here)."""
    from whistle import items

    opened = items.open_message(report, message, key, None)
    if not opened.readable:
        raise crypto.OpenError()
    return opened.text


def file_plaintext(app, report, attachment, key) -> bytes:
    from whistle import items

    with app.extensions["whistle.blobs"].open(attachment.blob_name) as sealed:
        return b"".join(crypto.open_file_stream(sealed, attachment.wraps, key, items.file_context(report, attachment)))


def file_meta(report, attachment, key):
    from whistle import items

    return items.open_file_meta(report, attachment, key, items.parent_slot(attachment.message))
