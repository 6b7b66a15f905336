"""Property-based fuzzing of every reporter form and of the parsers of untrusted bytes:
whatever arrives, the answer is a 2xx/3xx/4xx page or a named error, never a 500 or a crash.

Bounded: each property runs a fixed number of examples (WHISTLE_FUZZ_EXAMPLES, default
40), so CI time stays predictable; raise it locally for a longer hunt.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from whistle import bundles, codes, crypto, keyring

from .conftest import TIP, csrf_token

EXAMPLES = int(os.environ.get("WHISTLE_FUZZ_EXAMPLES", "40"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

text = st.text(alphabet=st.characters(codec="utf-8"), max_size=200)
any_text = st.one_of(text, st.sampled_from(["", "\x00", "\ufffd", "<script>", "ก" * 50, "9" * 40]))


def _no_500(response) -> None:
    assert response.status_code < 500 or response.status_code == 503, response.status_code


@fuzz
@given(fields=st.dictionaries(st.sampled_from(sorted(TIP) + ["files", "csrf_token", "x"]), any_text, max_size=9),
       with_token=st.booleans())
def test_fuzz_report_form(app, client, fields, with_token):
    data = dict(fields)
    if with_token:
        data["csrf_token"] = csrf_token(client.get("/report").get_data(as_text=True))
    _no_500(client.post("/report", data=data, content_type="multipart/form-data"))


@fuzz
@given(body=st.binary(max_size=2000), boundary=st.sampled_from(["x", "----b", "", "a" * 80]))
def test_fuzz_raw_multipart(app, client, body, boundary):
    for path in ("/report", "/status", "/report/saved", "/report/receipt.txt", "/case/reply", "/case/close"):
        _no_500(client.post(path, data=body, content_type=f"multipart/form-data; boundary={boundary}"))


@fuzz
@given(body=st.binary(max_size=500))
def test_fuzz_urlencoded(app, client, body):
    for path in ("/report", "/status", "/report/saved", "/report/receipt.txt"):
        _no_500(client.post(path, data=body, content_type="application/x-www-form-urlencoded"))


@fuzz
@given(code=any_text, last_group=any_text)
def test_fuzz_receipt_forms(app, client, code, last_group):
    token = csrf_token(client.get("/status").get_data(as_text=True))
    _no_500(client.post("/report/saved", data={"code": code, "last_group": last_group, "csrf_token": token}))
    _no_500(client.post("/report/receipt.txt", data={"code": code, "csrf_token": token}))


@fuzz
@given(reply=any_text)
def test_fuzz_reply_form(app, reporter, reply):
    if not hasattr(reporter, "_opened"):
        reporter.open_case(reporter.submit_ok())
        reporter._opened = True
    _no_500(reporter.reply(reply, files=[(io.BytesIO(reply.encode("utf-8", "surrogatepass")), reply[:20] or "f")]))


@fuzz
@given(cookie=st.binary(max_size=300))
def test_fuzz_session_cookie(app, client, cookie):
    client.set_cookie("whistle", cookie.decode("latin-1"))
    for path in ("/", "/case", "/status"):
        _no_500(client.get(path))


@fuzz
@given(typed=st.text(max_size=200))
def test_fuzz_code_parser(typed):
    try:
        parsed = codes.parse_code(typed)
    except codes.MalformedCode:
        return
    assert len(parsed.digits) in (codes.CODE_DIGITS, codes.V1_CODE_DIGITS)


@fuzz
@given(doc=st.dictionaries(st.sampled_from(["format", "version", "role", "label", "key_id", "public_key", "kdf", "sealed"]),
                           st.one_of(st.text(max_size=30), st.integers(), st.none(), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)),
                           max_size=8))
def test_fuzz_key_file_parser(doc):
    try:
        keyring.key_info(doc)
    except keyring.KeyFileError:
        pass
    try:
        keyring.unlock(doc, "a passphrase long enough")
    except keyring.KeyFileError:
        pass


@fuzz
@given(doc=st.recursive(st.one_of(st.none(), st.integers(), st.text(max_size=20)),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                        max_leaves=12),
       raw=st.binary(max_size=300))
def test_fuzz_bundle_parser(tmp_path_factory, doc, raw):
    key = crypto.PrivateKey.from_bytes(bytes(96))
    folder = tmp_path_factory.mktemp("bundle")
    for content in (json.dumps(doc).encode(), raw,
                    json.dumps({"format": bundles.FORMAT, "version": bundles.VERSION, "content": "AAAA", "files": doc}).encode()):
        path = folder / "case.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("case.json", content)
        try:
            bundles.open_bundle(path, key, folder / "out")
        except (bundles.BundleError, crypto.OpenError):
            pass
        path.unlink()
