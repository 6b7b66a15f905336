"""The stored formats of `whistle.crypto` (docs/crypto.md): known-answer vectors for every
format, round trips, and what an attacker who can change stored bytes gets: `OpenError`."""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import json
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from whistle import bundles, codes, create_app, crypto, db, keyring
from whistle.models import Attachment, KeyRole, Report
from whistle.reporter import views

from .crypto_support import assert_large_stream_matches, both, fixed_key, flipped, officer, outsider, pattern, recovery, vector  # noqa: F401 (fixtures)

PACKAGE = Path(crypto.__file__).parent
CHUNK = crypto.CHUNK_SIZE


def seal_file(data: bytes, recipients, write_sizes=(CHUNK,), data_key: bytes | None = None) -> tuple[bytes, bytes]:
    """Seal `data` fed in writes of the given sizes (cycled); returns (stream, wraps)."""
    sink = io.BytesIO()
    sealer = crypto.FileSealer(sink, recipients, data_key=data_key)
    offset, i = 0, 0
    while offset < len(data):
        size = write_sizes[i % len(write_sizes)]
        sealer.write(data[offset : offset + size])
        offset = min(offset + size, len(data))
        # Every chunk but the one still filling is already out: no more than one chunk of
        # plaintext is ever held back.
        assert len(sink.getvalue()) == 7 + (offset - 1) // CHUNK * crypto.SEALED_CHUNK_SIZE
        i += 1
    sealer.close()
    assert sealer.plaintext_size == len(data)
    return sink.getvalue(), sealer.wraps


def open_file(stream: bytes, wraps: bytes, key: crypto.PrivateKey) -> bytes:
    return b"".join(crypto.open_file_stream(io.BytesIO(stream), wraps, key))


# --------------------------------------------------------------------------- vectors


class TestKeyVectors:
    @pytest.mark.parametrize("name", ["officer", "recovery", "outsider"])
    def test_keys_fixed_seed_gives_vector_public_key_and_id(self, name):
        k = vector("keys")["keys"][name]
        public = fixed_key(name).public_key()
        assert public.mlkem.hex() == k["mlkem_public"]
        assert public.x25519.hex() == k["x25519_public"]
        assert public.key_id.hex() == k["key_id"]

    def test_keys_key_id_is_labelled_sha256_prefix(self):
        doc = vector("keys")
        k = doc["keys"]["officer"]
        digest = hashlib.sha256(bytes.fromhex(doc["key_id_label"] + k["mlkem_public"] + k["x25519_public"])).digest()
        assert digest[:16].hex() == k["key_id"]

    def test_keys_part_lengths_are_checked(self, officer):
        public = officer.public_key()
        for mlkem, x in ((public.mlkem[:-1], public.x25519), (public.mlkem, public.x25519 + b"\x00"), (public.mlkem, b"")):
            with pytest.raises(ValueError):
                crypto.PublicKey(mlkem, x)
        for seed, x in ((officer.mlkem_seed[:-1], officer.x25519), (officer.mlkem_seed, officer.x25519[:-1]), (officer.mlkem_seed + b"\x00", officer.x25519)):
            with pytest.raises(ValueError):
                crypto.PrivateKey(seed, x)
        for raw in (public.to_bytes()[:-1], public.to_bytes() + b"\x00"):
            with pytest.raises(ValueError):
                crypto.PublicKey.from_bytes(raw)
        for raw in (officer.unsafe_to_bytes()[:-1], officer.unsafe_to_bytes() + b"\x00"):
            with pytest.raises(ValueError):
                crypto.PrivateKey.from_bytes(raw)

    def test_keys_bytes_round_trip(self, officer):
        assert crypto.PrivateKey.from_bytes(officer.unsafe_to_bytes()) == officer
        public = officer.public_key()
        assert crypto.PublicKey.from_bytes(public.to_bytes()) == public
        assert len(public.to_bytes()) == crypto.PUBLIC_KEY_LEN
        assert "secret" in repr(officer) and officer.x25519.hex() not in repr(officer)


ENVELOPES = ["empty", "tip", "message", "file_meta"]


class TestEnvelopeVectors:
    @pytest.mark.parametrize("name", ENVELOPES)
    def test_envelope_vector_opens_with_every_listed_recipient(self, name):
        v = vector("envelope")["vectors"][name]
        code = vector("code")
        keys = {fixed_key(n).key_id.hex(): fixed_key(n) for n in ("officer", "recovery")}
        reporter = crypto.PrivateKey(bytes.fromhex(code["reporter_mlkem_seed"]), bytes.fromhex(code["reporter_x25519_private"]))
        keys[reporter.key_id.hex()] = reporter
        for key_id in v["recipients"]:
            assert crypto.open_sealed(bytes.fromhex(v["envelope"]), keys[key_id]) == bytes.fromhex(v["plaintext"])

    @pytest.mark.parametrize("name", ENVELOPES)
    def test_envelope_vector_content_is_exact_for_fixed_key_and_nonce(self, name):
        v = vector("envelope")["vectors"][name]
        made = crypto._seal_with(
            bytes.fromhex(v["plaintext"]), bytes.fromhex(v["data_key"]), bytes.fromhex(v["nonce"]), bytes.fromhex(v["wraps"])
        )
        assert made.hex() == v["envelope"]

    @pytest.mark.parametrize("name", ENVELOPES)
    def test_envelope_vector_wraps_hold_the_data_key(self, name, officer):
        v = vector("envelope")["vectors"][name]
        assert crypto.unwrap_data_key(bytes.fromhex(v["wraps"]), officer, crypto.KIND_ITEM).hex() == v["data_key"]

    def test_envelope_vector_layout(self):
        doc = vector("envelope")
        v = doc["vectors"]["tip"]
        env = bytes.fromhex(v["envelope"])
        assert doc["header"] == "7768737401" + "01" + "01"  # "whst", version 1, suite 1, kind item
        assert env[:7].hex() == doc["header"]
        assert env[7] == 2
        entry = 16 + 1168
        assert [env[8 + i * entry : 8 + i * entry + 16].hex() for i in range(2)] == v["recipients"]
        body = env[8 + 2 * entry :]
        assert body[:12].hex() == v["nonce"]
        assert len(body) == 12 + len(bytes.fromhex(v["plaintext"])) + 16
        assert [i.hex() for i in crypto.envelope_recipients(env)] == v["recipients"]

    @pytest.mark.parametrize("name", ENVELOPES)
    def test_envelope_vector_refuses_outsider(self, name, outsider):
        v = vector("envelope")["vectors"][name]
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(bytes.fromhex(v["envelope"]), outsider)

    def test_envelope_vector_wrap_info_binds_header_and_key_id(self, officer):
        """The HPKE info is "whistle v1 wrap" || fixed header || key id."""
        doc = vector("envelope")
        assert bytes.fromhex(doc["wrap_info_prefix"]) == b"whistle v1 wrap"
        expected = b"whistle v1 wrap" + bytes.fromhex(doc["header"]) + officer.key_id
        assert crypto._wrap_info(crypto.KIND_ITEM, officer.key_id) == expected


class TestFileVectors:
    @pytest.mark.parametrize("name", ["empty", "one", "short"])
    def test_file_small_vector_is_exact(self, name):
        doc = vector("file_stream")
        v = doc["small"][name]
        stream, _ = seal_file(bytes.fromhex(v["plaintext"]), [], data_key=bytes.fromhex(doc["data_key"]))
        assert stream.hex() == v["sealed"]
        assert stream[:7].hex() == doc["header"] == "7768737401" + "01" + "02"

    @pytest.mark.parametrize("name", ["chunk", "chunk_plus_one", "three_chunks"])
    def test_file_large_vector_is_exact(self, name):
        doc = vector("file_stream")
        v = doc["large"][name]
        stream, _ = seal_file(pattern(v["plaintext_size"]), [], write_sizes=(4099,), data_key=bytes.fromhex(doc["data_key"]))
        assert_large_stream_matches(stream, v)

    @pytest.mark.parametrize("opener", ["officer", "recovery"])
    def test_file_vector_wraps_open_to_the_data_key(self, opener):
        doc = vector("file_stream")
        key = fixed_key(opener)
        assert crypto.unwrap_data_key(bytes.fromhex(doc["wraps"]), key, crypto.KIND_FILE).hex() == doc["data_key"]
        for v in doc["small"].values():
            assert open_file(bytes.fromhex(v["sealed"]), bytes.fromhex(doc["wraps"]), key).hex() == v["plaintext"]

    def test_file_vector_chunk_nonce_is_counter_and_last_flag(self):
        assert crypto._chunk_nonce(0, False).hex() == "00" * 12
        assert crypto._chunk_nonce(1, True).hex() == "00" * 10 + "01" + "01"
        assert crypto._chunk_nonce(258, False).hex() == "00" * 9 + "0102" + "00"


class TestCodeVectors:
    def test_code_vector_derivation(self):
        v = vector("code")
        a = v["argon2id"]
        salt = bytes.fromhex(v["salt"])
        master = crypto.argon2id(v["secret"].encode("ascii"), salt, time_cost=a["time_cost"], memory_cost=a["memory_cost"], parallelism=a["parallelism"])
        assert master.hex() == v["master"]
        keys = crypto.code_keys(master)
        assert keys.verifier.hex() == v["verifier"]
        assert keys.verifier == crypto.hkdf(master, bytes.fromhex(v["verifier_info"]))
        seed = crypto.hkdf(master, bytes.fromhex(v["reporter_key_info"]), 96)
        assert seed.hex() == v["reporter_mlkem_seed"] + v["reporter_x25519_private"]
        assert keys.reporter_key.key_id.hex() == v["reporter_key_id"]
        assert keys.reporter_key.public_key().x25519.hex() == v["reporter_x25519_public"]

    def test_code_vector_through_codes_module(self):
        v = vector("code")
        a = v["argon2id"]
        cost = codes.CodeCost(a["time_cost"], a["memory_cost"], a["parallelism"])
        keys = codes.derive(v["secret"], bytes.fromhex(v["salt"]), cost)
        assert keys.verifier.hex() == v["verifier"]
        assert keys.reporter_key.key_id.hex() == v["reporter_key_id"]

    def test_code_vector_digits_and_display(self):
        v = vector("code")
        code = codes.TrackingCode(v["lookup"], v["secret"])
        assert code.digits == v["digits"] and code.display() == v["display"]
        assert codes.parse_code(v["display"]) == code

    @pytest.mark.parametrize("case", vector("code")["damm"], ids=lambda c: c["digits"] or "empty")
    def test_code_damm_vector(self, case):
        assert codes.damm_digit(case["digits"]) == case["check"]
        # A number followed by its check digit checks to zero: that is how Damm verifies.
        assert codes.damm_digit(case["digits"] + case["check"]) == "0"


class TestKeyFileVectors:
    def test_key_file_vector_unlocks_to_the_fixed_key(self, officer):
        v = vector("key_files")
        assert keyring.unlock(v["private_key_file"], v["passphrase"]) == officer

    def test_key_file_vector_is_exact_for_fixed_salt_and_nonce(self, officer, monkeypatch):
        v = vector("key_files")
        doc = v["private_key_file"]
        sealed = base64.b64decode(doc["sealed"])
        fixed = iter([base64.b64decode(doc["kdf"]["salt"]), sealed[:12]])
        monkeypatch.setattr(keyring.os, "urandom", lambda n: next(fixed))
        kdf = {k: doc["kdf"][k] for k in ("time_cost", "memory_cost", "parallelism")}
        made = keyring.private_key_document(officer, v["passphrase"], KeyRole.OFFICER, doc["label"], kdf)
        assert made == doc

    def test_key_file_vector_sealed_part(self, officer):
        v = vector("key_files")
        doc = v["private_key_file"]
        salt = base64.b64decode(doc["kdf"]["salt"])
        wrapping_key = crypto.argon2id(v["passphrase"].encode(), salt, time_cost=1, memory_cost=1024, parallelism=1)
        assert wrapping_key.hex() == v["wrapping_key"]
        aad = keyring._canonical({k: x for k, x in doc.items() if k != "sealed"})
        assert aad.decode() == v["associated_data"]
        plain = crypto.open_with_key(wrapping_key, base64.b64decode(doc["sealed"]), aad)
        assert plain == officer.unsafe_to_bytes()

    def test_key_file_vector_public_file(self, officer):
        v = vector("key_files")
        info = keyring.key_info(v["public_key_file"])
        assert info.public_key == officer.public_key() and info.role is KeyRole.OFFICER
        assert keyring.public_key_document(info) == v["public_key_file"]

    @pytest.mark.parametrize(
        "change",
        [
            {"label": "officer-2"},
            {"role": "recovery"},
            {"kdf": "time_cost"},
        ],
        ids=["label", "role", "kdf"],
    )
    def test_key_file_vector_any_field_edit_refuses_to_unlock(self, change):
        v = vector("key_files")
        doc = dict(v["private_key_file"])
        if change == {"kdf": "time_cost"}:
            doc["kdf"] = {**doc["kdf"], "time_cost": 2}
        else:
            doc.update(change)
        with pytest.raises(keyring.KeyFileError):
            keyring.unlock(doc, v["passphrase"])

    def test_key_file_vector_wrong_passphrase(self):
        v = vector("key_files")
        with pytest.raises(keyring.KeyFileError, match="wrong passphrase"):
            keyring.unlock(v["private_key_file"], v["passphrase"] + "!")


class TestStatusViewVector:
    def test_status_view_vector_keys_and_seal(self, monkeypatch):
        v = vector("status_view")
        server_key = crypto.hkdf(v["secret_key"].encode(), b"whistle v1 server key")
        assert server_key.hex() == v["server_key"]
        view_key = crypto.hkdf(server_key, b"whistle v1 status view key")
        assert view_key.hex() == v["view_key"]
        monkeypatch.setattr(crypto.os, "urandom", lambda n: bytes.fromhex(v["nonce"]))
        sealed = crypto.seal_with_key(view_key, v["payload"].encode(), bytes.fromhex(v["associated_data"]))
        assert base64.b64encode(sealed).decode() == v["session_value"]

    def test_status_view_vector_opens_in_the_app(self, tmp_path, monkeypatch):
        v = vector("status_view")
        code = vector("code")
        app = create_app({"instance_path": tmp_path, "secret_key": v["secret_key"]}, require_recipients=False)
        assert app.extensions["whistle.server_key"].hex() == v["server_key"]
        at = json.loads(v["payload"])["at"]
        monkeypatch.setattr(time, "time", lambda: at + 60)
        with app.test_request_context("/case"):
            from flask import session

            session["case"] = v["session_value"]
            opened = views._opened_case()
            assert opened is not None and opened.report_id == 7
            assert opened.reporter_key.key_id.hex() == code["reporter_key_id"]
            session["case"] = base64.b64encode(flipped(base64.b64decode(v["session_value"]), 20)).decode()
            assert views._opened_case() is None
        monkeypatch.setattr(time, "time", lambda: at + 16 * 60)
        with app.test_request_context("/case"):
            from flask import session

            session["case"] = v["session_value"]
            assert views._opened_case() is None  # the view has expired


class TestBundleVector:
    def _bundle(self, tmp_path: Path, case_json: dict | None = None, files: dict | None = None) -> Path:
        v = vector("bundle")
        path = tmp_path / "case.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("case.json", json.dumps(case_json or v["case_json"]))
            for name, data in (files or {k: bytes.fromhex(x) for k, x in v["files"].items()}).items():
                zf.writestr(name, data)
        return path

    @pytest.mark.parametrize("opener", ["officer", "recovery"])
    def test_bundle_vector_opens_to_expected_text_and_files(self, tmp_path, opener):
        v = vector("bundle")
        out = tmp_path / "out"
        bundles.open_bundle(self._bundle(tmp_path), fixed_key(opener), out)
        assert (out / "report.txt").read_text("utf-8") == v["expected"]["report.txt"]
        assert (out / "messages.txt").read_text("utf-8") == v["expected"]["messages.txt"]
        for name, data in v["expected"]["files"].items():
            assert (out / "files" / name).read_bytes().hex() == data

    def test_bundle_vector_refuses_outsider(self, tmp_path, outsider):
        with pytest.raises(crypto.OpenError):
            bundles.open_bundle(self._bundle(tmp_path), outsider, tmp_path / "out")

    def test_bundle_truncated_file_leaves_no_partial_plaintext(self, tmp_path, officer, both):
        v = vector("bundle")
        stream, wraps = seal_file(pattern(CHUNK + 10), both)
        case_json = dict(v["case_json"], files=[dict(v["case_json"]["files"][0], wraps=base64.b64encode(wraps).decode())])
        path = self._bundle(tmp_path, case_json, {"files/0": stream[: 7 + crypto.SEALED_CHUNK_SIZE]})
        with pytest.raises(crypto.OpenError):
            bundles.open_bundle(path, officer, tmp_path / "out")
        assert list((tmp_path / "out" / "files").iterdir()) == []

    @pytest.mark.parametrize(
        "name, expected",
        [
            ("สัญญา 12-2569.pdf", "สัญญา 12-2569.pdf"),
            ("../../etc/passwd", "passwd"),
            ("..\\..\\.bashrc", "bashrc"),
            ("a<b>c|d.txt", "a_b_c_d.txt"),
            ("", "file"),
            ("...", "file"),
        ],
    )
    def test_bundle_safe_filename(self, name, expected):
        assert bundles.safe_filename(name, "file") == expected


# --------------------------------------------------------------------------- envelopes


class TestEnvelope:
    def test_envelope_officer_and_recovery_open_third_key_does_not(self, officer, recovery, outsider, both):
        env = crypto.seal(b"tip", both)
        assert crypto.open_sealed(env, officer) == b"tip"
        assert crypto.open_sealed(env, recovery) == b"tip"
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(env, outsider)

    def test_envelope_fresh_data_key_each_time(self, both):
        assert crypto.seal(b"same", both)[-20:] != crypto.seal(b"same", both)[-20:]

    def test_envelope_needs_distinct_recipients(self, officer):
        with pytest.raises(ValueError):
            crypto.seal(b"x", [])
        with pytest.raises(ValueError):
            crypto.seal(b"x", [officer.public_key(), officer.public_key()])

    def test_envelope_flip_any_byte_gives_open_error(self, officer):
        env = crypto.seal(b"short tip", [officer.public_key()])
        for i in range(len(env)):
            with pytest.raises(crypto.OpenError):
                crypto.open_sealed(flipped(env, i), officer)

    @pytest.mark.parametrize("cut", [0, 1, 6, 7, 8, 24, 1192, 1203, 1204, -17, -1])
    def test_envelope_truncated_gives_open_error(self, officer, cut):
        env = crypto.seal(b"short tip", [officer.public_key()])
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(env[:cut], officer)

    def test_envelope_truncated_at_every_length_gives_open_error(self, officer, both):
        """Cut anywhere, inside the nonce included: always `OpenError`, never another error."""
        env = crypto.seal(b"short tip", both)
        for cut in range(len(env)):
            with pytest.raises(crypto.OpenError):
                crypto.open_sealed(env[:cut], officer)

    def test_envelope_extended_gives_open_error(self, officer):
        env = crypto.seal(b"short tip", [officer.public_key()])
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(env + b"\x00", officer)

    @pytest.mark.parametrize("garbage", [b"", b"whst", b"whst\x01\x01\x01", b"whst\x01\x01\x01\x00", b"\x00" * 2000, None, "text", 7])
    def test_envelope_garbage_gives_open_error(self, officer, garbage):
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(garbage, officer)

    def test_envelope_wraps_swapped_between_items_give_open_error(self, officer, both):
        a, b = crypto.seal(b"item a", both), crypto.seal(b"item b", both)
        wraps_len = crypto.wrap_block_len(a[7:8])
        swapped = a[: 7 + wraps_len] + b[7 + wraps_len :]
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(swapped, officer)

    def test_envelope_file_wrap_cannot_open_an_item(self, officer):
        data_key = bytes(range(32))
        file_wraps = crypto.wrap_data_key(data_key, [officer.public_key()], crypto.KIND_FILE)
        env = crypto._seal_with(b"item", data_key, bytes(12), file_wraps)
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(env, officer)
        item_wraps = crypto.wrap_data_key(data_key, [officer.public_key()], crypto.KIND_ITEM)
        assert crypto.open_sealed(crypto._seal_with(b"item", data_key, bytes(12), item_wraps), officer) == b"item"

    def test_envelope_item_wrap_cannot_open_a_file(self, officer):
        data_key = bytes(range(32))
        stream, _ = seal_file(b"file", [], data_key=data_key)
        item_wraps = crypto.wrap_data_key(data_key, [officer.public_key()], crypto.KIND_ITEM)
        with pytest.raises(crypto.OpenError):
            open_file(stream, item_wraps, officer)

    def test_envelope_wrap_relabelled_for_another_key_gives_open_error(self, officer, recovery, both):
        env = crypto.seal(b"tip", both)
        entry = 16 + crypto.WRAPPED_KEY_LEN
        # Give the recovery key's wrap the officer's key id, and drop the officer's own wrap.
        relabelled = env[:7] + b"\x01" + officer.key_id + env[8 + entry + 16 : 8 + 2 * entry] + env[8 + 2 * entry :]
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(relabelled, officer)

    def test_envelope_other_version_suite_or_kind_gives_open_error(self, officer):
        env = crypto.seal(b"tip", [officer.public_key()])
        for index, value in ((4, 2), (5, 2), (6, crypto.KIND_FILE), (6, 0)):
            changed = env[:index] + bytes([value]) + env[index + 1 :]
            with pytest.raises(crypto.OpenError):
                crypto.open_sealed(changed, officer)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(plaintext=st.binary(max_size=4096))
    def test_envelope_round_trip_property(self, officer, recovery, both, plaintext):
        env = crypto.seal(plaintext, both)
        assert crypto.open_sealed(env, officer) == plaintext
        assert crypto.open_sealed(env, recovery) == plaintext
        assert len(env) == 7 + 1 + 2 * (16 + 1168) + 12 + len(plaintext) + 16

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(data=st.binary(max_size=3000))
    def test_envelope_open_random_bytes_only_open_error(self, officer, data):
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(data, officer)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(wrapped=st.binary(min_size=1168, max_size=1168), body=st.binary(max_size=200), count_ok=st.booleans())
    def test_envelope_open_random_wrap_for_my_key_only_open_error(self, officer, wrapped, body, count_ok):
        """Random bytes shaped like an envelope addressed to this key reach HPKE itself."""
        count = b"\x01" if count_ok else b"\x02"
        env = crypto._fixed_header(crypto.KIND_ITEM) + count + officer.key_id + wrapped + body
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(env, officer)


# --------------------------------------------------------------------------- rewrap


class TestRewrap:
    def test_rewrap_adds_and_removes_without_touching_content(self, officer, recovery, outsider):
        env = crypto.seal(b"tip", [officer.public_key(), recovery.public_key()])
        new = crypto.rewrap_envelope(env, recovery, [recovery.public_key(), outsider.public_key()])
        old_wraps = crypto.wrap_block_len(env[7:8])
        new_wraps = crypto.wrap_block_len(new[7:8])
        assert new[7 + new_wraps :] == env[7 + old_wraps :]  # nonce and ciphertext unchanged
        assert crypto.envelope_recipients(new) == [recovery.key_id, outsider.key_id]
        assert crypto.open_sealed(new, outsider) == b"tip"
        assert crypto.open_sealed(new, recovery) == b"tip"
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(new, officer)

    def test_rewrap_needs_a_current_recipient(self, officer, outsider, both):
        env = crypto.seal(b"tip", both)
        with pytest.raises(crypto.OpenError):
            crypto.rewrap_envelope(env, outsider, [outsider.public_key()])

    def test_rewrap_file_wraps_leave_stream_untouched(self, officer, recovery, outsider, both):
        stream, wraps = seal_file(pattern(CHUNK + 3), both)
        new = crypto.rewrap(wraps, officer, [officer.public_key(), outsider.public_key()], crypto.KIND_FILE)
        assert open_file(stream, new, outsider) == pattern(CHUNK + 3)
        with pytest.raises(crypto.OpenError):
            open_file(stream, new, recovery)

    def test_rewrap_all_changes_only_the_wraps(self, app, reporter, officer_key, recovery_key, clock):
        from whistle.extensions import trust_of
        from whistle.intake import read_tip

        from .conftest import file_meta, file_plaintext

        reporter.submit_ok(files=[(io.BytesIO(pattern(CHUNK + 5)), "scan.pdf")])
        newcomer = crypto.PrivateKey.generate()

        def body(envelope: bytes) -> bytes:
            return envelope[7 + crypto.wrap_block_len(envelope[7:8], crypto.VERSION_2) :]

        with app.app_context():
            session = db.session()
            report = session.query(Report).one()
            body_before = body(report.content)
            blob = app.extensions["whistle.blobs"].open(session.query(Attachment).one().blob_name).read()
            keyring.certify(session, trust_of(app), newcomer, recovery_key, "officer-2", clock())
            keyring.retire(session, officer_key.key_id.hex(), clock())
            assert keyring.rewrap_all(session, trust_of(app), officer_key) == 2
            session.commit()
            report = session.query(Report).one()
            attachment = session.query(Attachment).one()
            assert body(report.content) == body_before
            assert app.extensions["whistle.blobs"].open(attachment.blob_name).read() == blob
            # The reporter's key stays a recipient of the tip and files it was sealed to.
            reporter_id = crypto.PublicKey.from_bytes(report.reporter_public_key).key_id
            assert set(crypto.envelope_recipients(report.content)) == {newcomer.key_id, recovery_key.key_id, reporter_id}
            assert set(crypto.recipient_ids(attachment.wraps)) == {newcomer.key_id, recovery_key.key_id, reporter_id}
            assert read_tip(report, newcomer)["what"]
            assert file_plaintext(app, report, attachment, newcomer) == pattern(CHUNK + 5)
            assert file_meta(report, attachment, newcomer).name == "scan.pdf"
            with pytest.raises(crypto.OpenError):
                read_tip(report, officer_key)
            with pytest.raises(crypto.OpenError):
                file_meta(report, attachment, officer_key)
            with pytest.raises(crypto.OpenError):
                file_plaintext(app, report, attachment, officer_key)


# --------------------------------------------------------------------------- file streams

SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7]


class TestFileStream:
    @pytest.mark.parametrize("size", SIZES)
    @pytest.mark.parametrize("writes", [(CHUNK,), (1, 7, 4093), (CHUNK + 1,), (3 * CHUNK + 100,)], ids=["chunk", "odd", "chunk+1", "all"])
    def test_file_round_trip(self, officer, recovery, both, size, writes):
        if writes == (1, 7, 4093) and size > CHUNK + 1:
            writes = (1, 7, 40093)  # keep the test quick; still misaligned writes
        data = pattern(size)
        stream, wraps = seal_file(data, both, writes)
        assert len(stream) == crypto.sealed_file_size(size)
        assert open_file(stream, wraps, officer) == data
        assert open_file(stream, wraps, recovery) == data

    def test_file_sealer_writes_ciphertext_as_data_arrives(self, both):
        sink = io.BytesIO()
        sealer = crypto.FileSealer(sink, both)
        sealer.write(pattern(2 * CHUNK + 1))
        assert len(sink.getvalue()) == 7 + 2 * crypto.SEALED_CHUNK_SIZE  # two full chunks already out
        assert pattern(64) not in sink.getvalue()
        sealer.close()
        sealer.close()  # idempotent
        with pytest.raises(ValueError):
            sealer.write(b"more")

    def test_file_sealer_double_close_still_opens(self, officer, both):
        sink = io.BytesIO()
        sealer = crypto.FileSealer(sink, both)
        sealer.write(pattern(CHUNK + 1))
        sealer.close()
        sealer.close()  # must not append a second chunk flagged last
        assert len(sink.getvalue()) == crypto.sealed_file_size(CHUNK + 1)
        assert open_file(sink.getvalue(), sealer.wraps, officer) == pattern(CHUNK + 1)

    def test_file_wraps_with_junk_appended_give_open_error(self, officer, both):
        stream, wraps = seal_file(b"evidence", both)
        for junk in (b"\x00", bytes(32), wraps[1:17], bytes(400), wraps[-400:]):
            with pytest.raises(crypto.OpenError):
                open_file(stream, wraps + junk, officer)
            with pytest.raises(crypto.OpenError):
                crypto.unwrap_data_key(wraps + junk, officer, crypto.KIND_FILE)

    def test_file_stream_names_no_recipient(self, officer, both):
        stream, wraps = seal_file(b"x", both)
        assert officer.key_id not in stream and officer.key_id in wraps

    def test_file_non_recipient_gives_open_error(self, outsider, both):
        stream, wraps = seal_file(b"evidence", both)
        with pytest.raises(crypto.OpenError):
            open_file(stream, wraps, outsider)

    def test_file_flip_any_header_or_chunk_byte_gives_open_error(self, officer):
        stream, wraps = seal_file(pattern(CHUNK + 20), [officer.public_key()])
        positions = list(range(7)) + [7, 8, 7 + CHUNK, 7 + crypto.SEALED_CHUNK_SIZE - 1, 7 + crypto.SEALED_CHUNK_SIZE, len(stream) - 1]
        for i in positions:
            with pytest.raises(crypto.OpenError):
                open_file(flipped(stream, i), wraps, officer)

    def test_file_flip_wrap_byte_gives_open_error(self, officer):
        stream, wraps = seal_file(b"evidence", [officer.public_key()])
        for i in [0, 1, 16, 17, 500, 1100, len(wraps) - 1]:
            with pytest.raises(crypto.OpenError):
                open_file(stream, flipped(wraps, i), officer)

    @pytest.mark.parametrize("size", [CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 7])
    def test_file_truncated_at_chunk_boundary_gives_open_error(self, officer, size):
        stream, wraps = seal_file(pattern(size), [officer.public_key()])
        chunks = -(-size // CHUNK)
        for keep in range(chunks):
            with pytest.raises(crypto.OpenError):
                open_file(stream[: 7 + keep * crypto.SEALED_CHUNK_SIZE], wraps, officer)

    def test_file_truncated_mid_chunk_gives_open_error(self, officer):
        stream, wraps = seal_file(pattern(CHUNK + 100), [officer.public_key()])
        for cut in (len(stream) - 1, len(stream) - 16, 7 + CHUNK):
            with pytest.raises(crypto.OpenError):
                open_file(stream[:cut], wraps, officer)

    def test_file_appended_chunk_gives_open_error(self, officer):
        stream, wraps = seal_file(pattern(2 * CHUNK + 5), [officer.public_key()])
        first = stream[7 : 7 + crypto.SEALED_CHUNK_SIZE]
        last = stream[7 + 2 * crypto.SEALED_CHUNK_SIZE :]
        for extra in (first, last, b"\x00", b"\x00" * 16):
            with pytest.raises(crypto.OpenError):
                open_file(stream + extra, wraps, officer)

    def test_file_reordered_or_dropped_chunks_give_open_error(self, officer):
        stream, wraps = seal_file(pattern(3 * CHUNK), [officer.public_key()])
        s = crypto.SEALED_CHUNK_SIZE
        c = [stream[7 + i * s : 7 + (i + 1) * s] for i in range(3)]
        for order in ([1, 0, 2], [0, 2, 1], [1, 2], [0, 2], [0, 0, 2], [2]):
            with pytest.raises(crypto.OpenError):
                open_file(stream[:7] + b"".join(c[i] for i in order), wraps, officer)

    def test_file_chunks_from_another_file_give_open_error(self, officer):
        a, wraps = seal_file(pattern(2 * CHUNK), [officer.public_key()])
        b, _ = seal_file(pattern(2 * CHUNK), [officer.public_key()])
        s = crypto.SEALED_CHUNK_SIZE
        with pytest.raises(crypto.OpenError):
            open_file(a[: 7 + s] + b[7 + s :], wraps, officer)

    @pytest.mark.parametrize("stream", [b"", b"whst", b"whst\x01\x01\x02", b"whst\x01\x01\x01" + bytes(40)])
    def test_file_empty_or_garbage_gives_open_error(self, officer, stream):
        _, wraps = seal_file(b"", [officer.public_key()])
        with pytest.raises(crypto.OpenError):
            open_file(stream, wraps, officer)

    @pytest.mark.parametrize("wraps", [b"", b"\x00", b"\x01", b"\x02" + bytes(100)])
    def test_file_garbage_wraps_gives_open_error(self, officer, wraps):
        stream, _ = seal_file(b"x", [officer.public_key()])
        with pytest.raises(crypto.OpenError):
            open_file(stream, wraps, officer)

    def test_file_chunk_yielded_only_after_it_authenticates(self, officer):
        stream, wraps = seal_file(pattern(2 * CHUNK), [officer.public_key()])
        chunks = crypto.open_file_stream(io.BytesIO(flipped(stream, 7 + crypto.SEALED_CHUNK_SIZE + 3)), wraps, officer)
        assert next(chunks) == pattern(CHUNK)  # the first chunk is intact and authentic
        with pytest.raises(crypto.OpenError):
            next(chunks)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        size=st.one_of(st.integers(0, 300), st.integers(CHUNK - 3, CHUNK + 3), st.integers(0, 3 * CHUNK)),
        writes=st.lists(st.integers(1, 2 * CHUNK), min_size=1, max_size=5),
        seed=st.integers(0, 255),
    )
    def test_file_round_trip_property(self, officer, size, writes, seed):
        data = bytes((i * 31 + seed) % 256 for i in range(size))
        stream, wraps = seal_file(data, [officer.public_key()], tuple(writes))
        assert open_file(stream, wraps, officer) == data

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(body=st.binary(max_size=300), with_header=st.booleans())
    def test_file_open_random_bytes_only_open_error(self, officer, body, with_header):
        _, wraps = seal_file(b"", [officer.public_key()])
        stream = (crypto._fixed_header(crypto.KIND_FILE) if with_header else b"") + body
        with pytest.raises(crypto.OpenError):
            open_file(stream, wraps, officer)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(wraps=st.binary(max_size=2500))
    def test_file_random_wraps_only_open_error(self, officer, wraps):
        with pytest.raises(crypto.OpenError):
            open_file(crypto._fixed_header(crypto.KIND_FILE) + bytes(16), wraps, officer)


# --------------------------------------------------------------------------- symmetric seals


class TestKeySeal:
    def test_key_seal_round_trip_and_tamper(self):
        key = bytes(range(32))
        sealed = crypto.seal_with_key(key, b"secret", b"aad")
        assert crypto.open_with_key(key, sealed, b"aad") == b"secret"
        for bad in (flipped(sealed, 0), flipped(sealed, len(sealed) - 1), sealed[:27], b""):
            with pytest.raises(crypto.OpenError):
                crypto.open_with_key(key, bad, b"aad")
        with pytest.raises(crypto.OpenError):
            crypto.open_with_key(key, sealed, b"other")

    def test_open_error_says_nothing(self):
        assert str(crypto.OpenError()) == "could not open"


# --------------------------------------------------------------------------- layering


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


class TestLayering:
    def test_only_crypto_module_imports_cryptography(self):
        offenders = [
            str(path.relative_to(PACKAGE))
            for path in sorted(PACKAGE.rglob("*.py"))
            if path.name != "crypto.py" or path.parent != PACKAGE
            if any(m == "cryptography" or m.startswith("cryptography.") for m in _imported_modules(path))
        ]
        assert offenders == []
        assert "cryptography.hazmat.primitives" in _imported_modules(PACKAGE / "crypto.py")

    def test_only_crypto_module_imports_argon2(self):
        offenders = [
            str(path.relative_to(PACKAGE))
            for path in sorted(PACKAGE.rglob("*.py"))
            if path.name != "crypto.py" or path.parent != PACKAGE
            if any(m == "argon2" or m.startswith("argon2.") for m in _imported_modules(path))
        ]
        assert offenders == []


def test_new_passphrase_key_files_take_the_rfc_9106_cost(officer):
    """A new key file's passphrase costs Argon2id t=3, m=64 MiB, p=4 (RFC 9106's second
    option), written into the file, and the file opens only with that passphrase."""
    assert crypto.PASSPHRASE_KDF == {"time_cost": 3, "memory_cost": 64 * 1024, "parallelism": 4}
    doc = keyring.private_key_document(officer, "correct horse battery", KeyRole.OFFICER, "officer 1")
    kdf = doc["kdf"]
    assert (kdf["name"], kdf["time_cost"], kdf["memory_cost"], kdf["parallelism"]) == ("argon2id", 3, 65536, 4)
    assert keyring.unlock(doc, "correct horse battery").key_id == officer.key_id
    with pytest.raises(keyring.KeyFileError):
        keyring.unlock(doc, "correct horse batterz")


@pytest.mark.parametrize("fields", [(b"",), (b"a", b""), (b"", b"", b""), (b"label", b"\x00" * 4, b"x" * 300)])
def test_length_prefixed_fields_round_trip_empty_ones_included(fields):
    """The length-prefixed fields of certificates and signed data (docs/crypto.md): an
    empty field, last included, is 4 zero bytes and reads back as empty."""
    data = crypto._lp(*fields)
    assert len(data) == sum(4 + len(f) for f in fields)
    assert crypto._read_lp(data, len(fields)) == list(fields)
    for cut in range(len(data)):
        with pytest.raises(ValueError):
            crypto._read_lp(data[:cut], len(fields))
    with pytest.raises(ValueError):
        crypto._read_lp(data + b"\x00", len(fields))


def test_hkdf_gives_32_bytes_of_hkdf_sha256_unless_asked():
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key = bytes(range(32))
    expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"whistle test").derive(key)
    assert crypto.hkdf(key, b"whistle test") == expected
    assert len(crypto.hkdf(key, b"whistle test", 96)) == 96


def test_an_item_takes_255_recipients_and_no_more():
    keys = [crypto.PrivateKey.generate() for _ in range(256)]
    publics = [k.public_key() for k in keys]
    envelope = crypto.seal(b"to many", publics[:255])
    assert crypto.open_sealed(envelope, keys[254]) == b"to many"
    assert len(crypto.envelope_recipients(envelope)) == 255
    with pytest.raises(ValueError):
        crypto.seal(b"to too many", publics)


def test_file_sealer_write_says_how_many_bytes_it_took():
    sealer = crypto.FileSealer(io.BytesIO())
    assert sealer.write(b"abc") == 3
    assert sealer.write(memoryview(bytes(crypto.CHUNK_SIZE + 5))) == crypto.CHUNK_SIZE + 5
    assert sealer.plaintext_size == crypto.CHUNK_SIZE + 8


def test_version_1_file_sealer_without_recipients_has_an_empty_wrap_block():
    """What bench/file_encrypt.py measures: the stream alone, no wrap."""
    sealer = crypto.FileSealer(io.BytesIO(), [], data_key=bytes(32))
    assert sealer.wraps == b""


@pytest.mark.parametrize("data", [b"", b"whst", None, "whst\x01\x01\x01", b"\x00" * 7])
def test_is_legacy_is_false_not_just_falsy_for_anything_else(data):
    assert crypto.is_legacy(data) is False


def test_sign_in_passphrases_take_the_rfc_9106_cost_by_default():
    stored = crypto.PasswordHashing().hash("a passphrase")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_sign_in_hash_wants_rehash_exactly_when_its_cost_is_not_the_current_one():
    cheap, current = crypto.PasswordHashing(1, 8, 1), crypto.PasswordHashing(2, 8, 1)
    old, new = cheap.hash("pass"), current.hash("pass")
    assert current.needs_rehash(old) is True and current.needs_rehash(new) is False
    assert current.check(old, "pass") is True and current.check(None, "pass") is False


def test_empty_plaintext_seals_and_opens_under_a_key():
    key = bytes(range(32))
    sealed = crypto.seal_with_key(key, b"", b"aad")
    assert len(sealed) == crypto.NONCE_LEN + crypto.TAG_LEN
    assert crypto.open_with_key(key, sealed, b"aad") == b""
    for cut in range(len(sealed)):
        with pytest.raises(crypto.OpenError):
            crypto.open_with_key(key, sealed[:cut], b"aad")


def test_keyed_hash_is_hmac_sha256_of_label_zero_byte_data():
    """docs/crypto.md section 13: keyed_hash(label, data) = HMAC-SHA256(key, label || 0x00 || data)."""
    import hmac as hmac_module

    key = bytes(range(32))
    expected = hmac_module.new(key, b"label\x00data", hashlib.sha256).digest()
    assert crypto.keyed_hash(key, b"label", b"data") == expected


def test_code_keys_repr_shows_no_key_material():
    keys = crypto.code_keys(bytes(range(32)))
    shown = repr(keys) + str(keys)
    assert keys.verifier.hex() not in shown and repr(keys.verifier) not in shown


def test_every_public_name_listed_exists():
    for name in crypto.__all__:
        assert getattr(crypto, name) is not None


def test_keys_contexts_and_results_cannot_be_changed_once_made():
    """What a check returned, or a key or context that was checked, cannot be altered
    afterwards (frozen dataclasses)."""
    import dataclasses

    private = crypto.PrivateKey.generate()
    verify = private.signing_key.verify_key()
    context = crypto.Context(bytes(32), "tip")
    made = [
        (private.public_key(), "x25519"),
        (private, "x25519"),
        (verify, "ed25519"),
        (context, "slot"),
        (crypto.Certified(private.public_key(), verify, "officer", "x", "2026-11-25"), "role"),
        (crypto.Signed(b"text", verify), "plaintext"),
        (crypto.code_keys(bytes(32)), "verifier"),
    ]
    for value, field in made:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, field, b"changed")
