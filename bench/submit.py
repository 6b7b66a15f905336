"""Benchmark: one whole report submission against the Argon2id derivation it contains.

A submission's cost is meant to be its tracking code's Argon2id derivation (RFC 9106's
second option: t=3, m=64 MiB, p=4) plus little else: sealing the fields to the recipients,
one database commit and the receipt page. This measures, in the same process and run,
interleaved:

* request: POST /report through the Flask test client, real Argon2 cost, realistic Thai
  text in every field, no files, rate limiting off; the CSRF token is fetched beforehand
  and the multipart body encoded beforehand, both outside the timing;
* derivation: `whistle.codes.derive` alone with the same cost (the physical reference).

Prints the raw timings, their medians and the ratio; exits 1 if the request's median is
more than TARGET times the derivation's.

    .venv/bin/python bench/submit.py [--runs 15] [--warmup 2]
"""

from __future__ import annotations

import argparse
import re
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.3

# A realistic tip, in Thai, near the size a reporter actually writes (a few KB of UTF-8).
THAI_TIP = {
    "category": "procurement",
    "what": (
        "หัวหน้าฝ่ายพัสดุของกองช่างแบ่งซื้อแบ่งจ้างโครงการซ่อมแซมถนนคอนกรีตเสริมเหล็กสายหมู่ที่ 4 "
        "ถึงหมู่ที่ 7 ออกเป็นหกสัญญา สัญญาละไม่เกินห้าแสนบาท เพื่อใช้วิธีเฉพาะเจาะจงแทนการประกวดราคา "
        "อิเล็กทรอนิกส์ ทั้งหกสัญญาได้ผู้รับจ้างรายเดียวกัน คือห้างหุ้นส่วนจำกัดที่มีภรรยาของรองนายกเทศมนตรี "
        "เป็นหุ้นส่วนผู้จัดการ ราคากลางสูงกว่าราคาตลาดประมาณร้อยละสามสิบ และงานจริงมีความหนาของคอนกรีต "
        "เพียงสิบเซนติเมตร ทั้งที่แบบกำหนดไว้สิบห้าเซนติเมตร คณะกรรมการตรวจรับพัสดุลงนามตรวจรับงานทั้งที่ "
        "ไม่ได้ออกไปดูหน้างาน และมีการเบิกจ่ายเงินครบทุกงวดก่อนสิ้นปีงบประมาณ "
    )
    * 3,
    "people": (
        "นายสมชาย (นามสมมุติ) หัวหน้าฝ่ายพัสดุ กองช่าง; รองนายกเทศมนตรีคนที่หนึ่ง; "
        "ห้างหุ้นส่วนจำกัดผู้รับจ้าง ซึ่งภรรยาของรองนายกเทศมนตรีเป็นหุ้นส่วนผู้จัดการ; "
        "คณะกรรมการตรวจรับพัสดุสามคนจากกองช่างและกองคลัง"
    ),
    "when": "ระหว่างเดือนมีนาคมถึงกันยายน พ.ศ. 2569",
    "where": "สำนักงานเทศบาล อาคาร 2 ชั้น 3 ห้องกองช่าง และถนนสายหมู่ที่ 4 ถึงหมู่ที่ 7",
    "how_known": (
        "ข้าพเจ้าทำงานในหน่วยงานที่เกี่ยวข้อง ได้เห็นเอกสารการจัดซื้อจัดจ้างและใบตรวจรับด้วยตนเอง "
        "และได้ไปดูสภาพถนนหลังการซ่อมแซม ซึ่งแตกร้าวภายในสามเดือน"
    ),
    "evidence": (
        "สำเนาใบสั่งจ้างทั้งหกฉบับ บันทึกราคากลาง ใบตรวจรับพัสดุ และภาพถ่ายถนนที่แตกร้าว "
        "เอกสารต้นฉบับเก็บอยู่ที่กองคลังและกองช่าง"
    ),
}

_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
_RECEIPT = re.compile(r'<p class="code"[^>]*>([\d ]+)</p>')


def build_app(instance: Path):
    from whistle import create_app, crypto, db, keyring
    from whistle.codes import DEFAULT_COST
    from whistle.extensions import today, trust

    app = create_app(
        {
            "instance_path": instance,
            "secret_key": "bench-" + secrets.token_hex(24),
            "code_cost": DEFAULT_COST,
            "ratelimit_enabled": False,
        },
        require_recipients=False,
    )
    with app.app_context():
        db.create_schema()
        session = db.session()
        officer, recovery = crypto.PrivateKey.generate(), crypto.PrivateKey.generate()
        keyring.install_first_keys(session, trust(), officer, recovery, "officer-1", today())
        session.commit()
    return app


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each (default 15)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs of each first (default 2)")
    args = parser.parse_args()

    from werkzeug.test import encode_multipart

    from whistle import codes
    from whistle.codes import DEFAULT_COST

    with tempfile.TemporaryDirectory(prefix="whistle-bench-") as tmp:
        instance = Path(tmp) / "instance"
        instance.mkdir()
        app = build_app(instance)
        client = app.test_client()

        def prepared_post() -> tuple[dict, bytes]:
            """GET the form for a CSRF token and encode the body: both outside the timing."""
            page = client.get("/report?lang=th").get_data(as_text=True)
            match = _CSRF.search(page)
            if not match:
                raise SystemExit("no CSRF token on GET /report")
            boundary, body = encode_multipart({**THAI_TIP, "csrf_token": match.group(1)})
            return {"Content-Type": f"multipart/form-data; boundary={boundary}"}, body

        def one_request() -> float:
            headers, body = prepared_post()
            start = time.perf_counter()
            response = client.post("/report", data=body, headers=headers)
            elapsed = time.perf_counter() - start
            html = response.get_data(as_text=True)
            if response.status_code != 200 or not _RECEIPT.search(html):
                raise SystemExit(f"submission failed: HTTP {response.status_code}\n{html[:1500]}")
            return elapsed

        def one_derivation() -> float:
            code, salt = codes.new_code(secrets.token_bytes(32)), codes.new_salt()
            start = time.perf_counter()
            codes.derive(code.secret, salt, DEFAULT_COST)
            return time.perf_counter() - start

        for _ in range(args.warmup):
            one_derivation()
            one_request()

        derive_times: list[float] = []
        request_times: list[float] = []
        for i in range(args.runs):  # interleaved, alternating which goes first
            if i % 2:
                request_times.append(one_request())
                derive_times.append(one_derivation())
            else:
                derive_times.append(one_derivation())
                request_times.append(one_request())

        app.extensions["whistle.engine"].dispose()

    cost = DEFAULT_COST
    d, r = median_ms(derive_times), median_ms(request_times)
    ratio = r / d
    print(f"submit: POST /report vs Argon2id derivation (t={cost.time_cost}, m={cost.memory_cost // 1024} MiB, "
          f"p={cost.parallelism}), {args.runs} interleaved runs each after {args.warmup} warm-up")
    print("  derivation ms: " + " ".join(f"{t * 1000:.1f}" for t in derive_times))
    print("  request ms:    " + " ".join(f"{t * 1000:.1f}" for t in request_times))
    print(f"  derivation median {d:.1f} ms (min {min(derive_times) * 1000:.1f})")
    print(f"  request    median {r:.1f} ms (min {min(request_times) * 1000:.1f})")
    print(f"  overhead beyond the derivation: {r - d:.1f} ms")
    verdict = "OK" if ratio <= TARGET else "MISSED"
    print(f"  ratio request/derivation = {ratio:.3f} (target <= {TARGET}) {verdict}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
