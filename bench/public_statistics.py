"""Benchmark: the public statistics over a million cases, on SQLite and PostgreSQL.

Fills a fresh database with N cases (default 1,000,000) spread over five fiscal years
(2566 to 2570), by bulk inserts (not through the web): each case with its channel,
category, dates, a status, an outcome when closed, and some referrals (with their status
event) and ratings. Then, in the same run, interleaved:

* (e) the public page of the fullest fiscal year served warm (`GET /statistics/2569`
  through the Flask test client, after a first request made and stored its figures),
  against a static file of exactly the same size served by the same app (`/static/...`);
* (f) a full recomputation of one fiscal year with suppression (every one of its twelve
  cuts counted and suppressed in order, `statistics.load_entries` + `count_entries` +
  `publish_sequence`, nothing stored), against a bare aggregate query over the same
  rows (`SELECT category, count(*) ... GROUP BY category` over that year).

Prints the raw timings, their medians and the ratios; exits 1 if (e) is over 2x or (f)
over 3x.

    .venv/bin/python bench/public_statistics.py [--cases 1000000] [--db sqlite|postgres|both] [--runs 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import secrets
import statistics as stats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402

from whistle import create_app, db  # noqa: E402
from whistle import statistics as figures  # noqa: E402
from whistle.codes import CodeCost  # noqa: E402
from whistle.models import Agency, Channel, EventKind, Outcome, Rating, Report, Status, StatusEvent  # noqa: E402

PAGE_TARGET = 2.0
RECOMPUTE_TARGET = 3.0
POSTGRES = os.environ.get("WHISTLE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
FIRST = dt.date(2022, 10, 1)  # FY 2566 starts
DAYS = (dt.date(2027, 9, 30) - FIRST).days  # to the end of FY 2570
CATEGORIES = ("bribery", "procurement", "budget_fraud", "conflict_of_interest", "personnel", "public_property",
              "unfair_service", "abuse_of_authority", "other")
BATCH = 20_000


def fill(url: str, cases: int, seed: int = 7) -> None:
    """Insert `cases` cases with the columns the statistics read; secrets are filler."""
    rng = random.Random(seed)
    engine = create_engine(url)
    channels = [c.value for c in Channel]
    outcomes = [o.value for o in Outcome]
    agencies = [a.value for a in Agency]
    with engine.begin() as conn:
        next_id = (conn.scalar(select(func.max(Report.id))) or 0) + 1
    filler = {"code_salt": b"\0" * 16, "code_time_cost": 1, "code_memory_cost": 8, "code_parallelism": 1,
              "code_verifier": b"\0" * 32, "reporter_public_key": b"", "content": b""}
    done = 0
    while done < cases:
        rows, events, ratings = [], [], []
        for i in range(min(BATCH, cases - done)):
            case_id = next_id + done + i
            received = FIRST + dt.timedelta(days=rng.randrange(DAYS))
            closed = received + dt.timedelta(days=rng.randrange(5, 120)) if rng.random() < 0.7 else None
            referred = rng.random() < 0.08
            acknowledged = received + dt.timedelta(days=rng.randrange(0, 10))
            referred_on = acknowledged + dt.timedelta(days=3) if referred else None
            rows.append({
                "id": case_id, "uid": secrets.token_bytes(16), "lookup": f"b{case_id}",
                "channel": rng.choice(channels), "category": rng.choice(CATEGORIES),
                "status": (Status.CLOSED if closed else Status.UNDER_REVIEW).value,
                "outcome": rng.choice(outcomes) if closed else None, "received_on": received,
                "ack_due": received + dt.timedelta(days=7), "resolve_due": received + dt.timedelta(days=15),
                "acknowledged_on": acknowledged, "resolve_missed": rng.random() < 0.2, "closed_on": closed,
                "referred_to": rng.choice(agencies) if referred else None, "referred_on": referred_on, **filler,
            })
            rating = (rng.randint(1, 5), closed + dt.timedelta(days=2)) if closed and rng.random() < 0.3 else None
            rows[-1].update(rating_score=rating and rating[0], rated_on=rating and rating[1])
            if referred:
                events.append({"report_id": case_id, "kind": EventKind.STATUS.value, "status": Status.REFERRED.value,
                               "on": referred_on})
            if rating:
                ratings.append({"report_id": case_id, "score": rating[0], "rated_on": rating[1]})
        with engine.begin() as conn:
            conn.execute(insert(Report), rows)
            if events:
                conn.execute(insert(StatusEvent), events)
            if ratings:
                conn.execute(insert(Rating), ratings)
        done += len(rows)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
    engine.dispose()


def median_ms(samples: list[float]) -> float:
    return stats.median(samples) * 1000


def measure(url: str, instance: Path, cases: int, runs: int) -> tuple[float, float]:
    app = create_app({"instance_path": instance, "secret_key": "b" * 40, "database_url": url,
                      "unsafe_code_cost": CodeCost(1, 8, 1), "ratelimit_enabled": False, "clock": lambda: dt.date(2026, 11, 15)},
                     require_recipients=False)
    with app.app_context():
        db.create_schema()
    t0 = time.perf_counter()
    fill(url, cases)
    print(f"  filled {cases:,} cases in {time.perf_counter() - t0:.1f} s")
    client = app.test_client()
    t0 = time.perf_counter()
    page = client.get("/statistics/2569?lang=th").get_data()
    print(f"  first request of /statistics/2569 (counts and stores all 12 cuts): {(time.perf_counter() - t0) * 1000:.0f} ms, {len(page):,} bytes")
    static = ROOT / "whistle" / "static" / "_bench_same_size.html"
    static.write_bytes(page)
    fiscal_year = figures.FiscalYear(2569)
    org = app.extensions["whistle.settings"].organisation
    page_s, file_s, full_s, bare_s = [], [], [], []
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            assert client.get("/statistics/2569?lang=th").get_data() == page
            page_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            assert client.get("/static/_bench_same_size.html").get_data() == page
            file_s.append(time.perf_counter() - t0)
            with app.app_context():
                session = db.session()
                t0 = time.perf_counter()
                entries = figures.load_entries(session, fiscal_year, fiscal_year.end)
                counts = figures.count_entries(entries, org, fiscal_year.month_ends(fiscal_year.end))
                published = figures.publish_sequence(counts, fiscal_year, org.small_count)
                full_s.append(time.perf_counter() - t0)
                assert published[-1].totals["received"] > 0
                t0 = time.perf_counter()
                session.execute(
                    select(Report.category, func.count())
                    .where(Report.received_on >= fiscal_year.start, Report.received_on <= fiscal_year.end)
                    .group_by(Report.category)
                ).all()
                bare_s.append(time.perf_counter() - t0)
    finally:
        static.unlink()
        app.extensions["whistle.engine"].dispose()
    print(f"  FY 2569: {published[-1].totals['received']:,} cases, counted into {sum(map(len, entries.values())):,} (cell, month) entries")
    print(f"  (e) page warm   : {[round(s * 1000, 2) for s in page_s]} ms, median {median_ms(page_s):.2f} ms")
    print(f"      static file : {[round(s * 1000, 2) for s in file_s]} ms, median {median_ms(file_s):.2f} ms")
    print(f"  (f) recompute   : {[round(s * 1000) for s in full_s]} ms, median {median_ms(full_s):.0f} ms")
    print(f"      bare query  : {[round(s * 1000) for s in bare_s]} ms, median {median_ms(bare_s):.0f} ms")
    page_ratio = stats.median(page_s) / stats.median(file_s)
    full_ratio = stats.median(full_s) / stats.median(bare_s)
    print(f"  ratios: page/static {page_ratio:.2f} (target <= {PAGE_TARGET}), recompute/bare {full_ratio:.2f} (target <= {RECOMPUTE_TARGET})")
    return page_ratio, full_ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    ok = True
    for kind in (("sqlite", "postgres") if args.db == "both" else (args.db,)):
        with tempfile.TemporaryDirectory() as folder:
            instance = Path(folder)
            if kind == "sqlite":
                url = f"sqlite:///{instance / 'bench.sqlite3'}"
            else:
                schema = "whistle_bench_" + secrets.token_hex(3)
                admin = create_engine(POSTGRES)
                with admin.begin() as conn:
                    conn.execute(text(f'CREATE SCHEMA "{schema}"'))
                url = f"{POSTGRES}{'&' if '?' in POSTGRES else '?'}options=-csearch_path%3D{schema}"
            print(f"{kind}:")
            try:
                page_ratio, full_ratio = measure(url, instance, args.cases, args.runs)
            finally:
                if kind == "postgres":
                    with admin.begin() as conn:
                        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                    admin.dispose()
            ok = ok and page_ratio <= PAGE_TARGET and full_ratio <= RECOMPUTE_TARGET
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
