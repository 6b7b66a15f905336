"""Format version 2 of `whistle.crypto` (docs/crypto.md, "version 2"): known-answer vectors
checked against the spec with the primitives themselves, and every attack of someone who
can write the database and the blob store, but holds no private key: each ends in
`OpenError`. Version 1 items keep opening, flagged as legacy."""

from __future__ import annotations

import hashlib
import hmac
import io

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from whistle import crypto

from .crypto_support import assert_large_stream_matches, both, fixed_key, flipped, lp, officer, outsider, pattern, recovery, vector  # noqa: F401 (fixtures)

CHUNK = crypto.CHUNK_SIZE
ENTRY = crypto.WRAP_ENTRY_LEN
HEADER_ITEM = b"whst\x02\x01\x01"
HEADER_FILE = b"whst\x02\x01\x02"


def spec_hkdf(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


def context_of(doc: dict) -> crypto.Context:
    return crypto.Context(bytes.fromhex(doc["case"]), doc["slot"])


def seal_file(data: bytes, recipients, context, *, data_key: bytes | None = None, writes: int = CHUNK) -> tuple[bytes, bytes]:
    sink = io.BytesIO()
    sealer = crypto.FileSealer(sink, data_key=data_key)
    for offset in range(0, len(data), writes):
        sealer.write(data[offset : offset + writes])
    sealer.close()
    return sink.getvalue(), sealer.wrap_for(recipients, context)


def open_file(stream: bytes, wraps: bytes, key, context=None, **kw) -> bytes:
    return b"".join(crypto.open_file_stream(io.BytesIO(stream), wraps, key, context, **kw))


REPORTER_PUBLIC = bytes(range(256)) * 4 + bytes(192)  # any 1216 bytes will do for a binding
CASE_A = crypto.case_binding(b"case-a", REPORTER_PUBLIC, "web", "2026-11-25")
CASE_B = crypto.case_binding(b"case-b", REPORTER_PUBLIC, "web", "2026-11-25")
TIP_A = crypto.Context(CASE_A, "tip")


# --------------------------------------------------------------------------- vectors


class TestContextVectors:
    def test_context_vector_case_binding_is_labelled_sha256(self):
        doc = vector("context")
        assert bytes.fromhex(doc["case_label"]) == b"whistle v2 case"
        reporter = bytes.fromhex(doc["reporter_public_key"])
        assert reporter == fixed_key("reporter").public_key().to_bytes()
        for case in doc["cases"]:
            uid, channel, on = bytes.fromhex(case["uid"]), case["channel"], case["received_on"]
            expected = hashlib.sha256(lp(b"whistle v2 case", uid, reporter, channel.encode(), on.encode())).hexdigest()
            assert expected == case["case"]
            assert crypto.case_binding(uid, reporter, channel, on).hex() == case["case"]
        assert len({c["case"] for c in doc["cases"]}) == len(doc["cases"])  # uid, channel and date each count

    def test_context_vector_digest_is_labelled_sha256(self):
        doc = vector("context")
        assert bytes.fromhex(doc["context_label"]) == b"whistle v2 context"
        for c in doc["contexts"]:
            expected = hashlib.sha256(lp(b"whistle v2 context", bytes.fromhex(c["case"]), c["slot"].encode())).hexdigest()
            assert expected == c["digest"] == context_of(c).digest.hex()


ENVELOPES_V2 = ["empty", "tip", "message", "file_meta", "signed_message", "tip_with_reporter", "file_meta_with_reporter", "addition"]


class TestEnvelopeV2Vectors:
    @pytest.mark.parametrize("name", ENVELOPES_V2)
    def test_envelope_v2_vector_content_is_exact_for_fixed_key_and_nonce(self, name):
        v = vector("envelope_v2")["vectors"][name]
        made = crypto._seal_with(
            bytes.fromhex(v["plaintext"]),
            bytes.fromhex(v["data_key"]),
            bytes.fromhex(v["nonce"]),
            bytes.fromhex(v["wraps"]),
            context_of(v["context"]),
        )
        assert made.hex() == v["envelope"]

    @pytest.mark.parametrize("name", ENVELOPES_V2)
    def test_envelope_v2_vector_matches_the_spec(self, name):
        """Rebuilt from docs/crypto.md with the primitives alone: layout, keys, MAC, AEAD."""
        doc = vector("envelope_v2")
        v = doc["vectors"][name]
        env, wraps = bytes.fromhex(v["envelope"]), bytes.fromhex(v["wraps"])
        data_key = bytes.fromhex(v["data_key"])
        assert doc["header"] == HEADER_ITEM.hex() and env[:7] == HEADER_ITEM
        n = len(v["recipients"])
        assert wraps[0] == n and len(wraps) == 1 + n * ENTRY + 32
        assert [wraps[1 + i * ENTRY : 17 + i * ENTRY].hex() for i in range(n)] == v["recipients"]
        assert env[7 : 7 + len(wraps)] == wraps
        content_key = spec_hkdf(data_key, b"whistle v2 content key")
        mac_key = spec_hkdf(data_key, b"whistle v2 wrap mac")
        assert (content_key.hex(), mac_key.hex()) == (v["content_key"], v["mac_key"])
        digest = bytes.fromhex(v["context"]["digest"])
        assert bytes.fromhex(v["associated_data"]) == HEADER_ITEM + digest
        mac = hmac.new(mac_key, HEADER_ITEM + digest + wraps[:-32], hashlib.sha256).digest()
        assert mac.hex() == v["mac"] == wraps[-32:].hex()
        body = env[7 + len(wraps) :]
        assert body[:12].hex() == v["nonce"]
        assert AESGCM(content_key).decrypt(body[:12], body[12:], HEADER_ITEM + digest).hex() == v["plaintext"]

    @pytest.mark.parametrize("name", ENVELOPES_V2)
    def test_envelope_v2_vector_opens_for_every_listed_recipient_in_its_context_only(self, name, outsider):
        v = vector("envelope_v2")["vectors"][name]
        keys = {k.key_id.hex(): k for k in (fixed_key("officer"), fixed_key("recovery"), fixed_key("reporter"))}
        env, context = bytes.fromhex(v["envelope"]), context_of(v["context"])
        assert not crypto.is_legacy(env)
        for key_id in v["recipients"]:
            assert crypto.open_sealed(env, keys[key_id], context).hex() == v["plaintext"]
            with pytest.raises(crypto.OpenError):
                crypto.open_sealed(env, keys[key_id], crypto.Context(context.case, context.slot + "x"))
            with pytest.raises(crypto.OpenError):
                crypto.open_sealed(env, keys[key_id])  # a version 2 item needs its context
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(env, outsider, context)

    def test_envelope_v2_vector_wrap_info_binds_header_and_key_id(self, officer):
        doc = vector("envelope_v2")
        assert bytes.fromhex(doc["wrap_info_prefix"]) == b"whistle v2 wrap"
        expected = b"whistle v2 wrap" + HEADER_ITEM + officer.key_id
        assert crypto._wrap_info(crypto.KIND_ITEM, officer.key_id, crypto.VERSION_2) == expected

    def test_envelope_v2_vector_signed_message_is_the_officers(self):
        v = vector("envelope_v2")["vectors"]["signed_message"]
        officer_verify = fixed_key("officer").signing_key.verify_key()
        opened = crypto.open_signed(bytes.fromhex(v["envelope"]), fixed_key("reporter"), context_of(v["context"]), [officer_verify])
        assert opened.plaintext.hex() == v["signed_payload"] and opened.signer == officer_verify


class TestFileV2Vectors:
    @pytest.mark.parametrize("name", ["empty", "one", "short"])
    def test_file_v2_small_vector_is_exact(self, name):
        doc = vector("file_stream_v2")
        v = doc["small"][name]
        sink = io.BytesIO()
        sealer = crypto.FileSealer(sink, data_key=bytes.fromhex(doc["data_key"]))
        sealer.write(bytes.fromhex(v["plaintext"]))
        sealer.close()
        assert sink.getvalue().hex() == v["sealed"]
        assert doc["header"] == HEADER_FILE.hex()

    @pytest.mark.parametrize("name", ["empty", "one", "short"])
    def test_file_v2_small_vector_matches_the_spec(self, name):
        doc = vector("file_stream_v2")
        sealed = bytes.fromhex(doc["small"][name]["sealed"])
        content_key = spec_hkdf(bytes.fromhex(doc["data_key"]), b"whistle v2 content key")
        assert content_key.hex() == doc["content_key"]
        nonce = bytes(11) + b"\x01"  # chunk 0, last
        assert sealed[:7] == HEADER_FILE
        assert AESGCM(content_key).decrypt(nonce, sealed[7:], HEADER_FILE).hex() == doc["small"][name]["plaintext"]

    @pytest.mark.parametrize("name", ["chunk", "chunk_plus_one", "three_chunks"])
    def test_file_v2_large_vector_is_exact(self, name):
        doc = vector("file_stream_v2")
        v = doc["large"][name]
        stream, _ = seal_file(pattern(v["plaintext_size"]), [fixed_key("officer").public_key()], TIP_A,
                              data_key=bytes.fromhex(doc["data_key"]), writes=4099)
        assert_large_stream_matches(stream, v)

    @pytest.mark.parametrize("opener", ["officer", "recovery"])
    def test_file_v2_vector_wraps_open_in_their_context(self, opener):
        doc = vector("file_stream_v2")
        key, wraps, context = fixed_key(opener), bytes.fromhex(doc["wraps"]), context_of(doc["context"])
        assert crypto.unwrap_data_key(wraps, key, crypto.KIND_FILE, context).hex() == doc["data_key"]
        mac_key = spec_hkdf(bytes.fromhex(doc["data_key"]), b"whistle v2 wrap mac")
        assert mac_key.hex() == doc["mac_key"]
        mac = hmac.new(mac_key, HEADER_FILE + context.digest + wraps[:-32], hashlib.sha256).digest()
        assert mac.hex() == doc["mac"] == wraps[-32:].hex()
        for v in doc["small"].values():
            assert open_file(bytes.fromhex(v["sealed"]), wraps, key, context).hex() == v["plaintext"]
        with pytest.raises(crypto.OpenError):
            open_file(bytes.fromhex(doc["small"]["short"]["sealed"]), wraps, key, crypto.Context(context.case, "tip"))


    def test_file_v2_vector_wraps_with_reporter_open_for_all_three_in_their_context_only(self, outsider):
        """The reporter's key is one more entry of the same authenticated block (crypto §22)."""
        doc = vector("file_stream_v2")
        wraps, context = bytes.fromhex(doc["wraps_with_reporter"]), context_of(doc["context"])
        keys = [fixed_key("officer"), fixed_key("recovery"), fixed_key("reporter")]
        assert crypto.recipient_ids(wraps) == [k.key_id for k in keys]
        mac_key = bytes.fromhex(doc["mac_key"])
        assert hmac.new(mac_key, HEADER_FILE + context.digest + wraps[:-32], hashlib.sha256).digest() == wraps[-32:]
        for key in keys:
            assert crypto.unwrap_data_key(wraps, key, crypto.KIND_FILE, context).hex() == doc["data_key"]
            with pytest.raises(crypto.OpenError):
                crypto.unwrap_data_key(wraps, key, crypto.KIND_FILE, crypto.Context(context.case, "tip"))
        with pytest.raises(crypto.OpenError):
            crypto.unwrap_data_key(wraps, outsider, crypto.KIND_FILE, context)

    def test_envelope_v2_vector_reporter_items_name_the_reporter_and_the_addition_says_so(self):
        from whistle import items

        doc = vector("envelope_v2")["vectors"]
        reporter = fixed_key("reporter").key_id.hex()
        for name in ("tip_with_reporter", "file_meta_with_reporter", "addition"):
            assert doc[name]["recipients"][-1] == reporter
        assert doc["addition"]["context"]["slot"] == "message/3/reporter"
        text, files, adds = items._parse(bytes.fromhex(doc["addition"]["plaintext"]), legacy=False)
        assert (text, files, adds) == ("พบใบสั่งซื้อฉบับที่สอง", [], True)
        assert items._parse(items._payload("a reply", ()), legacy=False)[2] is False  # a reply holds no "adds"


# --------------------------------------------------------------------------- contexts


class TestContext:
    @pytest.mark.parametrize(
        "slot", ["", " tip", "tip ", "ti p", "tïp", "tip\n", "x" * 129, "ข้อความ"], ids=repr
    )
    def test_context_bad_slot_is_refused(self, slot):
        with pytest.raises(ValueError):
            crypto.Context(CASE_A, slot)

    @pytest.mark.parametrize("case", [b"", bytes(31), bytes(33), "x" * 32])
    def test_context_bad_case_is_refused(self, case):
        with pytest.raises(ValueError):
            crypto.Context(case, "tip")

    def test_context_longest_slot_is_accepted(self):
        assert len(crypto.Context(CASE_A, "x" * 128).digest) == 32

    @pytest.mark.parametrize(
        "args",
        [
            (b"", REPORTER_PUBLIC, "web", "2026-11-25"),
            (b"x" * 65, REPORTER_PUBLIC, "web", "2026-11-25"),
            (b"uid", REPORTER_PUBLIC[:-1], "web", "2026-11-25"),
            (b"uid", REPORTER_PUBLIC, "", "2026-11-25"),
            (b"uid", REPORTER_PUBLIC, "we b", "2026-11-25"),
            (b"uid", REPORTER_PUBLIC, "web", "2026-02-30"),
            (b"uid", REPORTER_PUBLIC, "web", "20261125"),
            (b"uid", REPORTER_PUBLIC, "web", "2026-11-25T00:00"),
            ("uid", REPORTER_PUBLIC, "web", "2026-11-25"),
        ],
    )
    def test_case_binding_bad_input_is_refused(self, args):
        with pytest.raises(ValueError):
            crypto.case_binding(*args)

    def test_case_binding_longest_fields_are_accepted_and_one_more_refused(self):
        assert len(crypto.case_binding(b"u" * 64, REPORTER_PUBLIC, "c" * 32, "2026-11-25")) == 32
        assert len(crypto.case_binding(b"u", REPORTER_PUBLIC, "c", "2026-11-25")) == 32
        for args in ((b"u" * 65, REPORTER_PUBLIC, "web", "2026-11-25"), (b"u", REPORTER_PUBLIC, "c" * 33, "2026-11-25")):
            with pytest.raises(ValueError):
                crypto.case_binding(*args)

    def test_case_binding_fields_cannot_slide_into_each_other(self):
        """Length prefixes: moving a byte from one field to the next changes the binding."""
        a = crypto.case_binding(b"ab", REPORTER_PUBLIC, "web", "2026-11-25")
        b = crypto.case_binding(b"a", REPORTER_PUBLIC, "bweb"[:3], "2026-11-25")
        assert a != b
        assert crypto.Context(CASE_A, "message/1/officer").digest != crypto.Context(CASE_A, "message/1/officeR").digest


# --------------------------------------------------------------------------- envelopes v2


class TestEnvelopeV2:
    def test_envelope_v2_round_trip_for_each_recipient(self, officer, recovery, outsider, both):
        env = crypto.seal(b"tip", both, TIP_A)
        assert env[:7] == HEADER_ITEM
        assert crypto.open_sealed(env, officer, TIP_A) == b"tip"
        assert crypto.open_sealed(env, recovery, TIP_A) == b"tip"
        assert crypto.envelope_recipients(env) == [officer.key_id, recovery.key_id]
        assert len(env) == 7 + 1 + 2 * ENTRY + 32 + 12 + 3 + 16
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(env, outsider, TIP_A)

    @pytest.mark.parametrize(
        "other",
        [
            crypto.Context(CASE_B, "tip"),
            crypto.Context(CASE_A, "identity"),
            crypto.Context(crypto.case_binding(b"case-a", REPORTER_PUBLIC, "phone", "2026-11-25"), "tip"),
            crypto.Context(crypto.case_binding(b"case-a", REPORTER_PUBLIC, "web", "2026-11-26"), "tip"),
            crypto.Context(crypto.case_binding(b"case-a", bytes(1216), "web", "2026-11-25"), "tip"),
        ],
        ids=["other-case", "other-slot", "other-channel", "other-date", "other-reporter-key"],
    )
    def test_envelope_v2_copied_to_another_context_gives_open_error(self, officer, recovery, both, other):
        """A database writer copies case A's tip into another case or slot: it does not open."""
        env = crypto.seal(b"tip of case A", both, TIP_A)
        for key in (officer, recovery):
            with pytest.raises(crypto.OpenError):
                crypto.open_sealed(env, key, other)

    def test_envelope_v2_turned_into_a_file_gives_open_error(self, officer, both):
        """Another kind: the item's header relabelled as a file stream, and its wrap block
        used as a file's, fail (the kind is in the HPKE info, the MAC and the AEAD data)."""
        data_key = bytes(range(32))
        item_wraps = crypto.wrap_data_key(data_key, both, crypto.KIND_ITEM, TIP_A)
        stream, _ = seal_file(b"file", both, TIP_A, data_key=data_key)
        with pytest.raises(crypto.OpenError):
            open_file(stream, item_wraps, officer, TIP_A)
        env = crypto._seal_with(b"item", data_key, bytes(12), item_wraps, TIP_A)
        as_file = HEADER_FILE + env[7:]
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(as_file, officer, TIP_A)
        assert crypto.open_sealed(env, officer, TIP_A) == b"item"

    def test_envelope_v2_mutating_any_byte_opens_for_no_recipient(self, officer, recovery, both):
        """The 3,000-mutation finding of version 1 (833 opened, all damage in the other
        recipient's wrap): every single-byte flip (two masks) and deletion of a
        2-recipient envelope, opened by both recipients. Nothing opens."""
        env = crypto.seal("ร้องเรียน".encode(), both, TIP_A)
        mutants = [flipped(env, i, mask) for i in range(len(env)) for mask in (0x01, 0x80)]
        mutants += [env[:i] + env[i + 1 :] for i in range(len(env))]
        opened = 0
        for mutant in mutants:
            for key in (officer, recovery):
                try:
                    crypto.open_sealed(mutant, key, TIP_A)
                    opened += 1
                except crypto.OpenError:
                    pass
        assert len(mutants) == 3 * len(env) == 7389
        assert opened == 0

    def test_envelope_v2_other_recipients_wrap_damaged_is_caught_by_the_first_reader(self, officer, recovery, both):
        env = crypto.seal(b"tip", both, TIP_A)
        recovery_wrap = 8 + ENTRY + 16 + 500  # inside the recovery key's HPKE wrap
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(flipped(env, recovery_wrap), officer, TIP_A)

    def test_envelope_v2_wrap_removed_added_or_reordered_gives_open_error(self, officer, recovery, outsider, both):
        env = crypto.seal(b"tip", both, TIP_A)
        wraps = env[7 : 7 + 1 + 2 * ENTRY + 32]
        body = env[7 + len(wraps) :]
        first, second, mac = wraps[1 : 1 + ENTRY], wraps[1 + ENTRY : 1 + 2 * ENTRY], wraps[-32:]
        foreign = crypto.seal(b"x", [outsider.public_key()], TIP_A)[8 : 8 + ENTRY]
        for block in (
            b"\x01" + first + mac,  # the recovery wrap dropped
            b"\x02" + second + first + mac,  # reordered
            b"\x03" + first + second + foreign + mac,  # an entry added
            b"\x02" + first + second,  # the MAC dropped
            wraps + b"\x00",  # junk appended
        ):
            for key in (officer, recovery):
                with pytest.raises(crypto.OpenError):
                    crypto.open_sealed(HEADER_ITEM + block + body, key, TIP_A)

    def test_envelope_v2_truncated_at_every_length_gives_open_error(self, officer, both):
        env = crypto.seal(b"short tip", both, TIP_A)
        for cut in range(len(env)):
            with pytest.raises(crypto.OpenError):
                crypto.open_sealed(env[:cut], officer, TIP_A)

    def test_envelope_v2_wraps_swapped_between_items_give_open_error(self, officer, both):
        a, b = crypto.seal(b"item a", both, TIP_A), crypto.seal(b"item b", both, TIP_A)
        n = 7 + 1 + 2 * ENTRY + 32
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(a[:n] + b[n:], officer, TIP_A)

    def test_envelope_v2_downgraded_to_version_1_gives_open_error(self, officer, both):
        """Relabelled as version 1, with or without its MAC: its wraps were sealed with the
        version 2 HPKE info, and its content under the derived content key."""
        env = crypto.seal(b"tip", both, TIP_A)
        v1_header = b"whst\x01\x01\x01"
        n = 1 + 2 * ENTRY
        for downgraded in (v1_header + env[7:], v1_header + env[7 : 7 + n] + env[7 + n + 32 :]):
            with pytest.raises(crypto.OpenError):
                crypto.open_sealed(downgraded, officer)
            with pytest.raises(crypto.OpenError):
                crypto.open_sealed(downgraded, officer, TIP_A)

    def test_envelope_v2_other_version_suite_or_kind_gives_open_error(self, officer):
        env = crypto.seal(b"tip", [officer.public_key()], TIP_A)
        for index, value in ((4, 1), (4, 3), (5, 2), (6, crypto.KIND_FILE), (6, 0)):
            with pytest.raises(crypto.OpenError):
                crypto.open_sealed(env[:index] + bytes([value]) + env[index + 1 :], officer, TIP_A)

    def test_envelope_v2_refuses_without_context_or_with_a_wrong_type(self, officer):
        env = crypto.seal(b"tip", [officer.public_key()], TIP_A)
        for context in (None, "tip", TIP_A.digest):
            with pytest.raises(crypto.OpenError):
                crypto.open_sealed(env, officer, context)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        plaintext=st.binary(max_size=2048),
        slot=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=128),
        other=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=128),
    )
    def test_envelope_v2_opens_in_its_context_and_no_other_property(self, officer, plaintext, slot, other):
        context = crypto.Context(CASE_A, slot)
        env = crypto.seal(plaintext, [officer.public_key()], context)
        assert crypto.open_sealed(env, officer, context) == plaintext
        if other != slot:
            with pytest.raises(crypto.OpenError):
                crypto.open_sealed(env, officer, crypto.Context(CASE_A, other))

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(wrapped=st.binary(min_size=1168, max_size=1168), mac=st.binary(min_size=32, max_size=32), body=st.binary(max_size=200))
    def test_envelope_v2_random_wrap_for_my_key_only_open_error(self, officer, wrapped, mac, body):
        env = HEADER_ITEM + b"\x01" + officer.key_id + wrapped + mac + body
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(env, officer, TIP_A)


class TestRewrapV2:
    def test_rewrap_v2_changes_recipients_keeps_content_and_binding(self, officer, recovery, outsider, both):
        env = crypto.seal(b"tip", both, TIP_A)
        new = crypto.rewrap_envelope(env, recovery, [recovery.public_key(), outsider.public_key()], TIP_A)
        assert new[:7] == HEADER_ITEM
        assert new[-(12 + 3 + 16) :] == env[-(12 + 3 + 16) :]  # nonce and ciphertext untouched
        assert crypto.open_sealed(new, outsider, TIP_A) == b"tip"
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(new, officer, TIP_A)
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(new, outsider, crypto.Context(CASE_B, "tip"))

    def test_rewrap_v2_cannot_move_an_item(self, officer, both):
        """Rewrapping needs the item's own context: naming another one fails."""
        env = crypto.seal(b"tip", both, TIP_A)
        with pytest.raises(crypto.OpenError):
            crypto.rewrap_envelope(env, officer, both, crypto.Context(CASE_B, "tip"))
        with pytest.raises(crypto.OpenError):
            crypto.rewrap_envelope(env, officer, both)

    def test_rewrap_v2_file_wraps_keep_version_and_context(self, officer, outsider, both):
        context = crypto.Context(CASE_A, "file/" + "ab" * 16 + "/data")
        stream, wraps = seal_file(pattern(CHUNK + 3), both, context)
        new = crypto.rewrap(wraps, officer, [outsider.public_key()], crypto.KIND_FILE, context)
        assert len(new) == 1 + ENTRY + 32
        assert open_file(stream, new, outsider, context) == pattern(CHUNK + 3)

    def test_rewrap_v1_block_with_a_context_stays_version_1(self, officer, outsider, both):
        env = crypto.seal(b"legacy", both)
        new = crypto.rewrap_envelope(env, officer, [outsider.public_key()], TIP_A)
        assert crypto.is_legacy(new) and crypto.open_sealed(new, outsider) == b"legacy"
        block = crypto.wrap_data_key(bytes(32), both, crypto.KIND_FILE)
        assert len(crypto.rewrap(block, officer, both, crypto.KIND_FILE, TIP_A)) == 1 + 2 * ENTRY


# --------------------------------------------------------------------------- file streams v2


class TestFileStreamV2:
    FILE_CTX = crypto.Context(CASE_A, "file/" + "0f" * 16 + "/data")

    @pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7])
    def test_file_v2_round_trip(self, officer, recovery, both, size):
        stream, wraps = seal_file(pattern(size), both, self.FILE_CTX, writes=4093)
        assert stream[:7] == HEADER_FILE and len(stream) == crypto.sealed_file_size(size)
        assert open_file(stream, wraps, officer, self.FILE_CTX) == pattern(size)
        assert open_file(stream, wraps, recovery, self.FILE_CTX) == pattern(size)

    def test_file_v2_moved_to_another_context_gives_open_error(self, officer, both):
        stream, wraps = seal_file(b"evidence", both, self.FILE_CTX)
        for other in (crypto.Context(CASE_B, self.FILE_CTX.slot), crypto.Context(CASE_A, "file/" + "0f" * 16 + "/meta"), None):
            with pytest.raises(crypto.OpenError):
                open_file(stream, wraps, officer, other)

    def test_file_v2_wrap_blocks_swapped_between_files_give_open_error(self, officer, both):
        """Both files in the same case and slot name: still each wrap opens only its stream."""
        a, wraps_a = seal_file(b"file a" * 100, both, self.FILE_CTX)
        b, wraps_b = seal_file(b"file b" * 100, both, self.FILE_CTX)
        for stream, wraps in ((a, wraps_b), (b, wraps_a)):
            with pytest.raises(crypto.OpenError):
                open_file(stream, wraps, officer, self.FILE_CTX)

    def test_file_v2_other_recipients_wrap_damaged_is_caught(self, officer, recovery, both):
        stream, wraps = seal_file(b"evidence", both, self.FILE_CTX)
        for i in range(len(wraps)):
            with pytest.raises(crypto.OpenError):
                open_file(stream, flipped(wraps, i), officer, self.FILE_CTX)
        with pytest.raises(crypto.OpenError):
            open_file(stream, wraps + b"\x00", officer, self.FILE_CTX)
        with pytest.raises(crypto.OpenError):
            open_file(stream, wraps[:-32], recovery, self.FILE_CTX)

    def test_file_v2_flip_any_header_or_chunk_byte_gives_open_error(self, officer):
        stream, wraps = seal_file(pattern(CHUNK + 20), [officer.public_key()], self.FILE_CTX)
        s = crypto.SEALED_CHUNK_SIZE
        for i in list(range(7)) + [7, 8, 7 + CHUNK, 7 + s - 1, 7 + s, len(stream) - 1]:
            with pytest.raises(crypto.OpenError):
                open_file(flipped(stream, i), wraps, officer, self.FILE_CTX)

    def test_file_v2_truncated_or_extended_gives_open_error(self, officer):
        stream, wraps = seal_file(pattern(2 * CHUNK + 5), [officer.public_key()], self.FILE_CTX)
        s = crypto.SEALED_CHUNK_SIZE
        for bad in (stream[: 7 + s], stream[: 7 + 2 * s], stream[:-1], stream[:7], stream + b"\x00", stream + stream[7 : 7 + s]):
            with pytest.raises(crypto.OpenError):
                open_file(bad, wraps, officer, self.FILE_CTX)

    def test_file_v2_wraps_with_400_junk_bytes_appended_give_open_error(self, officer, both):
        stream, wraps = seal_file(b"evidence", both, self.FILE_CTX)
        for junk in (bytes(400), wraps[-400:]):
            with pytest.raises(crypto.OpenError):
                open_file(stream, wraps + junk, officer, self.FILE_CTX)
            with pytest.raises(crypto.OpenError):
                crypto.unwrap_data_key(wraps + junk, officer, crypto.KIND_FILE, self.FILE_CTX)

    def test_file_v2_downgraded_header_gives_open_error(self, officer):
        stream, wraps = seal_file(b"evidence", [officer.public_key()], self.FILE_CTX)
        downgraded = b"whst\x01\x01\x02" + stream[7:]
        for block in (wraps, wraps[:-32]):
            with pytest.raises(crypto.OpenError):
                open_file(downgraded, block, officer, self.FILE_CTX)

    def test_file_v2_sealer_wraps_once_after_close(self, both):
        sealer = crypto.FileSealer(io.BytesIO())
        sealer.write(b"x")
        with pytest.raises(ValueError):
            sealer.wrap_for(both, self.FILE_CTX)  # not closed yet
        with pytest.raises(ValueError):
            sealer.wraps  # noqa: B018 (version 2 has no wrap block until wrap_for)
        sealer.close()
        sealer.wrap_for(both, self.FILE_CTX)
        with pytest.raises(ValueError):
            sealer.wrap_for(both, crypto.Context(CASE_B, self.FILE_CTX.slot))
        with pytest.raises(ValueError):
            crypto.FileSealer(io.BytesIO(), both).wrap_for(both, self.FILE_CTX)  # version 1

    def test_file_v2_double_close_still_opens(self, officer):
        sink = io.BytesIO()
        sealer = crypto.FileSealer(sink)
        sealer.write(pattern(CHUNK + 1))
        sealer.close()
        sealer.close()
        assert len(sink.getvalue()) == crypto.sealed_file_size(CHUNK + 1)
        wraps = sealer.wrap_for([officer.public_key()], self.FILE_CTX)
        assert open_file(sink.getvalue(), wraps, officer, self.FILE_CTX) == pattern(CHUNK + 1)

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(body=st.binary(max_size=300), wraps=st.binary(max_size=2500))
    def test_file_v2_random_bytes_only_open_error(self, officer, body, wraps):
        with pytest.raises(crypto.OpenError):
            open_file(HEADER_FILE + body, wraps, officer, self.FILE_CTX)


# --------------------------------------------------------------------------- legacy and rebinding


class TestLegacy:
    def test_legacy_v1_items_still_open_and_are_flagged(self, officer, both):
        env = crypto.seal(b"old tip", both)
        assert crypto.is_legacy(env) and not crypto.is_legacy(crypto.seal(b"new", both, TIP_A))
        assert crypto.open_sealed(env, officer) == b"old tip"
        assert crypto.open_sealed(env, officer, TIP_A) == b"old tip"  # callers may pass contexts already
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(env, officer, TIP_A, accept_legacy=False)

    def test_legacy_v1_file_streams_still_open_and_are_flagged(self, officer, both):
        sink = io.BytesIO()
        sealer = crypto.FileSealer(sink, both)
        sealer.write(b"old file")
        sealer.close()
        stream = sink.getvalue()
        assert crypto.is_legacy(stream[:7])
        assert open_file(stream, sealer.wraps, officer) == b"old file"
        assert open_file(stream, sealer.wraps, officer, TIP_A) == b"old file"
        with pytest.raises(crypto.OpenError):
            open_file(stream, sealer.wraps, officer, TIP_A, accept_legacy=False)

    @pytest.mark.parametrize("data", [b"", b"whst", b"whst\x02\x01\x01", b"whst\x01\x02\x01", b"\x00" * 10, None])
    def test_legacy_flag_is_false_for_anything_else(self, data):
        assert not crypto.is_legacy(data)

    def test_rebind_envelope_makes_a_bound_version_2_item(self, officer, recovery, both):
        old = crypto.seal(b"old tip", both)
        new = crypto.rebind_envelope(old, officer, both, TIP_A)
        assert not crypto.is_legacy(new)
        assert crypto.open_sealed(new, recovery, TIP_A) == b"old tip"
        with pytest.raises(crypto.OpenError):
            crypto.open_sealed(new, recovery, crypto.Context(CASE_B, "tip"))
        with pytest.raises(crypto.OpenError):
            crypto.rebind_envelope(new, officer, both, TIP_A)  # only version 1 is rebound

    def test_rebind_envelope_can_sign_what_it_binds(self, officer, recovery, both):
        context = crypto.Context(CASE_A, "message/1/officer")
        new = crypto.rebind_envelope(crypto.seal(b"old message", both), officer, both, context, signing_key=officer.signing_key)
        signed = crypto.open_signed(new, recovery, context, [officer.signing_key.verify_key()])
        assert signed.plaintext == b"old message"

    @pytest.mark.parametrize("size", [0, 5, CHUNK, 2 * CHUNK + 9])
    def test_rebind_file_stream_streams_version_1_into_version_2(self, officer, recovery, both, size):
        sink = io.BytesIO()
        sealer = crypto.FileSealer(sink, both)
        sealer.write(pattern(size))
        sealer.close()
        context = crypto.Context(CASE_A, "file/" + "aa" * 16 + "/data")
        out = io.BytesIO()
        wraps = crypto.rebind_file_stream(io.BytesIO(sink.getvalue()), out, sealer.wraps, officer, both, context)
        assert out.getvalue()[:7] == HEADER_FILE and len(out.getvalue()) == len(sink.getvalue())
        assert open_file(out.getvalue(), wraps, recovery, context) == pattern(size)
        with pytest.raises(crypto.OpenError):
            open_file(out.getvalue(), wraps, recovery, crypto.Context(CASE_B, context.slot))

    def test_rebind_file_stream_refuses_damaged_or_version_2_input(self, officer, both):
        sink = io.BytesIO()
        sealer = crypto.FileSealer(sink, both)
        sealer.write(pattern(2 * CHUNK))
        sealer.close()
        truncated = sink.getvalue()[: 7 + crypto.SEALED_CHUNK_SIZE]
        with pytest.raises(crypto.OpenError):
            crypto.rebind_file_stream(io.BytesIO(truncated), io.BytesIO(), sealer.wraps, officer, both, TIP_A)
        stream, wraps = seal_file(b"new", both, TIP_A)
        with pytest.raises(crypto.OpenError):
            crypto.rebind_file_stream(io.BytesIO(stream), io.BytesIO(), wraps, officer, both, TIP_A)


def test_single_recipient_wrap_blocks_open_in_their_context_whatever_the_key_id():
    """One recipient, and a recipient whose key id starts with a zero byte (1 key in 256)."""
    keys = [crypto.PrivateKey.generate()]
    while keys[-1].key_id[0] != 0:
        keys.append(crypto.PrivateKey.generate())
    ctx = crypto.Context(CASE_A, "file/1")
    for key in (keys[0], keys[-1]):
        data_key = bytes(range(32))
        block = crypto.wrap_data_key(data_key, [key.public_key()], crypto.KIND_FILE, ctx)
        assert crypto.recipient_ids(block) == [key.key_id]
        assert crypto.unwrap_data_key(block, key, crypto.KIND_FILE, ctx) == data_key


@pytest.mark.parametrize("block", [b"", b"\x00", b"\x00" * 33, b"\x01"])
def test_empty_or_recipientless_wrap_blocks_give_open_error(block):
    key = crypto.PrivateKey.generate()
    with pytest.raises(crypto.OpenError):
        crypto.unwrap_data_key(block, key, crypto.KIND_FILE, crypto.Context(CASE_A, "file/1"))
    with pytest.raises(crypto.OpenError):
        crypto.recipient_ids(block)
