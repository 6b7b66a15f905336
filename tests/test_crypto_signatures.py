"""Signatures of `whistle.crypto` (docs/crypto.md, "signatures", "certificates", "signed
items"): hybrid Ed25519 + ML-DSA-65 keys derived from recipient keys, certificates by the
recovery key, and officer-signed items. Vectors are checked against the spec with the
primitives themselves; every forgery or replay ends in `BadSignature`."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from whistle import crypto

from .crypto_support import fixed_key, flipped, lp, officer, recovery, vector  # noqa: F401 (fixtures)

SIG = crypto.SIGNATURE_LEN


@pytest.fixture(scope="module")
def anchor(recovery) -> crypto.VerifyKey:
    return recovery.signing_key.verify_key()


REPORTER_PUBLIC = fixed_key("reporter").public_key().to_bytes()
CASE_A = crypto.case_binding(b"case-a", REPORTER_PUBLIC, "web", "2026-11-25")
CASE_B = crypto.case_binding(b"case-b", REPORTER_PUBLIC, "web", "2026-11-25")
SLOT_X = crypto.Context(CASE_A, "message/3/officer")


# --------------------------------------------------------------------------- vectors


class TestSignatureVectors:
    @pytest.mark.parametrize("name", ["officer", "recovery", "reporter"])
    def test_signature_vector_signing_key_derives_from_the_private_key(self, name):
        doc = vector("signatures")
        k = doc["keys"][name]
        key = fixed_key(name)
        seed = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=b"whistle v2 signing key").derive(key.unsafe_to_bytes())
        assert seed.hex() == k["signing_seed"]
        ed_public = ed25519.Ed25519PrivateKey.from_private_bytes(seed[:32]).public_key().public_bytes_raw()
        ml_public = mldsa.MLDSA65PrivateKey.from_seed_bytes(seed[32:]).public_key().public_bytes_raw()
        assert (ed_public.hex(), ml_public.hex()) == (k["ed25519_public"], k["mldsa_public"])
        verify = key.signing_key.verify_key()
        assert verify.to_bytes() == ed_public + ml_public
        assert hashlib.sha256(b"whistle v2 verify key id" + ed_public + ml_public).hexdigest()[:32] == k["verify_key_id"]
        assert verify.key_id.hex() == k["verify_key_id"]

    def test_signature_vector_matches_the_spec(self):
        doc = vector("signatures")
        v, k = doc["signature"], doc["keys"]["officer"]
        label, message = bytes.fromhex(v["label"]), bytes.fromhex(v["message"])
        tbs = lp(b"whistle v2 signature", bytes.fromhex(k["verify_key_id"]), label, message)
        assert tbs.hex() == v["to_be_signed"]
        signature = bytes.fromhex(v["signature"])
        assert len(signature) == 64 + 3309
        seed = bytes.fromhex(k["signing_seed"])
        # Ed25519 is deterministic: the encrypt direction, byte for byte.
        assert ed25519.Ed25519PrivateKey.from_private_bytes(seed[:32]).sign(tbs) == signature[:64]
        assert fixed_key("officer").signing_key.sign(message, label=label)[:64] == signature[:64]
        # ML-DSA-65 signing is randomised: the verify direction, with the label as its context.
        mldsa.MLDSA65PublicKey.from_public_bytes(bytes.fromhex(k["mldsa_public"])).verify(signature[64:], tbs, label)
        verify = crypto.VerifyKey.from_bytes(bytes.fromhex(k["ed25519_public"] + k["mldsa_public"]))
        verify.verify(signature, message, label=label)

    def test_signature_vector_signed_item_binds_the_context(self):
        doc = vector("signatures")
        v, k = doc["signed_item"], doc["keys"]["officer"]
        context = crypto.Context(bytes.fromhex(v["context"]["case"]), v["context"]["slot"])
        assert context.digest.hex() == v["context"]["digest"]
        payload, signature = bytes.fromhex(v["payload"]), bytes.fromhex(v["signature"])
        tbs = lp(b"whistle v2 signature", bytes.fromhex(k["verify_key_id"]), b"whistle v2 signed item", context.digest + payload)
        assert tbs.hex() == v["to_be_signed"]
        assert ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(k["signing_seed"])[:32]).sign(tbs) == signature[:64]
        verify = fixed_key("officer").signing_key.verify_key()
        crypto.check_signed(verify, context, payload, signature)
        with pytest.raises(crypto.BadSignature):
            crypto.check_signed(verify, crypto.Context(context.case, "message/2/officer"), payload, signature)


class TestCertificateVector:
    def test_certificate_vector_body_is_exact_and_checks_under_the_anchor(self, officer, recovery):
        v = vector("certificate")
        anchor = crypto.VerifyKey.from_bytes(bytes.fromhex(v["anchor"]))
        assert anchor == recovery.signing_key.verify_key()
        subject_public = bytes.fromhex(v["subject"]["public_key"])
        subject_verify = bytes.fromhex(v["subject"]["verify_key"])
        body = lp(
            b"whistle v2 certificate",
            anchor.key_id,
            subject_public,
            subject_verify,
            v["role"].encode(),
            v["label"].encode(),
            v["issued_on"].encode(),
        )
        assert body.hex() == v["body"]
        certificate = bytes.fromhex(v["certificate"])
        assert certificate[:-SIG] == body
        made = crypto.certify(
            recovery.signing_key, officer.public_key(), officer.signing_key.verify_key(), v["role"], v["label"], v["issued_on"]
        )
        assert made[: -SIG + 64] == certificate[: -SIG + 64]  # body and the deterministic Ed25519 half
        certified = crypto.check_certificate(anchor, certificate)
        assert certified == crypto.Certified(
            crypto.PublicKey.from_bytes(subject_public), crypto.VerifyKey.from_bytes(subject_verify), "officer", "officer-1", "2026-11-25"
        )


# --------------------------------------------------------------------------- signatures


class TestSignature:
    def test_signature_round_trip_and_lengths(self, officer):
        key = officer.signing_key
        signature = key.sign(b"hello", label=b"test")
        assert len(signature) == SIG and len(key.verify_key().to_bytes()) == crypto.VERIFY_KEY_LEN
        key.verify_key().verify(signature, b"hello", label=b"test")
        assert officer.signing_key is key  # derived once per key object
        assert crypto.PrivateKey.from_bytes(officer.unsafe_to_bytes()).signing_key.verify_key() == key.verify_key()
        assert "secret" in repr(key)

    def test_signature_keys_of_different_private_keys_differ(self, officer, recovery):
        assert officer.signing_key.verify_key() != recovery.signing_key.verify_key()
        assert officer.signing_key.verify_key().key_id != recovery.signing_key.verify_key().key_id

    def test_signature_other_message_label_or_key_is_bad(self, officer, recovery):
        signature = officer.signing_key.sign(b"hello", label=b"test")
        verify = officer.signing_key.verify_key()
        for message, label, key in (
            (b"hellO", b"test", verify),
            (b"hello", b"tesT", verify),
            (b"hello", b"test", recovery.signing_key.verify_key()),
        ):
            with pytest.raises(crypto.BadSignature):
                key.verify(signature, message, label=label)

    def test_signature_both_halves_are_required(self, officer, recovery):
        """A hybrid is as strong as its stronger half only if neither half alone passes."""
        signature = officer.signing_key.sign(b"hello", label=b"test")
        other = recovery.signing_key.sign(b"hello", label=b"test")
        verify = officer.signing_key.verify_key()
        for mixed in (signature[:64] + other[64:], other[:64] + signature[64:], bytes(64) + signature[64:], signature[:64] + bytes(3309)):
            with pytest.raises(crypto.BadSignature):
                verify.verify(mixed, b"hello", label=b"test")

    def test_signature_flip_any_byte_is_bad(self, officer):
        signature = officer.signing_key.sign(b"hello", label=b"test")
        verify = officer.signing_key.verify_key()
        for i in list(range(0, 64, 3)) + list(range(64, SIG, 97)) + [SIG - 1]:
            with pytest.raises(crypto.BadSignature):
                verify.verify(flipped(signature, i), b"hello", label=b"test")

    @pytest.mark.parametrize("cut", [0, 1, 63, 64, 65, SIG - 1])
    def test_signature_any_length_problem_is_bad(self, officer, cut):
        signature = officer.signing_key.sign(b"hello", label=b"test")
        verify = officer.signing_key.verify_key()
        for bad in (signature[:cut], signature + b"\x00", None, "text"):
            with pytest.raises(crypto.BadSignature):
                verify.verify(bad, b"hello", label=b"test")
        for label in (b"", b"x" * 256, "test"):
            with pytest.raises(crypto.BadSignature):
                verify.verify(signature, b"hello", label=label)

    @pytest.mark.parametrize("label", [b"", b"x" * 256, "text"])
    def test_signature_bad_label_is_refused_when_signing(self, officer, label):
        with pytest.raises(ValueError):
            officer.signing_key.sign(b"hello", label=label)

    def test_signature_labels_of_1_to_255_bytes_sign_and_verify(self, officer):
        for label in (b"x", b"L" * 255):
            signature = officer.signing_key.sign(b"hello", label=label)
            assert officer.signing_key.verify_key().verify(signature, b"hello", label=label) is None

    def test_signature_key_part_lengths_are_checked(self):
        with pytest.raises(ValueError):
            crypto.VerifyKey(bytes(31), bytes(1952))
        with pytest.raises(ValueError):
            crypto.VerifyKey(bytes(32), bytes(1951))
        for raw in (bytes(crypto.VERIFY_KEY_LEN - 1), bytes(crypto.VERIFY_KEY_LEN + 1)):
            with pytest.raises(ValueError):
                crypto.VerifyKey.from_bytes(raw)
        for seed in (bytes(63), bytes(65)):
            with pytest.raises(ValueError):
                crypto.SigningKey.from_seed(seed)

    def test_signature_garbage_verify_key_is_bad_not_an_error(self, officer):
        signature = officer.signing_key.sign(b"hello", label=b"test")
        for key in (crypto.VerifyKey(b"\xff" * 32, bytes(1952)), crypto.VerifyKey(bytes(32), b"\xff" * 1952)):
            with pytest.raises(crypto.BadSignature):
                key.verify(signature, b"hello", label=b"test")

    def test_bad_signature_says_nothing(self):
        assert str(crypto.BadSignature()) == "bad signature"

    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(message=st.binary(max_size=2048), label=st.binary(min_size=1, max_size=255), other=st.binary(max_size=64))
    def test_signature_round_trip_property(self, officer, message, label, other):
        signature = officer.signing_key.sign(message, label=label)
        officer.signing_key.verify_key().verify(signature, message, label=label)
        if other != message:
            with pytest.raises(crypto.BadSignature):
                officer.signing_key.verify_key().verify(signature, other, label=label)


# --------------------------------------------------------------------------- certificates


def certificate_for(issuer: crypto.PrivateKey, subject: crypto.PrivateKey, role="officer", label="officer-2", on="2026-11-25") -> bytes:
    return crypto.certify(issuer.signing_key, subject.public_key(), subject.signing_key.verify_key(), role, label, on)


class TestCertificate:
    def test_certificate_round_trip(self, officer, recovery, anchor):
        certified = crypto.check_certificate(anchor, certificate_for(recovery, officer, label="เจ้าหน้าที่ 2"))
        assert certified.public_key == officer.public_key()
        assert certified.verify_key == officer.signing_key.verify_key()
        assert (certified.role, certified.label, certified.issued_on) == ("officer", "เจ้าหน้าที่ 2", "2026-11-25")

    def test_certificate_longest_label_and_role_are_accepted(self, officer, recovery, anchor):
        label = "ก" * 66 + "xx"  # 200 bytes of UTF-8
        certified = crypto.check_certificate(anchor, certificate_for(recovery, officer, "r" * 32, label, "2026-11-25"))
        assert (certified.role, certified.label) == ("r" * 32, label)
        for role, label in (("r" * 33, "x"), ("officer", label + "x")):
            with pytest.raises(ValueError):
                certificate_for(recovery, officer, role, label, "2026-11-25")

    def test_certificate_signed_by_a_non_anchor_key_is_bad(self, officer, anchor):
        """A database writer makes their own key, certifies it with itself or another
        key of theirs, and stores the certificate: it does not check under the anchor."""
        forger = crypto.PrivateKey.generate()
        for issuer in (forger, officer):
            with pytest.raises(crypto.BadSignature):
                crypto.check_certificate(anchor, certificate_for(issuer, forger))

    def test_certificate_with_the_anchors_key_id_but_another_signature_is_bad(self, recovery, anchor):
        forger = crypto.PrivateKey.generate()
        real = certificate_for(recovery, recovery)
        forged = certificate_for(forger, forger)
        # The forger's certificate relabelled to name the anchor as issuer: the signature no longer fits.
        body_start = 4 + len(b"whistle v2 certificate") + 4
        relabelled = forged[:body_start] + anchor.key_id + forged[body_start + 16 :]
        with pytest.raises(crypto.BadSignature):
            crypto.check_certificate(anchor, relabelled)
        # The anchor's signature on one certificate grafted onto a changed body.
        with pytest.raises(crypto.BadSignature):
            crypto.check_certificate(anchor, real[:-SIG].replace(b"officer-2", b"officer-9") + real[-SIG:])

    def test_certificate_flip_any_byte_is_bad(self, officer, recovery, anchor):
        certificate = certificate_for(recovery, officer)
        positions = list(range(0, len(certificate) - SIG, 37)) + list(range(len(certificate) - SIG, len(certificate), 211))
        for i in positions + [len(certificate) - 1]:
            with pytest.raises(crypto.BadSignature):
                crypto.check_certificate(anchor, flipped(certificate, i))

    def test_certificate_truncated_or_extended_is_bad(self, officer, recovery, anchor):
        certificate = certificate_for(recovery, officer)
        for bad in (b"", certificate[:SIG], certificate[: SIG + 1], certificate[:-1], certificate + b"\x00", b"\x00" + certificate, None):
            with pytest.raises(crypto.BadSignature):
                crypto.check_certificate(anchor, bad)

    def test_certificate_signed_but_malformed_body_is_bad(self, recovery, anchor):
        """Even under the anchor's own signature, a body that is not a canonical certificate is refused."""
        key = recovery.signing_key
        good = [b"whistle v2 certificate", anchor.key_id, recovery.public_key().to_bytes(), anchor.to_bytes(), b"officer", b"x", b"2026-11-25"]
        for fields in (
            good[:6],
            [*good, b"extra"],
            [b"whistle v1 certificate", *good[1:]],
            [good[0], bytes(16), *good[2:]],
            [*good[:2], good[2][:-1], *good[3:]],
            [*good[:3], good[3][:-1], *good[4:]],
            [*good[:4], b"off icer", *good[5:]],
            [*good[:5], b"\xff\xfe", good[6]],
            [*good[:5], b"a\nb", good[6]],
            [*good[:6], b"2026-13-01"],
        ):
            body = crypto._lp(*fields)
            with pytest.raises(crypto.BadSignature):
                crypto.check_certificate(anchor, body + key.sign(body, label=crypto.CERTIFICATE_LABEL))
        body = crypto._lp(*good)
        crypto.check_certificate(anchor, body + key.sign(body, label=crypto.CERTIFICATE_LABEL))

    def test_certificate_anchor_signature_for_another_purpose_is_bad(self, recovery, anchor):
        """A signature the anchor made under another label (a signed item) is no certificate."""
        body = crypto.certify(recovery.signing_key, recovery.public_key(), anchor, "officer", "x", "2026-11-25")[:-SIG]
        with pytest.raises(crypto.BadSignature):
            crypto.check_certificate(anchor, body + recovery.signing_key.sign(body, label=crypto.SIGNED_ITEM_LABEL))

    @pytest.mark.parametrize(
        "role, label, on",
        [("", "x", "2026-11-25"), ("off icer", "x", "2026-11-25"), ("officer", "", "2026-11-25"), ("officer", "a\nb", "2026-11-25"),
         ("officer", "x" * 201, "2026-11-25"), ("officer", "x", "25/11/2026"), ("officer", "x", "2026-02-30")],
    )
    def test_certificate_bad_fields_are_refused_when_issuing(self, officer, recovery, role, label, on):
        with pytest.raises(ValueError):
            certificate_for(recovery, officer, role, label, on)


# --------------------------------------------------------------------------- signed items


class TestSignedItems:
    def test_signed_for_case_a_replayed_to_case_b_is_bad(self, officer):
        signature = crypto.sign_for(officer.signing_key, SLOT_X, b"come to room 204")
        verify = officer.signing_key.verify_key()
        crypto.check_signed(verify, SLOT_X, b"come to room 204", signature)
        with pytest.raises(crypto.BadSignature):
            crypto.check_signed(verify, crypto.Context(CASE_B, SLOT_X.slot), b"come to room 204", signature)

    def test_signed_for_slot_x_replayed_to_slot_y_is_bad(self, officer):
        signature = crypto.sign_for(officer.signing_key, SLOT_X, b"come to room 204")
        for slot in ("message/4/officer", "message/3/reporter", "note/3"):
            with pytest.raises(crypto.BadSignature):
                crypto.check_signed(officer.signing_key.verify_key(), crypto.Context(CASE_A, slot), b"come to room 204", signature)

    def test_signed_item_other_payload_is_bad(self, officer):
        signature = crypto.sign_for(officer.signing_key, SLOT_X, b"come on Monday")
        with pytest.raises(crypto.BadSignature):
            crypto.check_signed(officer.signing_key.verify_key(), SLOT_X, b"come on Tuesday", signature)
        with pytest.raises(crypto.BadSignature):
            crypto.check_signed(officer.signing_key.verify_key(), SLOT_X.digest, b"come on Monday", signature)

    def test_signed_item_plain_signature_under_the_same_key_is_not_a_signed_item(self, officer):
        """Labels separate uses: a signature on the same bytes for another label does not pass."""
        signature = officer.signing_key.sign(SLOT_X.digest + b"hello", label=b"whistle v2 something else")
        with pytest.raises(crypto.BadSignature):
            crypto.check_signed(officer.signing_key.verify_key(), SLOT_X, b"hello", signature)

    def test_signed_envelope_round_trip_through_the_certificate_chain(self, officer, recovery, anchor):
        reporter = fixed_key("reporter")
        recipients = [officer.public_key(), recovery.public_key(), reporter.public_key()]
        env = crypto.seal_signed(b"Please send the purchase orders.", recipients, SLOT_X, officer.signing_key)
        signers = [crypto.check_certificate(anchor, certificate_for(recovery, officer)).verify_key]
        opened = crypto.open_signed(env, reporter, SLOT_X, signers)
        assert opened.plaintext == b"Please send the purchase orders." and opened.signer == signers[0]
        assert b"Please" not in env  # the signature and plaintext are inside the envelope

    def test_signed_envelope_is_checked_against_its_own_signer_among_several(self, officer, recovery):
        reporter = fixed_key("reporter")
        signers = [recovery.signing_key.verify_key(), officer.signing_key.verify_key()]
        for key in (officer, recovery):
            env = crypto.seal_signed(b"hello", [reporter.public_key()], SLOT_X, key.signing_key)
            assert crypto.open_signed(env, reporter, SLOT_X, signers).signer == key.signing_key.verify_key()
        with pytest.raises(crypto.BadSignature):
            crypto.open_signed(env, reporter, SLOT_X, signers[1:])  # the recovery key's signature, not among them

    def test_signed_envelope_from_a_database_writer_is_bad(self, officer, recovery, anchor):
        """The lure: "come to room 204 with your ID card", sealed to the reporter's stored
        public key in an officer slot. Unsigned, or signed by an uncertified key (with or
        without a self-made certificate), it is refused."""
        reporter = fixed_key("reporter")
        recipients = [officer.public_key(), recovery.public_key(), reporter.public_key()]
        lure = "มาที่ห้อง 204 พร้อมบัตรประชาชน".encode()
        signers = [crypto.check_certificate(anchor, certificate_for(recovery, officer)).verify_key]
        forger = crypto.PrivateKey.generate()
        with pytest.raises(crypto.BadSignature):
            crypto.check_certificate(anchor, certificate_for(forger, forger))
        unsigned = crypto.seal(lure, recipients, SLOT_X)
        padded = crypto.seal(bytes(16 + SIG) + lure, recipients, SLOT_X)
        by_forger = crypto.seal_signed(lure, recipients, SLOT_X, forger.signing_key)
        claims_officer = crypto.seal(officer.signing_key.verify_key().key_id + crypto.sign_for(forger.signing_key, SLOT_X, lure) + lure, recipients, SLOT_X)
        for env in (unsigned, padded, by_forger, claims_officer):
            with pytest.raises(crypto.BadSignature):
                crypto.open_signed(env, reporter, SLOT_X, signers)

    def test_signed_envelope_replayed_elsewhere_is_refused(self, officer, recovery):
        """Moved whole, it does not open; re-sealed by a recipient (the reporter can read it)
        for another case or slot, its signature does not fit."""
        reporter = fixed_key("reporter")
        recipients = [officer.public_key(), reporter.public_key()]
        signers = [officer.signing_key.verify_key()]
        env = crypto.seal_signed(b"the meeting is at 10", recipients, SLOT_X, officer.signing_key)
        other_case, other_slot = crypto.Context(CASE_B, SLOT_X.slot), crypto.Context(CASE_A, "message/9/officer")
        for context in (other_case, other_slot):
            with pytest.raises(crypto.OpenError):
                crypto.open_signed(env, reporter, context, signers)
            inner = crypto.open_sealed(env, reporter, SLOT_X)
            with pytest.raises(crypto.BadSignature):
                crypto.open_signed(crypto.seal(inner, recipients, context), reporter, context, signers)

    def test_signed_envelope_legacy_never_passes(self, officer):
        reporter = fixed_key("reporter")
        signature = crypto.sign_for(officer.signing_key, SLOT_X, b"x")
        legacy = crypto.seal(officer.signing_key.verify_key().key_id + signature + b"x", [reporter.public_key()])
        assert crypto.is_legacy(legacy)
        with pytest.raises(crypto.OpenError):
            crypto.open_signed(legacy, reporter, SLOT_X, [officer.signing_key.verify_key()])
        with pytest.raises(crypto.OpenError):
            crypto.unsafe_open_signed_unchecked(legacy, reporter, SLOT_X)

    def test_signed_envelope_with_an_empty_message_opens_checked_and_unchecked(self, officer):
        reporter = fixed_key("reporter")
        env = crypto.seal_signed(b"", [reporter.public_key()], SLOT_X, officer.signing_key)
        assert crypto.open_signed(env, reporter, SLOT_X, [officer.signing_key.verify_key()]).plaintext == b""
        assert crypto.unsafe_open_signed_unchecked(env, reporter, SLOT_X) == b""

    @pytest.mark.parametrize("inner_len", [0, 1, crypto.KEY_ID_LEN, crypto.KEY_ID_LEN + SIG - 1])
    def test_envelope_too_short_to_hold_a_signature_is_refused(self, officer, inner_len):
        reporter = fixed_key("reporter")
        env = crypto.seal(bytes(inner_len), [reporter.public_key()], SLOT_X)
        with pytest.raises(crypto.BadSignature):
            crypto.open_signed(env, reporter, SLOT_X, [officer.signing_key.verify_key()])
        with pytest.raises(crypto.OpenError):
            crypto.unsafe_open_signed_unchecked(env, reporter, SLOT_X)


class TestSignatureMemo:
    """Remembering checked signatures must never let an unchecked one through."""

    def test_memo_holds_a_hundred_thousand_entries_by_default(self):
        assert crypto.SignatureMemo()._capacity == 100_000

    CONTEXT = crypto.Context(bytes(32), "message/1/officer")

    def _signed(self, author: crypto.PrivateKey, reader: crypto.PrivateKey, text: bytes = b"Which building?") -> bytes:
        return crypto.seal_signed(text, [reader.public_key()], self.CONTEXT, author.signing_key)

    def test_memo_skips_only_the_very_same_envelope(self, officer, recovery, monkeypatch):
        memo = crypto.SignatureMemo()
        genuine = self._signed(officer, recovery)
        signer = officer.signing_key.verify_key()
        crypto.open_signed(genuine, recovery, self.CONTEXT, [signer], memo)
        checks = []
        real = crypto.check_signed
        monkeypatch.setattr(crypto, "check_signed", lambda *a: checks.append(1) or real(*a))
        crypto.open_signed(genuine, recovery, self.CONTEXT, [signer], memo)
        assert checks == []  # remembered
        forged = crypto.seal(officer.signing_key.verify_key().key_id + bytes(crypto.SIGNATURE_LEN) + b"Come to room 204",
                             [recovery.public_key()], self.CONTEXT)
        with pytest.raises(crypto.BadSignature):
            crypto.open_signed(forged, recovery, self.CONTEXT, [signer], memo)
        assert checks == [1]

    def test_memo_does_not_outlive_a_signer_leaving_the_list(self, officer, recovery):
        memo = crypto.SignatureMemo()
        genuine = self._signed(officer, recovery)
        crypto.open_signed(genuine, recovery, self.CONTEXT, [officer.signing_key.verify_key()], memo)
        with pytest.raises(crypto.BadSignature):  # revoked: no longer among the signers
            crypto.open_signed(genuine, recovery, self.CONTEXT, [], memo)

    def test_memo_is_bounded(self, officer, recovery):
        memo = crypto.SignatureMemo(capacity=2)
        signer = officer.signing_key.verify_key()
        envelopes = [self._signed(officer, recovery, bytes([i])) for i in range(3)]
        for envelope in envelopes:
            crypto.open_signed(envelope, recovery, self.CONTEXT, [signer], memo)
        assert not memo.checked(envelopes[0], self.CONTEXT, signer)
        assert memo.checked(envelopes[2], self.CONTEXT, signer)
