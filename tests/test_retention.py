"""Retention: closed cases are purged after the configured period, keeping their statistics."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import OperationalError

from whistle import bundles, cases, codes, crypto, db, keyring, migrate, retention
from whistle.extensions import trust_of
from whistle.cli import main as cli
from whistle.models import Author, Outcome, Report, Status, StatusEvent
from whistle.intake import UnknownCode, add_message, read_tip

from .conftest import csrf_token, file_plaintext, officer_says

DAYS = 30


def _submit(reporter, what: str, file_bytes: bytes | None = None) -> str:
    files = [(io.BytesIO(file_bytes), "evidence.pdf")] if file_bytes else []
    return reporter.submit_ok(what=what, files=files)


def _case_id(app, what: str, officer_key) -> int:
    with app.app_context():
        for report in db.session().scalars(select(Report)):
            if report.purged_on is None and read_tip(report, officer_key)["what"] == what:
                return report.id
    raise AssertionError(f"no case with {what!r}")


def _message(app, case_id: int, text: str, officer_key) -> None:
    officer_says(app, case_id, text, officer_key)


def _close(app, case_id: int, outcome=Outcome.SUBSTANTIATED) -> None:
    with app.app_context():
        cases.close_case(db.session(), case_id, outcome, app.extensions["whistle.clock"]())


def _purge(app, days: int = DAYS) -> int:
    with app.app_context():
        return retention.purge_closed(db.session(), app.extensions["whistle.blobs"],
                                      app.extensions["whistle.clock"](), days)


def _blob_files(app) -> set[str]:
    store = app.extensions["whistle.blobs"]
    return {p.name for p in store.root.iterdir() if p.is_file()}


@pytest.fixture
def three_cases(app, reporter, officer_key, clock):
    """Old: closed on day 0, with a file, an officer's message and a reply with a file.
    Recent: closed on day 10. Open: never closed. Each with its code."""
    made = {}
    for name in ("old", "recent", "open"):
        code = _submit(reporter, f"tip {name}", f"%PDF {name} evidence".encode())
        made[name] = (_case_id(app, f"tip {name}", officer_key), code)
    old = made["old"][0]
    _message(app, old, "Which contract?", officer_key)
    reporter.open_case(made["old"][1])
    page = reporter.client.get("/case")
    assert reporter.client.post("/case/reply", data={
        "text": "Contract 12/2569", "csrf_token": csrf_token(page.get_data(as_text=True)),
        "files": [(io.BytesIO(b"scan of contract"), "contract.jpg")],
    }, content_type="multipart/form-data").status_code == 303
    reporter.client.post("/case/close", data={"csrf_token": csrf_token(reporter.client.get("/case").get_data(as_text=True))})
    _close(app, old)
    clock.advance(10)
    _close(app, made["recent"][0], Outcome.UNSUBSTANTIATED)
    return made


def test_close_case_records_the_day_and_an_event(app, reporter, officer_key, clock):
    reporter.submit_ok(what="to close")
    case_id = _case_id(app, "to close", officer_key)
    clock.advance(3)
    _close(app, case_id, "outside_jurisdiction")
    with app.app_context():
        report = db.session().get(Report, case_id)
        assert report.status is Status.CLOSED and report.outcome is Outcome.OUTSIDE_JURISDICTION
        assert report.closed_on == clock()
        assert [(e.status, e.on) for e in report.events][-1] == (Status.CLOSED, clock())
        with pytest.raises(cases.CaseClosed):
            cases.close_case(db.session(), case_id, Outcome.SUBSTANTIATED, clock())
        with pytest.raises(cases.CaseNotFound):
            cases.close_case(db.session(), 999999, Outcome.SUBSTANTIATED, clock())


def test_purges_only_cases_closed_more_than_the_period_ago(app, three_cases, clock, officer_key):
    old, recent, open_ = (three_cases[k][0] for k in ("old", "recent", "open"))
    with app.app_context():
        before = {r.id: r for r in db.session().scalars(select(Report))}
        old_blobs = {a.blob_name for a in before[old].attachments}
        kept_blobs = {a.blob_name for r in (recent, open_) for a in before[r].attachments}
        stats_before = {r.id: (r.category, r.channel, r.received_on, r.ack_due, r.resolve_due,
                               r.closed_on, r.status, r.outcome) for r in before.values()}
    assert len(old_blobs) == 2 and old_blobs | kept_blobs == _blob_files(app)

    clock.advance(DAYS - 10)  # old closed exactly DAYS days ago: not yet "more than"
    assert _purge(app) == 0
    clock.advance(1)
    assert _purge(app) == 1
    assert _purge(app) == 0  # idempotent

    with app.app_context():
        session = db.session()
        reports = {r.id: r for r in session.scalars(select(Report))}
        gone = reports[old]
        # statistics fields kept, exactly as before
        for case_id, report in reports.items():
            assert (report.category, report.channel, report.received_on, report.ack_due, report.resolve_due,
                    report.closed_on, report.status, report.outcome) == stats_before[case_id]
        assert gone.purged_on == clock()
        # every secret column emptied, the lookup no longer a code's
        assert gone.content == gone.code_salt == gone.code_verifier == gone.reporter_public_key == b""
        assert not gone.lookup.isdigit()
        assert gone.messages == [] and gone.attachments == []
        assert [e.status for e in session.scalars(select(StatusEvent).where(StatusEvent.report_id == old))] == [Status.CLOSED]
        # the others untouched
        for case_id in (recent, open_):
            report = reports[case_id]
            assert report.purged_on is None and report.lookup.isdigit()
            assert read_tip(report, officer_key)["what"].startswith("tip ")
            assert len(report.attachments) == 1
        # statistics still count the purged case
        closed = session.scalar(select(func.count()).select_from(Report).where(Report.status == Status.CLOSED))
        assert closed == 2
    assert _blob_files(app) == kept_blobs


def test_purged_case_code_gets_the_unknown_code_page(app, three_cases, clock, client):
    clock.advance(DAYS)
    assert _purge(app) == 1

    def post(code: str):
        token = csrf_token(client.get("/status").get_data(as_text=True))
        response = client.post("/status", data={"code": code, "csrf_token": token})
        return response.status_code, response.get_data(as_text=True).replace(token, "")

    purged = post(three_cases["old"][1])
    unknown = post(codes.new_code(app.extensions["whistle.server_key"]).display())
    assert purged[0] == unknown[0] == 404
    assert purged[1] == unknown[1]
    assert post(three_cases["recent"][1])[0] == 303  # a kept closed case still opens


def test_view_open_while_purged_closes(app, reporter, officer_key, clock):
    code = reporter.submit_ok(what="viewed")
    case_id = _case_id(app, "viewed", officer_key)
    _close(app, case_id)
    clock.advance(DAYS + 1)
    assert reporter.open_case(code).status_code == 303
    page = reporter.client.get("/case").get_data(as_text=True)
    assert _purge(app) == 1
    from .conftest import csrf_token, file_plaintext, officer_says

    reply = reporter.client.post("/case/reply", data={"text": "still there?", "csrf_token": csrf_token(page)})
    assert reply.status_code == 303 and reply.headers["Location"].endswith("/status")  # not a 500
    assert reporter.open_case(code).status_code == 404
    with app.app_context():
        with pytest.raises(UnknownCode):  # nothing to seal a message to any more
            add_message(db.session(), app.extensions["whistle.blobs"], trust_of(app), case_id, Author.REPORTER, "x", [], clock())


def test_rewrap_and_export_skip_purged_cases(app, three_cases, clock, officer_key, tmp_path):
    clock.advance(DAYS)
    assert _purge(app) == 1
    with app.app_context():
        session = db.session()
        assert keyring.rewrap_all(session, trust_of(app), officer_key) > 0  # no OpenError on the emptied row
        session.rollback()
        with pytest.raises(bundles.BundleError, match="purged"):
            bundles.export_case(session, app.extensions["whistle.blobs"], three_cases["old"][0], tmp_path / "b.zip")
    assert not (tmp_path / "b.zip").exists()


def test_retention_zero_disables(app, three_cases, clock):
    clock.advance(10_000)
    assert _purge(app, 0) == 0
    with app.app_context():
        assert db.session().scalar(select(Report).where(Report.purged_on.is_not(None))) is None


def test_failed_commit_leaves_rows_and_files(app, three_cases, clock, officer_key, monkeypatch):
    clock.advance(DAYS)
    files_before = _blob_files(app)
    with app.app_context():
        session = db.session()

        def refuse() -> None:
            raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

        monkeypatch.setattr(session, "commit", refuse)
        with pytest.raises(retention.PurgeFailed):
            retention.purge_closed(session, app.extensions["whistle.blobs"], clock(), DAYS)
    assert _blob_files(app) == files_before
    with app.app_context():
        old = db.session().get(Report, three_cases["old"][0])
        assert old.purged_on is None and old.lookup.isdigit()
        assert read_tip(old, officer_key)["what"] == "tip old"
        assert len(old.messages) == 2 and len(old.attachments) == 2
        for attachment in old.attachments:
            assert file_plaintext(app, old, attachment, officer_key).startswith((b"%PDF", b"scan"))
    assert _purge(app) == 1  # and a later run succeeds


def _cli_instance(instance, database_url, retention_days: int) -> None:
    (instance / "config.toml").write_text(
        f'secret_key = "{"s" * 40}"\ndatabase_url = "{database_url}"\nretention_days = {retention_days}\n', "utf-8"
    )


def test_cli_dry_run_changes_nothing_then_purge(app, reporter, officer_key, instance, database_url):
    reporter.submit_ok(what="cli", files=[(io.BytesIO(b"%PDF cli"), "a.pdf")])
    case_id = _case_id(app, "cli", officer_key)
    with app.app_context():  # closed long ago, relative to the real date the CLI uses
        cases.close_case(db.session(), case_id, Outcome.SUBSTANTIATED, dt.date(2000, 1, 1))
    _cli_instance(instance, database_url, 730)
    files = _blob_files(app)
    runner = CliRunner()
    env = {"WHISTLE_DATABASE_URL": None, "WHISTLE_INSTANCE": None, "WHISTLE_RETENTION_DAYS": None}

    dry = runner.invoke(cli, ["purge", "--dry-run", "--instance", str(instance)], env=env)
    assert dry.exit_code == 0, dry.output
    assert f"would purge case {case_id} (closed 2000-01-01)" in dry.output and "1 cases" in dry.output
    assert _blob_files(app) == files
    with app.app_context():
        report = db.session().get(Report, case_id)
        assert report.purged_on is None and read_tip(report, officer_key)["what"] == "cli"

    done = runner.invoke(cli, ["purge", "--instance", str(instance)], env=env)
    assert done.exit_code == 0, done.output
    assert "Purged 1 cases" in done.output
    assert _blob_files(app) == set()
    with app.app_context():
        assert db.session().get(Report, case_id).purged_on is not None

    _cli_instance(instance, database_url, 0)
    off = runner.invoke(cli, ["purge", "--instance", str(instance)], env=env)
    assert off.exit_code == 0 and "Retention is off" in off.output


def test_migration_0002_dates_cases_closed_before_it(instance, database_url):
    engine = create_engine(database_url)
    try:
        migrate.upgrade(engine, "0001")
        blob = b"\0"
        with engine.begin() as conn:
            for case_id, status in ((1, "closed"), (2, "received")):
                conn.execute(text(
                    "INSERT INTO reports (id, lookup, channel, category, status, received_on, ack_due, resolve_due,"
                    " code_salt, code_time_cost, code_memory_cost, code_parallelism, code_verifier,"
                    " reporter_public_key, content) VALUES (:id, :lookup, 'web', 'other', :status, :d, :d, :d,"
                    " :b, 1, 8, 1, :b, :b, :b)"
                ), {"id": case_id, "lookup": str(case_id), "status": status, "d": dt.date(2025, 1, 1), "b": blob})
            for case_id, status, day in ((1, "received", 1), (1, "closed", 5), (1, "closed", 9), (2, "received", 1)):
                conn.execute(text('INSERT INTO status_events (report_id, status, "on") VALUES (:r, :s, :d)'),
                             {"r": case_id, "s": status, "d": dt.date(2025, 1, day)})
        migrate.upgrade(engine)
        with engine.connect() as conn:
            rows = dict(conn.execute(text("SELECT id, closed_on FROM reports ORDER BY id")).all())
        assert {k: (dt.date.fromisoformat(v) if isinstance(v, str) else v) for k, v in rows.items()} == {
            1: dt.date(2025, 1, 9), 2: None}
    finally:
        engine.dispose()
