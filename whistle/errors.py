"""Domain errors and HTTP errors mapped to translated pages, in one place.

No error page echoes what was sent, and none is ever a bare 500 with a traceback.
"""

from __future__ import annotations

import logging
import traceback

from flask import Flask, render_template
from flask_babel import gettext as _
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from .ephemeral import StateUnavailable
from .keyring import MissingRecipients

log = logging.getLogger(__name__)


def _page(status: int, title: str, message: str):
    return render_template("errors/error.html", title=title, message=message, status=status), status


def _messages() -> dict[int, tuple[str, str]]:
    return {
        400: (_("The request could not be read"), _("Something in what was sent could not be read. Go back and try again.")),
        403: (_("Not allowed"), _("This page is not available.")),
        404: (_("Page not found"), _("There is no page at this address.")),
        405: (_("Not allowed"), _("This page cannot be used that way.")),
        408: (
            _("The connection was too slow"),
            _("What you sent arrived too slowly and was not stored. Go back and send it again, if you can on a better connection."),
        ),
        413: (
            _("Too much was sent"),
            _("What you sent is larger than this service accepts. Send fewer or smaller files; nothing was stored."),
        ),
        429: (
            _("Too many attempts"),
            _("Too many requests came from your connection. Wait a while and try again; nothing was stored."),
        ),
        503: (_("Service unavailable"), _("The service cannot accept reports right now. Nothing was stored. Please try again later.")),
    }


def too_many_message() -> str:
    """The rate-limit page's words, with the real time to wait when the limiter knows it."""
    from .labels import waiting_time
    from .ratelimit import seconds_to_wait

    wait = seconds_to_wait()
    if wait is None:
        return _messages()[429][1]
    return _(
        "Too many requests came from your connection. Nothing was stored. You can try again in %(wait)s.",
        wait=waiting_time(wait),
    )


def handle_http(exc: HTTPException):
    status = exc.code or 500
    title, message = _messages().get(status, (_("Error"), _("Something went wrong. Nothing was stored.")))
    if status == 429:
        message = too_many_message()
    return _page(status, title, message)


def handle_missing_recipients(exc: MissingRecipients):
    log.error("cannot seal new tips: %s", exc)
    return handle_http(ServiceUnavailable())


#: The database cannot be reached or dropped the connection (a restart, say): a 503 the
#: reporter can retry, not a 500. Raised before any commit, so nothing was stored.
DATABASE_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError, sa_exc.TimeoutError)


def handle_database_unavailable(exc: Exception):
    log.error("database unavailable (%s); refusing the request", type(exc).__name__)
    return handle_http(ServiceUnavailable())


def handle_state_unavailable(exc: StateUnavailable):
    log.error("short-lived state storage unavailable (%s); refusing the request", exc)
    return handle_http(ServiceUnavailable())


def handle_unexpected(exc: Exception):
    # The type and the frames, never the message: an exception's text may carry what a
    # reporter typed.
    frames = "".join(traceback.format_tb(exc.__traceback__))
    log.error("unexpected error %s\n%s", type(exc).__name__, frames)
    return _page(500, _("Error"), _("Something went wrong on our side. Nothing was stored. Please try again later."))


class ServiceUnavailable(HTTPException):
    code = 503


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http)
    app.register_error_handler(MissingRecipients, handle_missing_recipients)
    app.register_error_handler(StateUnavailable, handle_state_unavailable)
    for kind in DATABASE_UNAVAILABLE:
        app.register_error_handler(kind, handle_database_unavailable)
    app.register_error_handler(Exception, handle_unexpected)
