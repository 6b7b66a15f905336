"""The audit trail: `whistle audit verify` names the first broken entry whatever was done
to the rows (edited, deleted, reordered, the tail cut behind an anchor), concurrent
appends never fork the chain, exports from the command line are recorded, the
supervisors' page reads the trail by case and by person, and the daily anchor timer."""

from __future__ import annotations

import configparser
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from whistle import audit, db
from whistle.cli import main
from whistle.models import Account, AuditEntry, AuditHead, Role

from .conftest import OfficerBrowser

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def trail(make_app, instance, database_url, secret_key):
    """An instance whose trail has six entries, and the settings file the commands read."""
    (instance / "config.toml").write_text(f'secret_key = "{secret_key}"\ndatabase_url = "{database_url}"\n')
    app = make_app()
    with app.app_context():
        for n in range(6):
            audit.record(db.session(), "case_view", None, n + 1, n=n)
        db.session().commit()
    return app


def verify(instance: Path):
    return CliRunner().invoke(main, ["audit", "verify", "--instance", str(instance)], catch_exceptions=False)


def sql(app, statement: str, **params) -> None:
    with app.app_context(), db.engine().begin() as conn:
        conn.execute(text(statement), params)


def ids(app) -> dict[int, int]:
    with app.app_context():
        return dict(db.session().execute(select(AuditEntry.seq, AuditEntry.id)).all())


class TestVerify:
    def test_whole_chain_passes(self, trail, instance):
        result = verify(instance)
        assert result.exit_code == 0 and "whole: 6 entries" in result.output

    def test_an_edited_row_is_named(self, trail, instance):
        sql(trail, "UPDATE audit_entries SET detail = :detail WHERE seq = 3", detail='{"n":9}')
        result = verify(instance)
        assert result.exit_code != 0 and "broken at entry 3: was altered" in result.output

    def test_an_edited_link_is_named(self, trail, instance):
        sql(trail, "UPDATE audit_entries SET prev_hash = hash WHERE seq = 4")
        result = verify(instance)
        assert result.exit_code != 0 and "broken at entry 4: does not follow" in result.output

    def test_a_deleted_row_is_named(self, trail, instance):
        sql(trail, "DELETE FROM audit_entries WHERE seq = 3")
        result = verify(instance)
        assert result.exit_code != 0 and "broken at entry 3: missing or moved (found entry 4" in result.output

    def test_reordered_rows_are_named(self, trail, instance):
        row = ids(trail)
        sql(trail, "UPDATE audit_entries SET id = :tmp WHERE seq = 3", tmp=-1)
        sql(trail, "UPDATE audit_entries SET id = :id WHERE seq = 4", id=row[3])
        sql(trail, "UPDATE audit_entries SET id = :id WHERE seq = 3", id=row[4])
        result = verify(instance)
        assert result.exit_code != 0 and "broken at entry 3: missing or moved (found entry 4" in result.output

    def test_renumbered_rows_are_named(self, trail, instance):
        # Moving an entry by its number rather than its row: the hash covers the number.
        sql(trail, "UPDATE audit_entries SET seq = -1 WHERE seq = 5")
        sql(trail, "UPDATE audit_entries SET seq = 5 WHERE seq = 6")
        sql(trail, "UPDATE audit_entries SET seq = 6 WHERE seq = -1")
        result = verify(instance)
        assert result.exit_code != 0 and "broken at entry 5" in result.output

    def test_a_cut_tail_with_its_head_moved_back_is_caught_by_the_anchor(self, trail, instance):
        anchored = CliRunner().invoke(main, ["audit", "anchor", "--instance", str(instance)], catch_exceptions=False)
        assert anchored.exit_code == 0 and "Anchored entry 6" in anchored.output
        with trail.app_context():
            kept = db.session().scalar(select(AuditEntry).where(AuditEntry.seq == 4))
            seq, digest = kept.seq, kept.hash
        sql(trail, "DELETE FROM audit_entries WHERE seq > 4")
        sql(trail, "UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1", seq=seq, hash=digest)
        result = verify(instance)
        assert result.exit_code != 0 and "broken at entry 6: is anchored outside the database" in result.output
        # Without the anchor file, the shortened chain is whole: that is what the anchor is for.
        (instance / "audit-anchors.log").unlink()
        assert verify(instance).exit_code == 0

    def test_a_cut_tail_is_named_by_the_head(self, trail, instance):
        sql(trail, "DELETE FROM audit_entries WHERE seq > 4")
        result = verify(instance)
        assert result.exit_code != 0 and "broken at entry 5: the chain's recorded head" in result.output


def test_concurrent_appends_never_fork_the_chain(trail):
    """Two writers at once: the head row's lock makes one wait for the other."""
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(tag: str) -> None:
        try:
            with trail.app_context():
                maker = trail.extensions["whistle.sessionmaker"]
                start.wait()
                for n in range(40):
                    with maker() as session:
                        audit.record(session, "case_view", None, 1, writer=tag, n=n)
                        session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(tag,)) for tag in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with trail.app_context():
        session = db.session()
        seqs = list(session.scalars(select(AuditEntry.seq).order_by(AuditEntry.id)))
        assert seqs == list(range(1, 87))
        assert audit.verify(session) is None
        assert session.get(AuditHead, 1).seq == 86


def test_command_line_export_is_recorded(trail, instance, reporter, tmp_path):
    reporter.submit_ok()
    with trail.app_context():
        case_id = db.session().scalar(text("SELECT max(id) FROM reports"))
    result = CliRunner().invoke(
        main, ["case", "export", str(case_id), "--out", str(tmp_path / "c.zip"), "--instance", str(instance)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    with trail.app_context():
        last = db.session().scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert (last.action, last.case_id, last.actor) == ("case_export", case_id, "system")
    assert verify(instance).exit_code == 0


class TestPage:
    @pytest.fixture
    def supervisor(self, officer_app, make_account, wallclock) -> OfficerBrowser:
        browser = OfficerBrowser(officer_app.test_client(), wallclock)
        browser.sign_in(make_account("sup", role=Role.SUPERVISOR))
        return browser

    def _seqs(self, html: str) -> list[int]:
        import re

        return [int(n) for n in re.findall(r"<tr>\s*<td>(\d+)</td>", html)]

    def test_filters_by_case_and_by_person_and_pages(self, officer_app, supervisor, make_account, monkeypatch):
        make_account("officer-a")
        with officer_app.app_context():
            session = db.session()
            officer = session.scalar(select(Account).where(Account.username == "officer-a"))
            for n in range(7):
                audit.record(session, "case_view", officer, 41 + n % 2)
            session.commit()
        by_case = supervisor.client.get("/audit?case=42&lang=en").get_data(as_text=True)
        with officer_app.app_context():
            wanted = list(db.session().scalars(select(AuditEntry.seq).where(AuditEntry.case_id == 42).order_by(AuditEntry.seq.desc())))
        assert self._seqs(by_case) == wanted and len(wanted) == 4  # three views and this reading
        by_person = supervisor.client.get(f"/audit?person={officer.id}").get_data(as_text=True)
        with officer_app.app_context():
            wanted = list(db.session().scalars(select(AuditEntry.seq).where(AuditEntry.actor_id == officer.id).order_by(AuditEntry.seq.desc())))
        assert self._seqs(by_person) == wanted
        monkeypatch.setattr(audit, "PER_PAGE", 5)
        first = supervisor.client.get("/audit?lang=en").get_data(as_text=True)
        second = supervisor.client.get("/audit?page=2&lang=en").get_data(as_text=True)
        assert len(self._seqs(first)) == 5 and "page 1 of" in first and "Next page" in first
        # Each reading adds its own entry at the top, moving what page 2 starts with by one.
        low = min(self._seqs(first))
        assert self._seqs(second) == list(range(low, low - 5, -1))

    def test_reading_the_trail_is_recorded(self, officer_app, supervisor):
        supervisor.client.get("/audit?case=7")
        with officer_app.app_context():
            last = db.session().scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        assert (last.action, last.case_id, last.actor) == ("audit_viewed", 7, "sup")

    def test_bad_filters_are_a_page_not_an_error(self, supervisor):
        for query in ("case=abc", "case=-3", "case=99999999999999999999", "person=zz", "page=0", "page=x"):
            assert supervisor.client.get(f"/audit?{query}").status_code == 200, query

    @pytest.mark.parametrize("role", [Role.OFFICER, Role.ADMIN])
    def test_only_supervisors_read_it(self, officer_app, make_account, officer_browser, role):
        officer_browser.sign_in(make_account("other", role=role))
        assert officer_browser.client.get("/audit").status_code == 403


@pytest.mark.parametrize("job, command", [("whistle-audit-anchor", "whistle audit anchor"), ("whistle-notify", "whistle notify")])
def test_systemd_timer_runs_its_command(job, command):
    service, timer = (configparser.ConfigParser(strict=False, interpolation=None) for _ in range(2))
    service.read(ROOT / "deploy" / "systemd" / f"{job}.service")
    timer.read(ROOT / "deploy" / "systemd" / f"{job}.timer")
    assert service["Service"]["Type"] == "oneshot" and service["Service"]["User"] == "whistle"
    assert service["Service"]["ExecStart"].endswith(command.replace("whistle ", "/.venv/bin/whistle ", 1))
    assert timer["Timer"]["OnCalendar"] and timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"
