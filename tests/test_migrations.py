"""Migrating an empty database gives exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from whistle import db
from whistle.models import Base


def test_migrations_give_exactly_the_models_schema(app):
    with app.app_context():  # the fixture built the schema through the migrations
        with db.engine().connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []


def test_upgrade_is_idempotent(app):
    with app.app_context():
        db.create_schema()
        db.create_schema()
