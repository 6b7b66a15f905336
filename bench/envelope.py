"""Benchmark: what format version 2 and officer signatures cost per item, against version 1.

An envelope's cost is its HPKE work (one wrap per recipient to seal, one unwrap to open);
the content's AES-GCM is small beside it. So the references, measured in the same run on
the same bytes, are one bare HPKE unwrap of a 32-byte data key (the floor of any open)
and one-shot AES-256-GCM of the plaintext (the floor of any seal's content). Measured,
each per operation, for a 2 KiB tip sealed to 2 recipients:

* seal and open, version 1 and version 2 (version 2 adds two HKDFs, an HMAC and a
  SHA-256 context digest);
* a hybrid signature and its check (Ed25519 + ML-DSA-65), and each half alone;
* `seal_signed` and `open_signed` (a version 2 envelope holding a signature), and a
  certificate check;
* deriving a key's signing key (once per key object, then cached).

Each operation runs in batches (default 9 rounds, interleaved) and the median round is
taken. Exits 1 if a version 2 seal or open costs more than TARGET times its version 1
counterpart: version 2 adds two HKDFs and an HMAC (about 10 to 20 us) to an HPKE-bound
operation, and the target catches a regression that multiplies that (a key derived per
entry, a MAC over the content), not the noise of a shared machine.

    .venv/bin/python bench/envelope.py [--rounds 9] [--batch 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

TARGET = 1.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="rounds of each measurement (default 9)")
    parser.add_argument("--batch", type=int, default=200, help="operations per round (default 200)")
    args = parser.parse_args()

    from whistle import crypto
    from whistle.crypto import _SUITE, AESGCM  # the names whistle.crypto imported from cryptography

    officer, recovery = crypto.PrivateKey.generate(), crypto.PrivateKey.generate()
    reporter = crypto.PrivateKey.generate()
    recipients = [officer.public_key(), recovery.public_key()]
    officer.key_id, recovery.key_id, officer._hpke  # warm the cached parts, as a long-lived key has them
    plaintext = ("ปลัดเทศบาลแบ่งสัญญาก่อสร้างถนน " * 80).encode()[:2048]
    case = crypto.case_binding(os.urandom(16), reporter.public_key().to_bytes(), "web", "2026-11-25")
    context = crypto.Context(case, "message/1/officer")
    data_key = os.urandom(32)
    wrapped = _SUITE.encrypt(data_key, officer.public_key()._hpke, info=b"bench")
    v1 = crypto.seal(plaintext, recipients)
    v2 = crypto.seal(plaintext, recipients, context)
    signing = officer.signing_key
    verify = signing.verify_key()
    signature = signing.sign(plaintext, label=b"bench")
    signed = crypto.seal_signed(plaintext, recipients, context, signing)
    certificate = crypto.certify(
        recovery.signing_key, officer.public_key(), verify, "officer", "officer-1", "2026-11-25"
    )
    anchor = recovery.signing_key.verify_key()
    ed_key, ml_key = signing._ed25519, signing._mldsa
    ed_sig, ml_sig = ed_key.sign(plaintext), ml_key.sign(plaintext)
    ed_pub, ml_pub = ed_key.public_key(), ml_key.public_key()
    seeds = [crypto.PrivateKey.generate() for _ in range(args.batch)]

    ops = {
        "ref: one bare HPKE unwrap": lambda: _SUITE.decrypt(wrapped, officer._hpke, info=b"bench"),
        "ref: one-shot AES-GCM, 2 KiB": lambda: AESGCM(data_key).encrypt(b"\x00" * 12, plaintext, b"whst"),
        "seal v1 (2 recipients)": lambda: crypto.seal(plaintext, recipients),
        "seal v2 (2 recipients)": lambda: crypto.seal(plaintext, recipients, context),
        "open v1": lambda: crypto.open_sealed(v1, officer),
        "open v2": lambda: crypto.open_sealed(v2, officer, context),
        "hybrid sign": lambda: signing.sign(plaintext, label=b"bench"),
        "hybrid verify": lambda: verify.verify(signature, plaintext, label=b"bench"),
        "  Ed25519 sign alone": lambda: ed_key.sign(plaintext),
        "  Ed25519 verify alone": lambda: ed_pub.verify(ed_sig, plaintext),
        "  ML-DSA-65 sign alone": lambda: ml_key.sign(plaintext),
        "  ML-DSA-65 verify alone": lambda: ml_pub.verify(ml_sig, plaintext),
        "seal_signed v2 (2 recipients)": lambda: crypto.seal_signed(plaintext, recipients, context, signing),
        "open_signed v2": lambda: crypto.open_signed(signed, officer, context, [verify]),
        "check_certificate": lambda: crypto.check_certificate(anchor, certificate),
    }
    rounds: dict[str, list[float]] = {name: [] for name in ops}
    derive: list[float] = []
    for name, op in ops.items():  # warm-up
        op()
    for _ in range(args.rounds):
        for name, op in ops.items():
            start = time.perf_counter()
            for _ in range(args.batch):
                op()
            rounds[name].append((time.perf_counter() - start) / args.batch)
        fresh = [crypto.PrivateKey(k.mlkem_seed, k.x25519) for k in seeds]  # nothing cached yet
        start = time.perf_counter()
        for key in fresh:
            key.signing_key  # noqa: B018
        derive.append((time.perf_counter() - start) / args.batch)
    rounds["derive signing key (once per key)"] = derive

    median = {name: statistics.median(times) for name, times in rounds.items()}
    unwrap = median["ref: one bare HPKE unwrap"]
    aes = median["ref: one-shot AES-GCM, 2 KiB"]
    print(f"envelope: 2 KiB plaintext, 2 recipients; median of {args.rounds} rounds of {args.batch} operations")
    print(f"  {'operation':<36} {'time':>10}  {'/ HPKE unwrap':>13}  {'/ AES-GCM':>10}")
    for name, seconds in median.items():
        print(f"  {name:<36} {seconds * 1e6:8.1f} us  {seconds / unwrap:12.2f}x  {seconds / aes:9.1f}x")
    sizes = {"v1 envelope": len(v1), "v2 envelope": len(v2), "v2 signed envelope": len(signed), "certificate": len(certificate)}
    print("  sizes: " + ", ".join(f"{k} {v:,} B" for k, v in sizes.items()))
    ok = True
    for what in ("seal", "open"):
        ratio = median[f"{what} v2" + (" (2 recipients)" if what == "seal" else "")] / median[
            f"{what} v1" + (" (2 recipients)" if what == "seal" else "")
        ]
        verdict = "OK" if ratio <= TARGET else "MISSED"
        ok &= ratio <= TARGET
        print(f"  ratio {what} v2 / {what} v1 = {ratio:.3f} (target <= {TARGET}) {verdict}")
    print(f"  (open_signed / open v1 = {median['open_signed v2'] / median['open v1']:.2f}x; "
          f"seal_signed / seal v1 = {median['seal_signed v2 (2 recipients)'] / median['seal v1 (2 recipients)']:.2f}x)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
