"""whistle: an anonymous corruption-whistleblower intake service. The app factory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict[str, Any] | None = None, *, require_recipients: bool = True) -> Flask:
    """Build the app from `<instance>/config.toml` and `WHISTLE_*` variables.

    Refuses to start (with `ConfigError` naming what is missing) without a secret key, or,
    unless `require_recipients` is false (key-management commands), without at least one
    officer public key and the recovery public key.
    """
    from . import codes, config, db, errors, extensions, i18n, keyring, labels, ratelimit, security, uploads, wsgi_guard
    from .reporter.views import bp as reporter_bp

    test_config = dict(test_config or {})
    clock = test_config.pop("clock", i18n.thai_today)
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
        SESSION_COOKIE_NAME="whistle",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        WTF_CSRF_TIME_LIMIT=3600,
        RATELIMIT_ENABLED=test_config.get("ratelimit_enabled", True),
    )
    extensions.init_app(app, settings, clock)
    db.init_app(app, settings.database_url)
    uploads.init_app(app, uploads.BlobStore(settings.blob_dir))
    i18n.init_app(app)
    labels.init_app(app)
    errors.init_app(app)
    security.init_app(app)
    app.register_blueprint(reporter_bp)
    ratelimit.init_app(app, settings)

    codes.set_concurrency(settings.argon2_concurrency)
    if settings.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)  # type: ignore[method-assign]
    app.wsgi_app = wsgi_guard.BodyGuard(app.wsgi_app)  # type: ignore[method-assign]

    if require_recipients:
        with app.app_context():
            try:
                keyring.recipients(db.session())
            except keyring.MissingRecipients as exc:
                raise config.ConfigError(f"Cannot start: {exc}.") from None
            except Exception as exc:  # no schema yet, database unreachable
                raise config.ConfigError(
                    f"Cannot start: the database at the configured URL is not ready ({type(exc).__name__}); "
                    "run `whistle init` first."
                ) from None
    return app
