"""Response headers every page carries: no third parties, no referrer, no caching of case
data, no framing (but for the one page a municipality embeds: `allow_framing`)."""

from __future__ import annotations

from flask import Flask, Response

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def allow_framing(response: Response, origins: tuple[str, ...]) -> Response:
    """Let these origins (and no other) embed this response: the public statistics page.
    With no origin configured it stays unframable."""
    if origins:
        response.headers["Content-Security-Policy"] = CSP.replace("frame-ancestors 'none'", "frame-ancestors " + " ".join(origins))
        # X-Frame-Options cannot name several origins; browsers that know frame-ancestors
        # obey it instead, and X-Frame-Options DENY would forbid what it allows.
        response.headers["X-Frame-Options"] = ""
    return response


def add_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("X-Frame-Options", "DENY")
    if response.headers["X-Frame-Options"] == "":
        del response.headers["X-Frame-Options"]
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), interest-cohort=()"
    # Reporter pages may hold a code or case data; nothing here is worth a cache's risk.
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.after_request(add_headers)
