"""The database engine and the per-request session."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker


log = logging.getLogger(__name__)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            # Deleted rows are overwritten, not left in free pages of the file.
            cur.execute("PRAGMA secure_delete=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def init_app(app: Flask, url: str) -> None:
    engine = make_engine(url)
    app.extensions["whistle.engine"] = engine
    app.extensions["whistle.sessionmaker"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def engine() -> Engine:
    return current_app.extensions["whistle.engine"]


def session() -> Session:
    """The session of this request or CLI command; services commit it, views never do."""
    if "db_session" not in g:
        g.db_session = current_app.extensions["whistle.sessionmaker"]()
    return g.db_session


def short_session() -> Session:
    """A session apart from the request's, for a read in the middle of a request; used as
    a context manager, it gives its connection back to the pool at once."""
    return current_app.extensions["whistle.sessionmaker"]()


def _close_session(_exc: BaseException | None) -> None:
    s = g.pop("db_session", None)
    if s is None:
        return
    try:
        s.close()
    except SQLAlchemyError as exc:
        # A connection cut under us (a database restart): the answer is already made and
        # the pool drops the connection; failing here would turn it into a bare 500.
        log.warning("closing a database session failed (%s)", type(exc).__name__)


def create_schema() -> None:
    """Bring the database to the current schema through the migrations."""
    from . import migrate

    migrate.upgrade(engine())
