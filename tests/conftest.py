"""Fixtures: an app on a throwaway instance, on SQLite and (when reachable) PostgreSQL,
with cheap Argon2 parameters, fixed recipient keys and a movable clock."""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from whistle import create_app, crypto, db, keyring
from whistle.codes import CodeCost
from whistle.models import KeyRole

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
def instance(tmp_path: Path) -> Path:
    path = tmp_path / "instance"
    path.mkdir()
    return path


@pytest.fixture
def make_app(instance, database_url, clock, officer_key, recovery_key):
    """Build an app; keyword arguments override settings."""
    made = []

    def _make(**overrides):
        config = {
            "instance_path": instance,
            "secret_key": "test-" + secrets.token_hex(24),
            "database_url": database_url,
            "code_cost": CHEAP_COST,
            "clock": clock,
            "ratelimit_enabled": False,
        }
        config.update(overrides)
        app = create_app(config, require_recipients=False)
        app.config["TESTING"] = True
        with app.app_context():
            db.create_schema()
            session = db.session()
            if not keyring.active_keys(session):
                for key, role, label in ((officer_key, KeyRole.OFFICER, "officer-1"), (recovery_key, KeyRole.RECOVERY, "recovery")):
                    keyring.register(session, keyring.KeyInfo(role, label, key.public_key()), clock())
                session.commit()
        made.append(app)
        return app

    yield _make
    for app in made:
        app.extensions["whistle.engine"].dispose()


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
    match = re.search(r'<p class="code"[^>]*>([\d ]+)</p>', html)
    assert match, "no code on the receipt"
    return match.group(1)


@pytest.fixture
def reporter(client) -> Reporter:
    return Reporter(client)
