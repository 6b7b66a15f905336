"""Regenerate the known-answer vectors in this folder: `python tests/vectors/generate.py [v1] [v2]`.

`v1` writes the version 1 files (keys, code, envelope, file_stream, key_files,
status_view, bundle), `v2` the version 2 files (context, envelope_v2, file_stream_v2,
signatures, certificate); with no argument, both. The version 2 files use the keys of
`keys.json` and the reporter key of `code.json` as committed.

Everything that can be fixed is fixed: private keys come from fixed seed bytes, data keys
and nonces are fixed, passphrase salts are fixed. HPKE encapsulation draws its own
randomness, so the wrap blocks (and so the envelopes that contain them) change on every
run; the tests only ever read the committed files, so regenerate only when a format
changes, and say so in the commit.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from whistle import codes, crypto, keyring  # noqa: E402
from whistle.models import KeyRole  # noqa: E402

CHEAP_KDF = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


def fixed_key(name: str) -> crypto.PrivateKey:
    seed = hashlib.sha512(f"whistle test vector {name} ml-kem seed".encode()).digest()
    scalar = hashlib.sha256(f"whistle test vector {name} x25519".encode()).digest()
    return crypto.PrivateKey(seed, scalar)


def fixed_bytes(label: str, n: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{label} {counter}".encode()).digest()
        counter += 1
    return out[:n]


def pattern(n: int) -> bytes:
    """The plaintext of the larger file vectors: byte i is i mod 251."""
    return bytes(i % 251 for i in range(n))


def dump(name: str, doc: dict) -> None:
    (HERE / name).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", "utf-8")


def key_doc(key: crypto.PrivateKey) -> dict:
    public = key.public_key()
    return {
        "mlkem_seed": key.mlkem_seed.hex(),
        "x25519_private": key.x25519.hex(),
        "mlkem_public": public.mlkem.hex(),
        "x25519_public": public.x25519.hex(),
        "key_id": public.key_id.hex(),
    }


def seal_fixed(plaintext: bytes, data_key: bytes, nonce: bytes, recipients, kind=crypto.KIND_ITEM) -> dict:
    wraps = crypto.wrap_data_key(data_key, recipients, kind)
    envelope = crypto._seal_with(plaintext, data_key, nonce, wraps)
    return {
        "recipients": [r.key_id.hex() for r in recipients],
        "plaintext": plaintext.hex(),
        "data_key": data_key.hex(),
        "nonce": nonce.hex(),
        "wraps": wraps.hex(),
        "envelope": envelope.hex(),
    }


#: The secret key of the vectors that need a server key (status_view.json, code.json).
SECRET_KEY = "test-vector-secret-key-0123456789abcdef"


def with_nonce(nonce: bytes, seal):
    """Run `seal()` with `crypto`'s random bytes fixed to `nonce`."""
    real_urandom = crypto.os.urandom
    crypto.os.urandom = lambda n: nonce
    try:
        return seal()
    finally:
        crypto.os.urandom = real_urandom


def code_layout_2(master: bytes, reporter: crypto.PrivateKey) -> dict:
    """code.json's layout-2 part: the tag under a fixed server key, and the reporter key
    kept across a move to a new cost, sealed under a key from the same master."""
    server_key = crypto.hkdf(SECRET_KEY.encode(), b"whistle v1 server key")
    lookup, secret = "482190", "31415926535897932384"
    tag = codes.code_tag(server_key, lookup, secret)
    code = codes.TrackingCode(lookup, secret, tag)
    seal_key = crypto.hkdf(master, b"whistle v1 reporter key seal")
    nonce = fixed_bytes("whistle test vector sealed reporter key nonce", crypto.NONCE_LEN)
    sealed = with_nonce(nonce, lambda: codes.seal_reporter_key(seal_key, reporter))
    return {
        "secret_key": SECRET_KEY,
        "server_key": server_key.hex(),
        "lookup": lookup,
        "secret": secret,
        "tag_label": b"code tag".hex(),
        "tag": tag,
        "digits": code.digits,
        "display": code.display(),
        "seal_key_info": b"whistle v1 reporter key seal".hex(),
        "seal_key": seal_key.hex(),
        "sealed_reporter_key_aad": b"whistle v1 sealed reporter key".hex(),
        "sealed_reporter_key": sealed.hex(),
    }


def file_streams(make_sealer) -> tuple[dict, dict]:
    """Small streams in full and larger ones by digest, tags and tail, sealed by `make_sealer(sink)`."""
    small = {}
    for name, plaintext in (("empty", b""), ("one", b"\x00"), ("short", b"%PDF-1.4 evidence")):
        sink = io.BytesIO()
        sealer = make_sealer(sink)
        sealer.write(plaintext)
        sealer.close()
        small[name] = {"plaintext": plaintext.hex(), "sealed": sink.getvalue().hex()}
    large = {}
    for name, size in (("chunk", crypto.CHUNK_SIZE), ("chunk_plus_one", crypto.CHUNK_SIZE + 1), ("three_chunks", 2 * crypto.CHUNK_SIZE + 100)):
        sink = io.BytesIO()
        sealer = make_sealer(sink)
        sealer.write(pattern(size))
        sealer.close()
        sealed = sink.getvalue()
        tags, offset = [], crypto.HEADER_LEN
        while offset < len(sealed):
            chunk = sealed[offset : offset + crypto.SEALED_CHUNK_SIZE]
            tags.append(chunk[-crypto.TAG_LEN :].hex())
            offset += len(chunk)
        large[name] = {
            "plaintext_size": size,
            "sealed_size": len(sealed),
            "sealed_sha256": hashlib.sha256(sealed).hexdigest(),
            "tags": tags,
            "sealed_tail": sealed[-64:].hex(),
        }
    return small, large


def main(argv: list[str]) -> None:
    which = set(argv) or {"v1", "v2"}
    if not which <= {"v1", "v2"}:
        raise SystemExit("usage: generate.py [v1] [v2]")
    if "v1" in which:
        version_1()
    if "v2" in which:
        version_2()


def version_1() -> None:
    officer, recovery, outsider = fixed_key("officer"), fixed_key("recovery"), fixed_key("outsider")
    dump(
        "keys.json",
        {
            "description": "Fixed recipient keys: private parts from fixed seeds, and the public parts and key ids they must give.",
            "key_id_label": b"whistle v1 key id".hex(),
            "keys": {"officer": key_doc(officer), "recovery": key_doc(recovery), "outsider": key_doc(outsider)},
        },
    )

    # Tracking code: fixed digits and salt, cheap cost.
    lookup, secret = "4821907", "31415926535897932384"
    code = codes.TrackingCode(lookup, secret)
    salt = fixed_bytes("whistle test vector code salt", codes.SALT_LEN)
    cost = codes.CodeCost(time_cost=1, memory_cost=256, parallelism=1)
    master = crypto.argon2id(secret.encode(), salt, time_cost=1, memory_cost=256, parallelism=1)
    keys = codes.derive(secret, salt, cost)
    reporter = keys.reporter_key
    dump(
        "code.json",
        {
            "description": "Tracking-code derivation: Argon2id(secret digits, salt) -> HKDF-SHA256 -> verifier and reporter key.",
            "lookup": lookup,
            "secret": secret,
            "digits": code.digits,
            "display": code.display(),
            "salt": salt.hex(),
            "argon2id": {"time_cost": 1, "memory_cost": 256, "parallelism": 1, "length": 32},
            "master": master.hex(),
            "verifier_info": b"whistle v1 code verifier".hex(),
            "verifier": keys.verifier.hex(),
            "reporter_key_info": b"whistle v1 reporter key".hex(),
            "reporter_mlkem_seed": reporter.mlkem_seed.hex(),
            "reporter_x25519_private": reporter.x25519.hex(),
            "reporter_x25519_public": reporter.public_key().x25519.hex(),
            "reporter_key_id": reporter.key_id.hex(),
            "damm": [
                {"digits": d, "check": codes.damm_digit(d)}
                for d in ("", "0", "572", "123456789", "482190731415926535897932384", "000000000000000000000000000")
            ],
            "layout_2": code_layout_2(master, reporter),
        },
    )

    data_key = fixed_bytes("whistle test vector data key", 32)
    nonce = fixed_bytes("whistle test vector nonce", crypto.NONCE_LEN)
    tip = {
        "what": "ปลัดเทศบาลแบ่งสัญญาก่อสร้างถนนเพื่อเลี่ยงการประกวดราคา",
        "people": "Head of procurement",
        "when": "March 2569",
        "where": "Town hall",
        "how_known": "I saw the documents",
        "evidence": "",
    }
    tip_bytes = json.dumps(tip, ensure_ascii=False).encode("utf-8")
    meta_bytes = json.dumps({"name": "สัญญา 12-2569.pdf", "type": "application/pdf", "size": 17}).encode()
    dump(
        "envelope.json",
        {
            "description": "Envelopes v1. Encrypt direction for the content: fixed data key, nonce and wraps give exactly `envelope`. "
            "Decrypt direction for the wraps: each listed recipient's fixed key opens `envelope` to `plaintext`.",
            "header": crypto._fixed_header(crypto.KIND_ITEM).hex(),
            "wrap_info_prefix": b"whistle v1 wrap".hex(),
            "vectors": {
                "empty": seal_fixed(b"", data_key, nonce, [officer.public_key()]),
                "tip": seal_fixed(tip_bytes, data_key, nonce, [officer.public_key(), recovery.public_key()]),
                "message": seal_fixed(
                    "Please send the purchase orders.".encode(),
                    fixed_bytes("whistle test vector message key", 32),
                    fixed_bytes("whistle test vector message nonce", 12),
                    [officer.public_key(), recovery.public_key(), reporter.public_key()],
                ),
                "file_meta": seal_fixed(
                    meta_bytes,
                    fixed_bytes("whistle test vector meta key", 32),
                    fixed_bytes("whistle test vector meta nonce", 12),
                    [officer.public_key(), recovery.public_key()],
                ),
            },
        },
    )

    file_key = fixed_bytes("whistle test vector file key", 32)
    small, large = file_streams(lambda sink: crypto.FileSealer(sink, [], data_key=file_key))
    file_wraps = crypto.wrap_data_key(file_key, [officer.public_key(), recovery.public_key()], crypto.KIND_FILE)
    dump(
        "file_stream.json",
        {
            "description": "File streams v1 under a fixed data key (encrypt direction), and a wrap block of kind file "
            "that the officer and recovery keys open to that data key (decrypt direction). Large plaintexts are "
            "`pattern`: byte i is i mod 251.",
            "header": crypto._fixed_header(crypto.KIND_FILE).hex(),
            "chunk_size": crypto.CHUNK_SIZE,
            "data_key": file_key.hex(),
            "wraps": file_wraps.hex(),
            "small": small,
            "large": large,
        },
    )

    # Private and public key files, with a fixed salt and nonce (os.urandom replaced).
    passphrase = "correct horse battery staple"
    fixed = iter([fixed_bytes("whistle test vector key file salt", 16), fixed_bytes("whistle test vector key file nonce", 12)])
    real_urandom = keyring.os.urandom
    keyring.os.urandom = lambda n: next(fixed)
    try:
        private_doc = keyring.private_key_document(officer, passphrase, KeyRole.OFFICER, "officer-1", CHEAP_KDF)
    finally:
        keyring.os.urandom = real_urandom
    public_doc = keyring.public_key_document(keyring.key_info(private_doc))
    wrapping_key = crypto.argon2id(passphrase.encode(), base64.b64decode(private_doc["kdf"]["salt"]), **CHEAP_KDF)
    dump(
        "key_files.json",
        {
            "description": "Key files v1: the officer key sealed under `passphrase` with a fixed salt and nonce and a cheap KDF.",
            "passphrase": passphrase,
            "wrapping_key": wrapping_key.hex(),
            "associated_data": keyring._canonical({k: v for k, v in private_doc.items() if k != "sealed"}).decode(),
            "private_key_file": private_doc,
            "public_key_file": public_doc,
        },
    )

    # The status-view cookie: fixed secret key, payload, nonce.
    secret_key = SECRET_KEY
    server_key = crypto.hkdf(secret_key.encode(), b"whistle v1 server key")
    view_key = crypto.hkdf(server_key, b"whistle v1 status view key")
    payload = json.dumps(
        {
            "id": 7,
            "key": base64.b64encode(reporter.unsafe_to_bytes()).decode(),
            "at": 1795000000,
            "view": fixed_bytes("whistle test vector view id", 16).hex(),
        }
    ).encode()
    view_nonce = fixed_bytes("whistle test vector view nonce", 12)
    sealed_view = with_nonce(view_nonce, lambda: crypto.seal_with_key(view_key, payload, b"whistle v1 status view"))
    dump(
        "status_view.json",
        {
            "description": "The reporter's open status view: the session value `case`, sealed under a key derived from the secret key.",
            "secret_key": secret_key,
            "server_key": server_key.hex(),
            "view_key": view_key.hex(),
            "associated_data": b"whistle v1 status view".hex(),
            "payload": payload.decode(),
            "nonce": view_nonce.hex(),
            "session_value": base64.b64encode(sealed_view).decode(),
        },
    )

    # A case bundle made of the envelope and file vectors above.
    env = json.loads((HERE / "envelope.json").read_text("utf-8"))["vectors"]
    short = bytes.fromhex(small["short"]["sealed"])
    case_json = {
        "format": "whistle-case-bundle",
        "version": 1,
        "case": 7,
        "category": "procurement",
        "channel": "web",
        "status": "received",
        "received_on": "2026-11-25",
        "content": base64.b64encode(bytes.fromhex(env["tip"]["envelope"])).decode(),
        "files": [
            {"path": "files/0", "wraps": base64.b64encode(file_wraps).decode(), "meta": base64.b64encode(bytes.fromhex(env["file_meta"]["envelope"])).decode()}
        ],
        "messages": [
            {"author": "officer", "on": "2026-11-26", "body": base64.b64encode(bytes.fromhex(env["message"]["envelope"])).decode(), "files": []}
        ],
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("case.json", json.dumps(case_json, indent=1))
        zf.writestr("files/0", short)
    dump(
        "bundle.json",
        {
            "description": "A case bundle (zip) holding the tip, file_meta and message envelopes and the short file stream.",
            "case_json": case_json,
            "files": {"files/0": short.hex()},
            "expected": {
                "report.txt": None,
                "files": {"สัญญา 12-2569.pdf": small["short"]["plaintext"]},
                "messages.txt": None,
            },
        },
    )
    # The expected plaintext output is what open_bundle writes today, recorded once.
    import tempfile

    from whistle import bundles

    with tempfile.TemporaryDirectory() as tmp:
        bundle_path = Path(tmp) / "case.zip"
        bundle_path.write_bytes(out.getvalue())
        bundles.open_bundle(bundle_path, officer, Path(tmp) / "out")
        doc = json.loads((HERE / "bundle.json").read_text("utf-8"))
        doc["expected"]["report.txt"] = (Path(tmp) / "out" / "report.txt").read_text("utf-8")
        doc["expected"]["messages.txt"] = (Path(tmp) / "out" / "messages.txt").read_text("utf-8")
        dump("bundle.json", doc)


def context_doc(context: crypto.Context) -> dict:
    return {"case": context.case.hex(), "slot": context.slot, "digest": context.digest.hex()}


def seal_fixed_v2(plaintext: bytes, name: str, recipients, context: crypto.Context) -> dict:
    """A version 2 envelope with a fixed data key and nonce; its wraps are HPKE-random."""
    data_key = fixed_bytes(f"whistle test vector v2 {name} data key", 32)
    nonce = fixed_bytes(f"whistle test vector v2 {name} nonce", crypto.NONCE_LEN)
    wraps = crypto.wrap_data_key(data_key, recipients, crypto.KIND_ITEM, context)
    header = crypto._header(crypto.VERSION_2, crypto.KIND_ITEM)
    return {
        "recipients": [r.key_id.hex() for r in recipients],
        "context": context_doc(context),
        "plaintext": plaintext.hex(),
        "data_key": data_key.hex(),
        "content_key": crypto.hkdf(data_key, b"whistle v2 content key").hex(),
        "mac_key": crypto.hkdf(data_key, b"whistle v2 wrap mac").hex(),
        "nonce": nonce.hex(),
        "associated_data": (header + context.digest).hex(),
        "wraps": wraps.hex(),
        "mac": wraps[-crypto.MAC_LEN :].hex(),
        "envelope": crypto._seal_with(plaintext, data_key, nonce, wraps, context).hex(),
    }


def reporter_envelopes(case: bytes, staff, reporter: crypto.PrivateKey, file_id: str) -> dict:
    """Items sealed to the reporter's key as well (crypto §22): the tip, a file's metadata,
    and an addition (a reporter message holding "adds": true)."""
    with_reporter = [*staff, reporter.public_key()]
    tip = json.dumps({"what": "ปลัดเทศบาลแบ่งสัญญาก่อสร้างถนนเพื่อเลี่ยงการประกวดราคา", "evidence": "ใบสั่งซื้อ"}, ensure_ascii=False).encode()
    meta = json.dumps({"name": "ใบสั่งซื้อ.jpg", "type": "image/jpeg", "size": 17, "cleaned": "jpeg",
                       "sha256": hashlib.sha256(b"17 bytes of photo").hexdigest(), "in": "tip"}, ensure_ascii=False).encode()
    addition = json.dumps({"text": "พบใบสั่งซื้อฉบับที่สอง", "files": [], "adds": True}, ensure_ascii=False, separators=(",", ":")).encode()
    return {
        "tip_with_reporter": seal_fixed_v2(tip, "tip with reporter", with_reporter, crypto.Context(case, "tip")),
        "file_meta_with_reporter": seal_fixed_v2(meta, "file meta with reporter", with_reporter, crypto.Context(case, f"file/{file_id}/meta")),
        "addition": seal_fixed_v2(addition, "addition", with_reporter, crypto.Context(case, "message/3/reporter")),
    }


def version_2() -> None:
    officer, recovery = fixed_key("officer"), fixed_key("recovery")
    code = json.loads((HERE / "code.json").read_text("utf-8"))
    reporter = crypto.PrivateKey(bytes.fromhex(code["reporter_mlkem_seed"]), bytes.fromhex(code["reporter_x25519_private"]))
    reporter_public = reporter.public_key().to_bytes()

    uid = fixed_bytes("whistle test vector case uid", 16)
    other_uid = fixed_bytes("whistle test vector other case uid", 16)
    case = crypto.case_binding(uid, reporter_public, "web", "2026-11-25")
    file_id = fixed_bytes("whistle test vector file id", 16).hex()
    slots = ["tip", "identity", "rating", "note/1", "message/1/officer", "message/2/reporter", f"file/{file_id}/meta", f"file/{file_id}/data"]
    dump(
        "context.json",
        {
            "description": "Case bindings and context digests (version 2). `reporter_public_key` is the reporter key of "
            "code.json. Deterministic.",
            "case_label": b"whistle v2 case".hex(),
            "context_label": b"whistle v2 context".hex(),
            "reporter_public_key": reporter_public.hex(),
            "cases": [
                {"uid": u.hex(), "channel": ch, "received_on": on, "case": crypto.case_binding(u, reporter_public, ch, on).hex()}
                for u, ch, on in ((uid, "web", "2026-11-25"), (other_uid, "web", "2026-11-25"), (uid, "phone", "2026-11-25"), (uid, "web", "2026-11-26"))
            ],
            "contexts": [context_doc(crypto.Context(case, slot)) for slot in slots],
        },
    )

    staff = [officer.public_key(), recovery.public_key()]
    tip = json.dumps({"what": "ปลัดเทศบาลแบ่งสัญญาก่อสร้างถนนเพื่อเลี่ยงการประกวดราคา", "evidence": ""}, ensure_ascii=False).encode()
    meta = json.dumps({"name": "สัญญา 12-2569.pdf", "type": "application/pdf", "size": 17}).encode()
    signed_context = crypto.Context(case, "message/1/officer")
    signed_payload = "กรุณาส่งใบสั่งซื้อ (please send the purchase orders)".encode()
    signature = crypto.sign_for(officer.signing_key, signed_context, signed_payload)
    signed_inner = officer.signing_key.verify_key().key_id + signature + signed_payload
    signed = seal_fixed_v2(signed_inner, "signed message", [*staff, reporter.public_key()], signed_context)
    signed["signed_payload"] = signed_payload.hex()
    dump(
        "envelope_v2.json",
        {
            "description": "Envelopes v2. Encrypt direction for the content: fixed data key, nonce, wraps and context give "
            "exactly `envelope`; the MAC is recomputed from `mac_key`. Decrypt direction for the wraps (HPKE is "
            "randomised): each listed recipient opens `envelope` with `context` to `plaintext`. `signed_message` "
            "holds signer key id || signature || `signed_payload` (seal_signed), signed by the officer's signing key. "
            "`tip_with_reporter`, `file_meta_with_reporter` and `addition` are sealed to the reporter key of code.json as "
            "well (crypto §22); `addition` is a reporter message holding \"adds\": true.",
            "header": crypto._header(crypto.VERSION_2, crypto.KIND_ITEM).hex(),
            "wrap_info_prefix": b"whistle v2 wrap".hex(),
            "labels": {"content_key": b"whistle v2 content key".hex(), "wrap_mac": b"whistle v2 wrap mac".hex()},
            "vectors": {
                "empty": seal_fixed_v2(b"", "empty", [officer.public_key()], crypto.Context(case, "note/1")),
                "tip": seal_fixed_v2(tip, "tip", staff, crypto.Context(case, "tip")),
                "message": seal_fixed_v2(
                    "ผมจะส่งเอกสารเพิ่ม".encode(), "message", [*staff, reporter.public_key()], crypto.Context(case, "message/2/reporter")
                ),
                "file_meta": seal_fixed_v2(meta, "file meta", staff, crypto.Context(case, f"file/{file_id}/meta")),
                "signed_message": signed,
                **reporter_envelopes(case, staff, reporter, file_id),
            },
        },
    )

    file_key = fixed_bytes("whistle test vector v2 file key", 32)
    small, large = file_streams(lambda sink: crypto.FileSealer(sink, data_key=file_key))
    file_context = crypto.Context(case, f"file/{file_id}/data")
    file_wraps = crypto.wrap_data_key(file_key, staff, crypto.KIND_FILE, file_context)
    dump(
        "file_stream_v2.json",
        {
            "description": "File streams v2 under a fixed data key (encrypt direction; chunks under `content_key`), and a "
            "version 2 wrap block of kind file for `context` that the officer and recovery keys open to that data key "
            "(decrypt direction). Large plaintexts are `pattern`: byte i is i mod 251. `wraps_with_reporter`: the same data key "
            "and context, wrapped for the reporter key of code.json too (crypto §22).",
            "header": crypto._header(crypto.VERSION_2, crypto.KIND_FILE).hex(),
            "chunk_size": crypto.CHUNK_SIZE,
            "data_key": file_key.hex(),
            "content_key": crypto.hkdf(file_key, b"whistle v2 content key").hex(),
            "mac_key": crypto.hkdf(file_key, b"whistle v2 wrap mac").hex(),
            "context": context_doc(file_context),
            "wraps": file_wraps.hex(),
            "mac": file_wraps[-crypto.MAC_LEN :].hex(),
            "small": small,
            "large": large,
            "wraps_with_reporter": crypto.wrap_data_key(file_key, [*staff, reporter.public_key()], crypto.KIND_FILE, file_context).hex(),
        },
    )

    def signing_doc(key: crypto.PrivateKey) -> dict:
        verify = key.signing_key.verify_key()
        return {
            "signing_seed": crypto.hkdf(key.unsafe_to_bytes(), b"whistle v2 signing key", 64).hex(),
            "ed25519_public": verify.ed25519.hex(),
            "mldsa_public": verify.mldsa.hex(),
            "verify_key_id": verify.key_id.hex(),
        }

    label = b"whistle test vector label"
    message = "ข้อความทดสอบ".encode()
    officer_verify = officer.signing_key.verify_key()
    plain_signature = officer.signing_key.sign(message, label=label)
    item_payload = b"Please come to the town hall on Monday."
    item_context = crypto.Context(case, "message/1/officer")
    dump(
        "signatures.json",
        {
            "description": "Hybrid signatures (Ed25519 + ML-DSA-65). Signing keys derive from the private keys of keys.json "
            "(deterministic). The Ed25519 half of each signature is deterministic (both directions); ML-DSA-65 signing "
            "is randomised, so its half is checked in the verify direction only.",
            "labels": {
                "signing_key": b"whistle v2 signing key".hex(),
                "verify_key_id": b"whistle v2 verify key id".hex(),
                "signature": b"whistle v2 signature".hex(),
                "signed_item": b"whistle v2 signed item".hex(),
            },
            "keys": {"officer": signing_doc(officer), "recovery": signing_doc(recovery), "reporter": signing_doc(reporter)},
            "signature": {
                "signer": "officer",
                "label": label.hex(),
                "message": message.hex(),
                "to_be_signed": crypto._to_be_signed(officer_verify.key_id, label, message).hex(),
                "signature": plain_signature.hex(),
            },
            "signed_item": {
                "signer": "officer",
                "context": context_doc(item_context),
                "payload": item_payload.hex(),
                "to_be_signed": crypto._to_be_signed(
                    officer_verify.key_id, crypto.SIGNED_ITEM_LABEL, item_context.digest + item_payload
                ).hex(),
                "signature": crypto.sign_for(officer.signing_key, item_context, item_payload).hex(),
            },
        },
    )

    certificate = crypto.certify(
        recovery.signing_key, officer.public_key(), officer_verify, "officer", "officer-1", "2026-11-25"
    )
    dump(
        "certificate.json",
        {
            "description": "The recovery key certifies the officer key. `body` is deterministic; the certificate is body || "
            "the recovery key's hybrid signature (its Ed25519 half deterministic, its ML-DSA half checked by verifying).",
            "anchor": recovery.signing_key.verify_key().to_bytes().hex(),
            "subject": {"public_key": officer.public_key().to_bytes().hex(), "verify_key": officer_verify.to_bytes().hex()},
            "role": "officer",
            "label": "officer-1",
            "issued_on": "2026-11-25",
            "body": certificate[: -crypto.SIGNATURE_LEN].hex(),
            "certificate": certificate.hex(),
        },
    )


if __name__ == "__main__":
    main(sys.argv[1:])
