"""whistle: an anonymous corruption-whistleblower intake service. The app factories.

Two apps share the services and the database, each with its own entry point, host and
cookie: `create_app` serves reporters and the public (the clear-web host and the onion
service), `create_officer_app` serves the designated officers, supervisors and admins (a
host of its own; the reporter host and the onion service never route to it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from flask import Flask

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _base_app(test_config: dict[str, Any] | None, require_recipients: bool, audience: str) -> Flask:
    from . import bodies, codes, config, db, ephemeral, errors, extensions, i18n, keyring, labels, security, storage, uploads, wsgi_guard

    test_config = dict(test_config or {})
    clock = test_config.pop("clock", i18n.thai_today)
    state = test_config.pop("state_store", None)
    wallclock = test_config.pop("wallclock", time.time)
    instance = Path(test_config.pop("instance_path", None) or os.environ.get("WHISTLE_INSTANCE") or "instance")
    settings = config.load(instance, test_config)

    app = Flask(
        __name__,
        instance_path=str(settings.instance_path),
        template_folder=str(PROJECT_ROOT / "templates"),
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_content_length,
        MAX_FORM_MEMORY_SIZE=settings.max_field_bytes,
        MAX_FORM_PARTS=64,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        WTF_CSRF_TIME_LIMIT=3600,
        RATELIMIT_ENABLED=test_config.get("ratelimit_enabled", True),
        WHISTLE_AUDIENCE=audience,
    )
    extensions.init_app(app, settings, clock, state or ephemeral.from_uri(settings.state_storage_uri, wallclock), wallclock)
    db.init_app(app, settings.database_url)
    uploads.init_app(app, storage.LocalBlobStore(settings.blob_dir))
    bodies.init_app(app)
    i18n.init_app(app)
    labels.init_app(app)
    errors.init_app(app)
    security.init_app(app)
    codes.set_concurrency(settings.argon2_concurrency)
    if settings.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)  # type: ignore[method-assign]
    app.wsgi_app = wsgi_guard.BodyGuard(app.wsgi_app)  # type: ignore[method-assign]

    if require_recipients:
        with app.app_context():
            try:
                keyring.active_keys(db.session())
            except Exception as exc:  # no schema yet, database unreachable
                raise config.ConfigError(
                    f"Cannot start: the database at the configured URL is not ready ({type(exc).__name__}); "
                    "run `whistle init` first."
                ) from None
            try:
                keyring.recipients(db.session(), extensions.trust_of(app))
            except keyring.MissingRecipients as exc:
                raise config.ConfigError(f"Cannot start: {exc}.") from None
    return app


def create_app(test_config: dict[str, Any] | None = None, *, require_recipients: bool = True) -> Flask:
    """The reporters' app, from `<instance>/config.toml` and `WHISTLE_*` variables.

    Refuses to start (with `ConfigError` naming what is missing) without a secret key, or,
    unless `require_recipients` is false (key-management commands), without at least one
    officer public key and the recovery public key.
    """
    from . import publicity, ratelimit, visits
    from .public.views import bp as public_bp
    from .reporter.views import bp as reporter_bp

    app = _base_app(test_config, require_recipients, "reporter")
    visits.init_app(app)
    publicity.init_app(app)
    app.config["SESSION_COOKIE_NAME"] = "whistle"
    app.jinja_env.globals["base_layout"] = "base.html"
    app.jinja_env.globals["home_endpoint"] = "reporter.landing"
    app.register_blueprint(reporter_bp)
    app.register_blueprint(public_bp)
    ratelimit.init_app(app, app.extensions["whistle.settings"])
    return app


def create_officer_app(test_config: dict[str, Any] | None = None, *, require_recipients: bool = True) -> Flask:
    """The officers' app: its own cookie, a CSRF token on every form, and no page but the
    sign-in page without a signed-in account (officer/__init__.py)."""
    from . import officer, ratelimit

    app = _base_app(test_config, require_recipients, "officer")
    officer.init_app(app)
    ratelimit.init_app(app, app.extensions["whistle.settings"])
    return app
