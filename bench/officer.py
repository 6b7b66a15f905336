"""Benchmark: the officers' workspace with many cases, against the physical floor of each.

Two promises of the officer workspace (issue 7, item 11), each measured in the same run
against its reference:

* the case list: `GET /cases` (first page of open cases) and a filtered page
  (`?due=overdue&category=procurement&sort=resolve_due`) through the officers' app, signed
  in, with N cases (default 100,000), against a bare indexed query over the same rows
  (the same filter, count and first 50 rows, by SQLAlchemy Core). Target: page <= 3x.
* opening a case with 20 messages (10 the reporter's, 10 an officer's, signed) and 10
  files: the service that opens it for an officer (`cases.get_case(whole=True)` then
  `casework.read_case`: loading the case, every decryption, the officers' signatures
  checked, the audit entry committed) against the same number of bare envelope opens
  (`crypto.open_sealed` of the tip, the 20 messages and the 10 files' metadata, with the
  officer's key, no signature check). Target: <= 1.5x. The whole page (`GET
  /cases/<id>`, with its template and forms) is timed too, against the same reference,
  and reported without a target: a page's rendering is not encryption's. So are the two
  parts of the service that are not decryption, each alone: loading the case's rows, and
  committing the one audit entry the look appends (a durable write: a disk flush the bare
  opens do not pay), with the ratio against bare opens plus that commit.

Runs on SQLite (a temporary instance) and, when reachable, on PostgreSQL
(WHISTLE_BENCH_POSTGRES, default the test database, in a schema of its own). Timings
are medians of interleaved runs after warm-ups. Exits 1 if a target is missed.

    .venv/bin/python bench/officer.py [--cases 100000] [--runs 15] [--no-postgres]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import random
import re
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

LIST_TARGET = 3.0
OPEN_TARGET = 1.5
PG_URL = os.environ.get("WHISTLE_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def _apps(instance: Path, database_url: str, wallclock):
    from whistle import create_app, create_officer_app, crypto, db, keyring
    from whistle.codes import CodeCost
    from whistle.extensions import trust

    cheap = CodeCost(1, 256, 1)
    config = {
        "instance_path": instance, "secret_key": "bench-" + secrets.token_hex(24), "database_url": database_url,
        "unsafe_code_cost": cheap, "password_cost": cheap, "ratelimit_enabled": False, "wallclock": wallclock, "max_files": 10,
    }
    reporters = create_app(dict(config), require_recipients=False)
    officers = create_officer_app(dict(config), require_recipients=False)
    officer, recovery = crypto.PrivateKey.generate(), crypto.PrivateKey.generate()
    with officers.app_context():
        db.create_schema()
        keyring.install_first_keys(db.session(), trust(), officer, recovery, "officer-1", dt.date(2026, 11, 25))
        db.session().commit()
    return reporters, officers, officer


def _fill(officers, n: int, seed: int = 7) -> None:
    """N cases of metadata by bulk insert (their sealed columns are placeholders: the list
    never reads them), spread over two fiscal years, most closed."""
    from sqlalchemy import insert

    from whistle import db
    from whistle.models import Channel, Report, Status

    rng = random.Random(seed)
    categories = ["bribery", "procurement", "budget_fraud", "conflict_of_interest", "personnel", "other"]
    statuses = list(Status)
    start = dt.date(2024, 10, 1)
    with officers.app_context():
        engine = db.engine()
        rows = []
        for i in range(n):
            received = start + dt.timedelta(days=rng.randrange(790))
            status = rng.choices(statuses, weights=[3, 3, 3, 3, 2, 36])[0]
            rows.append({
                "uid": rng.randbytes(16), "lookup": f"{i:07d}", "channel": rng.choice(list(Channel)).value,
                "category": rng.choice(categories), "status": status.value, "received_on": received,
                "ack_due": received + dt.timedelta(days=7), "resolve_due": received + dt.timedelta(days=15),
                "acknowledged_on": None if status is Status.RECEIVED else received + dt.timedelta(days=2),
                "resolve_missed": False, "code_salt": b"\0" * 16, "code_time_cost": 1, "code_memory_cost": 8,
                "code_parallelism": 1, "code_verifier": b"\0" * 32, "reporter_public_key": b"\0" * 1216,
                "content": b"", "closed_on": received + dt.timedelta(days=20) if status is Status.CLOSED else None,
            })
            if len(rows) == 5000:
                with engine.begin() as conn:
                    conn.execute(insert(Report), rows)
                rows = []
        if rows:
            with engine.begin() as conn:
                conn.execute(insert(Report), rows)


def _signed_in(officers, officer_key, wallclock):
    """An officer's browser on the officers' app, signed in (outside any timing)."""
    import pyotp

    from whistle import accounts, db
    from whistle.extensions import password_hashing, server_key
    from whistle.models import Role

    with officers.app_context():
        session = db.session()
        account = accounts.create_account(session, password_hashing(), "bench", "Bench", Role.OFFICER,
                                          "bench passphrase 1", dt.date(2026, 11, 25), private_key=officer_key,
                                          key_kdf={"time_cost": 1, "memory_cost": 1024, "parallelism": 1})
        account.must_change_passphrase = False
        secret = accounts.new_totp_secret()
        accounts.enroll_totp(session, server_key(), account, secret, pyotp.TOTP(secret).at(wallclock()), wallclock(), dt.date(2026, 11, 25))
    wallclock.advance(31)
    client = officers.test_client()
    token = _CSRF.search(client.get("/sign-in").get_data(as_text=True)).group(1)
    response = client.post("/sign-in", data={"username": "bench", "passphrase": "bench passphrase 1",
                                             "code": pyotp.TOTP(secret).at(wallclock()), "csrf_token": token})
    if response.status_code != 303:
        raise SystemExit("could not sign in")
    return client


def _rich_case(reporters, officers, officer_key) -> int:
    """A case with 10 files and 20 messages (alternately the reporter's and an officer's,
    signed), made through the reporter's form and the services."""
    from sqlalchemy import func, select

    from whistle import db, intake
    from whistle.extensions import trust
    from whistle.models import Author, Report

    client = reporters.test_client()
    page = client.get("/report").get_data(as_text=True)
    files = [(io.BytesIO(os.urandom(20_000)), f"scan-{i}.pdf") for i in range(10)]
    data = {"category": "procurement", "what": "การแบ่งซื้อแบ่งจ้าง " * 200, "csrf_token": _CSRF.search(page).group(1), "files": files}
    if client.post("/report", data=data, content_type="multipart/form-data").status_code != 200:
        raise SystemExit("could not submit the rich case")
    with reporters.app_context():
        case_id = db.session().scalar(select(func.max(Report.id)))
    with officers.app_context():
        for i in range(20):
            author = Author.OFFICER if i % 2 else Author.REPORTER
            key = officer_key.signing_key if author is Author.OFFICER else None
            intake.add_message(db.session(), officers.extensions["whistle.blobs"], trust(), case_id, author,
                               f"ข้อความที่ {i} " * 40, [], dt.date(2026, 11, 26), signing_key=key)
    return case_id


def _median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def _interleaved(runs: int, warmup: int, **fns) -> dict[str, float]:
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: _median_ms(values) for name, values in times.items()}


def run(label: str, database_url: str, cases: int, runs: int, warmup: int) -> list[str]:
    from sqlalchemy import and_, func, or_, select

    from whistle import crypto, db
    from whistle.models import Report, Status

    failures = []

    class Wall:
        now = time.time()

        def __call__(self) -> float:
            return self.now

        def advance(self, s: float) -> None:
            self.now += s

    wallclock = Wall()
    with tempfile.TemporaryDirectory(prefix="whistle-bench-") as tmp:
        instance = Path(tmp) / "instance"
        instance.mkdir()
        url = database_url or f"sqlite:///{instance / 'whistle.sqlite3'}"
        reporters, officers, officer_key = _apps(instance, url, wallclock)
        t0 = time.perf_counter()
        _fill(officers, cases)
        print(f"[{label}] {cases:,} cases inserted in {time.perf_counter() - t0:.1f} s")
        browser = _signed_in(officers, officer_key, wallclock)
        case_id = _rich_case(reporters, officers, officer_key)

        today = dt.date(2026, 11, 30)
        officers.extensions["whistle.clock"] = lambda: today

        def bare(query_filter):
            def run_query() -> None:
                with officers.app_context():
                    conn = db.session().connection()
                    conn.execute(select(func.count()).select_from(Report).where(*query_filter)).scalar()
                    conn.execute(
                        select(Report.id, Report.status, Report.category, Report.channel, Report.received_on,
                               Report.ack_due, Report.resolve_due, Report.acknowledged_on, Report.assignee_id)
                        .where(*query_filter).order_by(Report.received_on.desc(), Report.id.desc()).limit(50)
                    ).all()
            return run_query

        open_ = [Report.purged_on.is_(None), Report.status != Status.CLOSED]
        overdue = [*open_, Report.category == "procurement",
                   or_(and_(Report.acknowledged_on.is_(None), Report.ack_due < today), Report.resolve_due < today)]

        def page(path: str):
            def get() -> None:
                response = browser.get(path)
                if response.status_code != 200:
                    raise SystemExit(f"{path}: {response.status_code}")
            return get

        lists = _interleaved(
            runs, warmup,
            first_page=page("/cases"), bare_first=bare(open_),
            filtered_page=page("/cases?due=overdue&category=procurement&sort=resolve_due"), bare_filtered=bare(overdue),
        )
        for name, ref in (("first_page", "bare_first"), ("filtered_page", "bare_filtered")):
            ratio = lists[name] / lists[ref]
            ok = ratio <= LIST_TARGET
            print(f"[{label}] {name}: page {lists[name]:.1f} ms, bare query {lists[ref]:.1f} ms, ratio {ratio:.2f} (target <= {LIST_TARGET}) {'OK' if ok else 'MISSED'}")
            if not ok:
                failures.append(f"{label} {name}")

        with officers.app_context():
            report = db.session().get(Report, case_id)
            envelopes = [report.content, *(m.body for m in report.messages), *(a.meta for a in report.attachments)]
            from whistle import cases as cases_module

            contexts = [cases_module.context(report, cases_module.TIP_SLOT),
                        *(cases_module.context(report, cases_module.message_slot(m.seq, m.author)) for m in report.messages),
                        *(cases_module.context(report, cases_module.file_slot(a.blob_name, "meta")) for a in report.attachments)]
        counts = (len(report.messages), len(report.attachments))

        def bare_opens() -> None:
            for envelope, ctx in zip(envelopes, contexts, strict=True):
                crypto.open_sealed(envelope, officer_key, ctx)

        from whistle import casework
        from whistle.extensions import trust
        from whistle.models import Account

        def service_open() -> None:
            with officers.app_context():
                session = db.session()
                actor = session.scalar(select(Account).where(Account.username == "bench"))
                casework.read_case(session, trust(), cases_module.get_case(session, case_id, whole=True), officer_key, actor)

        from whistle import audit

        def load_only() -> None:
            with officers.app_context():
                cases_module.get_case(db.session(), case_id, whole=True)

        def audit_commit() -> None:
            """The durable part of a look: one audit entry, committed (flushed to disk)."""
            with officers.app_context():
                session = db.session()
                actor = session.scalar(select(Account).where(Account.username == "bench"))
                audit.record(session, "tip_decrypt", actor, case_id)
                session.commit()

        opening = _interleaved(
            runs, warmup, service=service_open, case_page=page(f"/cases/{case_id}"), bare_opens=bare_opens,
            load=load_only, audit_commit=audit_commit,
        )
        ratio = opening["service"] / opening["bare_opens"]
        ok = ratio <= OPEN_TARGET
        print(f"[{label}] opening a case ({counts[0]} messages, {counts[1]} files): {opening['service']:.1f} ms, "
              f"{len(envelopes)} bare envelope opens {opening['bare_opens']:.1f} ms, ratio {ratio:.2f} (target <= {OPEN_TARGET}) {'OK' if ok else 'MISSED'}")
        # Where the time goes, each part timed alone in the same interleaved runs: loading
        # the case's rows, and the audit entry every look must commit before content is
        # shown (a disk flush, which the bare opens do not include).
        floor = opening["bare_opens"] + opening["audit_commit"]
        print(f"[{label}]   of which: loading the case {opening['load']:.1f} ms, one audit entry committed "
              f"{opening['audit_commit']:.1f} ms; against bare opens + that commit ({floor:.1f} ms): "
              f"ratio {opening['service'] / floor:.2f} (no target)")
        print(f"[{label}] the whole case page: {opening['case_page']:.1f} ms, {opening['case_page'] / opening['bare_opens']:.2f}x the bare opens (no target)")
        if not ok:
            failures.append(f"{label} opening a case")
        for app in (reporters, officers):
            app.extensions["whistle.engine"].dispose()
    return failures


def _postgres_schema() -> tuple[str, callable] | None:
    from sqlalchemy import create_engine, text

    try:
        admin = create_engine(PG_URL, connect_args={"connect_timeout": 2})
        schema = f"whistle_bench_{secrets.token_hex(3)}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001 (any reason PostgreSQL cannot be used)
        print(f"PostgreSQL not reachable at {PG_URL} ({type(exc).__name__}): skipped")
        return None

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}", drop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    failures = run("SQLite", "", args.cases, args.runs, args.warmup)
    if not args.no_postgres:
        pg = _postgres_schema()
        if pg is not None:
            url, drop = pg
            try:
                failures += run("PostgreSQL", url, args.cases, args.runs, args.warmup)
            finally:
                drop()
    if failures:
        print("MISSED: " + ", ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
