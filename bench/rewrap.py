"""Benchmark: one batch of the workspace's re-wrap (access.rewrap_batch) against the
re-wrapping work alone.

A batch re-wraps the items of REWRAP_BATCH cases for the current recipients in one
transaction, which is one request of the progress page: its time is what an officer waits
per step, and what bounds a request of the custodian's page (all batches at once). The
reference, measured in the same run on the same items, is the cryptography alone:
`crypto.rewrap_envelope` / `crypto.rewrap` of every item of those cases in memory, no
database. Each case holds a tip, a file and two messages (a reply and an officer's).

Exits 1 if a batch takes more than TARGET times the reference.

    .venv/bin/python bench/rewrap.py [--cases 200] [--database-url URL]
"""

from __future__ import annotations

import argparse
import io
import secrets
import sys
import tempfile
import time
from pathlib import Path

TARGET = 4.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary folder")
    args = parser.parse_args()

    from sqlalchemy import select

    from whistle import access, cases, create_app, crypto, db, intake, keyring
    from whistle.codes import CodeCost
    from whistle.extensions import trust
    from whistle.models import Author, KeyRole, Report

    folder = Path(tempfile.mkdtemp())
    config = {"instance_path": folder, "secret_key": secrets.token_urlsafe(40), "code_cost": CodeCost(1, 256, 1),
              "ratelimit_enabled": False}
    if args.database_url:
        config["database_url"] = args.database_url
    app = create_app(config, require_recipients=False)
    officer, recovery, newcomer = (crypto.PrivateKey.generate() for _ in range(3))
    with app.app_context():
        db.create_schema()
        session = db.session()
        keyring.write_anchor(folder / keyring.ANCHOR_FILE, recovery)
        keyring.register(session, keyring.KeyInfo(KeyRole.RECOVERY, "recovery", recovery.public_key(), recovery.signing_key.verify_key()), app.extensions["whistle.clock"]())
        keyring.certify(session, trust(), officer, recovery, "officer-1", app.extensions["whistle.clock"]())
        session.commit()

    client = app.test_client()
    from tests.conftest import Reporter  # the test suite's reporter browser

    reporter = Reporter(client)
    for n in range(args.cases):
        reporter.submit_ok(what=f"tip {n}", files=[(io.BytesIO(b"x" * 4096), "f.txt")])
    with app.app_context():
        for case_id in db.session().scalars(select(Report.id)).all():
            intake.add_message(db.session(), app.extensions["whistle.blobs"], trust(), case_id, Author.OFFICER, "officer",
                               [], app.extensions["whistle.clock"](), signing_key=officer.signing_key)
            intake.add_message(db.session(), app.extensions["whistle.blobs"], trust(), case_id, Author.REPORTER, "reply",
                               [], app.extensions["whistle.clock"]())
        keyring.certify(db.session(), trust(), newcomer, recovery, "officer-2", app.extensions["whistle.clock"]())
        db.session().commit()

        batch_times, reference_times = [], []
        actor = None
        while True:
            session = db.session()
            targets = keyring.recipients(session, trust())
            digest = keyring.recipients_digest(targets)
            rows = session.scalars(
                select(Report).where(Report.sealed_for != digest).order_by(Report.id).limit(access.REWRAP_BATCH)
            ).all()
            if not rows:
                break
            # The reference: the same items' cryptography alone, in memory.
            work = [(r, item, getattr(item.row, item.column)) for r in rows for item in cases.sealed_items(r)]
            started = time.perf_counter()
            for report, item, sealed in work:
                ctx = cases.context(report, item.slot)
                if item.kind == "file":
                    crypto.rewrap(sealed, officer, targets, crypto.KIND_FILE, ctx)
                else:
                    to = [*targets, crypto.PublicKey.from_bytes(report.reporter_public_key)] if item.to_reporter else targets
                    crypto.rewrap_envelope(sealed, officer, to, ctx)
            reference_times.append(time.perf_counter() - started)
            session.expire_all()
            started = time.perf_counter()
            access.rewrap_batch(session, trust(), officer, actor)
            batch_times.append(time.perf_counter() - started)

    batches = len(batch_times)
    batch = sorted(batch_times)[batches // 2]
    reference = sorted(reference_times)[batches // 2]
    database = "PostgreSQL" if args.database_url and args.database_url.startswith("postgresql") else "SQLite"
    print(f"re-wrap of {args.cases} cases (tip, file, 2 messages each; 3 recipients) on {database}, "
          f"{batches} batches of {access.REWRAP_BATCH}")
    print(f"  reference (cryptography alone, median per batch): {reference * 1000:7.1f} ms")
    print(f"  access.rewrap_batch (median):                     {batch * 1000:7.1f} ms  ({batch / reference:.2f}x the reference)")
    print(f"  whole run, as the custodian's page does it:       {sum(batch_times):7.2f} s")
    return 0 if batch <= TARGET * reference else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
