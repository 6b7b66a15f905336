"""How much a request body may carry, page by page, set before anything parses it.

Werkzeug's caps on a multipart body (the size of one text field, the number of parts) do
nothing for an `application/x-www-form-urlencoded` body: that is read whole and split into
fields at once, and a 100 MB body of short fields took 2.6 GB of one worker. So every
request gets, in a `before_request` that runs before any form is read (the officers'
CSRF check included), a cap on its whole body from `BODY_CAPS`: only the forms that
take files accept a large body, and only as multipart, whose text parts are capped one by
one and whose files are sealed to disk as they stream (uploads.py); every other page, and
every other kind of body, gets the small `FORM` cap. A body over its cap is a 413 before
a byte of it is read; a body sent without a length (chunked) is read up to its cap and
is a 413 past it.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, request
from werkzeug.formparser import FormDataParser

from .config import Settings
from .extensions import settings

KiB = 1024


@dataclass(frozen=True)
class BodyCap:
    #: Bytes in the whole body (checked against Content-Length, and as it is read).
    total: int
    #: Bytes in one text field of a multipart body.
    field: int
    #: Fields and files in a multipart body.
    parts: int


#: Every form without files: a tracking code, a few digits, a sign-in, a token. Even
#: Thai text percent-encoded (nine bytes a character) fits in a few kilobytes here.
FORM = BodyCap(total=64 * KiB, field=64 * KiB, parts=16)


def upload_cap(s: Settings) -> BodyCap:
    """A form with files: every file at its cap plus the text, at most 16 text fields."""
    return BodyCap(total=s.max_content_length, field=s.max_field_bytes, parts=16 + s.max_files)


def analysis_cap(s: Settings) -> BodyCap:
    """A summary report's written analysis: three long texts, Thai percent-encoded."""
    return BodyCap(total=1024 * KiB, field=256 * KiB, parts=8)


def key_file_cap(_s: Settings) -> BodyCap:
    """The custodian's page: one key file (read in memory, uploads.MEMORY_UPLOADS), a
    passphrase, a box and a token. Werkzeug holds its unparsed read buffer within the field
    cap, so that stays the whole body's."""
    return BodyCap(total=64 * KiB, field=64 * KiB, parts=8)


#: endpoint -> its cap for a multipart/form-data body; any other endpoint, and any other
#: kind of body, gets `FORM`.
BODY_CAPS = {
    "reporter.report": upload_cap,
    "reporter.reply": upload_cap,
    "reporter.add": upload_cap,
    "officer_cases.send_message": upload_cap,
    "officer_record.record_tip": upload_cap,
    "officer_summaries.write": analysis_cap,
    "officer_access.certify": key_file_cap,
}


class CappedFormDataParser(FormDataParser):
    """Werkzeug's parser, but a url-encoded body without a length that runs past its cap
    is a 413: Werkzeug would read it up to the cap and parse what it got as if whole."""

    def _parse_urlencoded(self, stream, mimetype, content_length, options):  # type: ignore[no-untyped-def]
        parsed = super()._parse_urlencoded(stream, mimetype, content_length, options)
        stream.read(1)  # at the cap, Werkzeug's capped stream raises RequestEntityTooLarge
        return parsed


def cap_for(endpoint: str | None, mimetype: str, s: Settings) -> BodyCap:
    cap = BODY_CAPS.get(endpoint or "")
    if cap is not None and mimetype == "multipart/form-data":
        return cap(s)
    return FORM


def _cap_this_request() -> None:
    cap = cap_for(request.endpoint, request.mimetype, settings())
    request.max_content_length = cap.total
    request.max_form_memory_size = cap.field
    request.max_form_parts = cap.parts


def init_app(app: Flask) -> None:
    """Must run before any other `before_request` that could read the form."""
    app.before_request_funcs.setdefault(None, []).insert(0, _cap_this_request)
