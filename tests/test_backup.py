"""deploy/backup.sh and deploy/restore.sh, run as an operator would: a restored tip, its
file and its messages decrypt with the officer's key, the archive holds no plaintext and no
private or secret key, and a damaged or altered archive is refused."""

from __future__ import annotations

import io
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from whistle import PROJECT_ROOT, create_app, crypto, db, keyring
from whistle.cli import main as cli
from whistle.models import Author, KeyRole, Report
from whistle.intake import read_tip

from .conftest import CHEAP_COST, POSTGRES_URL, Reporter, file_meta, file_plaintext, install_keys, message_text, officer_says, postgres_reachable

DEPLOY = PROJECT_ROOT / "deploy"


def _env(instance: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHISTLE_", "PG"))}
    env.update(WHISTLE_PYTHON=sys.executable, WHISTLE_INSTANCE=str(instance), **extra)
    return env


def _run(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(DEPLOY / script), *args], env=env, capture_output=True, text=True, timeout=300)


def _backup(instance: Path, out: Path, **extra: str) -> Path:
    done = _run("backup.sh", "--out", str(out), env=_env(instance, **extra))
    assert done.returncode == 0, done.stderr
    archive = Path(done.stdout.strip().splitlines()[-1])
    assert archive.parent == out and re.fullmatch(r"whistle-backup-\d{8}T\d{6}Z\.tar", archive.name)
    return archive


def _app(instance: Path):
    app = create_app({"instance_path": instance, "unsafe_code_cost": CHEAP_COST, "ratelimit_enabled": False})
    app.config["TESTING"] = True
    return app


class Submitted:
    """A tip with a file, an officer's question and the reporter's answer, all marked."""

    def __init__(self, app, officer_key) -> None:
        tag = secrets.token_hex(8)
        self.tip = f"TIP-MARKER-{tag} the clerk took cash"
        self.file = f"FILE-MARKER-{tag}".encode() * 3000  # over one 64 KiB chunk
        self.question = f"QUESTION-MARKER-{tag}"
        self.code = Reporter(app.test_client()).submit_ok(what=self.tip, files=[(io.BytesIO(self.file), "proof.pdf")])
        with app.app_context():
            report_id = db.session().scalars(select(Report.id)).one()
        officer_says(app, report_id, self.question, officer_key)

    def plaintexts(self) -> list[bytes]:
        digits = self.code.replace(" ", "")
        return [self.tip.encode(), self.file[:40], self.question.encode(), self.code.encode(), digits.encode()]

    def check_restored(self, app, key: crypto.PrivateKey) -> None:
        """The restored tip, file and message open with the key and equal what was sent."""
        with app.app_context():
            report = db.session().scalars(select(Report)).one()
            assert read_tip(report, key)["what"] == self.tip
            (attachment,) = report.attachments
            assert file_plaintext(app, report, attachment, key) == self.file
            assert file_meta(report, attachment, key).name == "proof.pdf"
            assert message_text(report, report.messages[0], key) == self.question
        # the reporter's code still opens the case, although the secret key is new
        assert Reporter(app.test_client()).open_case(self.code).status_code == 303


def _scan(blob: bytes, needles: list[bytes]) -> None:
    for needle in needles:
        assert needle not in blob, f"{needle[:30]!r} found in the backup"


def _members(archive: Path) -> list[str]:
    with tarfile.open(archive) as tar:
        return tar.getnames()


@pytest.fixture
def sqlite_instance(tmp_path):
    """An instance made by `whistle init` (its officer key file is inside the instance)."""
    src = tmp_path / "src"
    result = CliRunner().invoke(
        cli, ["init", "--instance", str(src), "--recovery-dir", str(tmp_path / "recovery")],
        env={"WHISTLE_UNSAFE_FAST_KDF": "1", "WHISTLE_INSTANCE": None, "WHISTLE_DATABASE_URL": None},
    )
    assert result.exit_code == 0, result.output
    passphrase = re.search(r'officer key "officer-1".*?passphrase:\s+(\S+)', result.output, re.S).group(1)
    key_file = src / "private-keys" / "officer-1.key"
    officer = keyring.unlock(keyring.read_document(key_file), passphrase)
    return src, officer, [passphrase.encode(), key_file.read_bytes()]


def test_sqlite_backup_and_restore(sqlite_instance, tmp_path):
    src, officer, private = sqlite_instance
    app = _app(src)
    tip = Submitted(app, officer)
    secret_key = app.config["SECRET_KEY"]

    # back up while the service holds a write lock with an uncommitted change
    writer = sqlite3.connect(src / "whistle.sqlite3", timeout=1)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE reports SET category = 'uncommitted'")
    try:
        archive = _backup(src, tmp_path / "backups")
    finally:
        writer.rollback()
        writer.close()
    app.extensions["whistle.engine"].dispose()

    names = _members(archive)
    assert names[0] == "MANIFEST.sha256"
    assert {"FORMAT", "database.sqlite3", "config-public.toml", "public-keys/list.txt"} <= set(names)
    assert sum(n.startswith("blobs/") for n in names) == 1
    assert sum(n.endswith(".pub") for n in names) == 2
    assert not [n for n in names if n.endswith(".key") or "private" in n]
    with tarfile.open(archive) as tar:
        assert {m.mtime for m in tar.getmembers()} == {0}  # no time of arrival of any file
    _scan(archive.read_bytes(), [*tip.plaintexts(), secret_key.encode(), *private])
    assert (archive.with_name(archive.name + ".sha256")).read_text().split()[0] == _sha256(archive)

    dst = tmp_path / "restored"
    done = _run("restore.sh", str(archive), env=_env(dst))
    assert done.returncode == 0, done.stderr
    assert "Restored 1 cases" in done.stdout and "officer-1" in done.stdout
    config = (dst / "config.toml").read_text("utf-8")
    assert secret_key not in config and "Example Municipality" in config
    assert not (dst / "private-keys").exists()
    restored = _app(dst)
    with restored.app_context():
        assert db.session().scalars(select(Report)).one().category == "procurement"  # not the uncommitted change
    tip.check_restored(restored, officer)
    restored.extensions["whistle.engine"].dispose()

    # a second restore onto the now non-empty instance needs --force
    again = _run("restore.sh", str(archive), env=_env(dst))
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr
    forced = _run("restore.sh", "--force", str(archive), env=_env(dst))
    assert forced.returncode == 0, forced.stderr
    restored = _app(dst)
    tip.check_restored(restored, officer)
    restored.extensions["whistle.engine"].dispose()


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tampered_archive_is_refused(sqlite_instance, tmp_path):
    src, officer, _private = sqlite_instance
    app = _app(src)
    Submitted(app, officer)
    app.extensions["whistle.engine"].dispose()
    archive = _backup(src, tmp_path / "backups")

    # one byte of a sealed file changed
    flipped = tmp_path / "flipped.tar"
    shutil.copy(archive, flipped)
    with tarfile.open(archive) as tar:
        blob = next(m for m in tar.getmembers() if m.name.startswith("blobs/"))
    with open(flipped, "r+b") as fh:
        fh.seek(blob.offset_data + 100)
        byte = fh.read(1)
        fh.seek(blob.offset_data + 100)
        fh.write(bytes([byte[0] ^ 1]))
    # a file the manifest does not list
    extra = tmp_path / "extra.tar"
    shutil.copy(archive, extra)
    with tarfile.open(extra, "a") as tar:
        info = tarfile.TarInfo("blobs/" + "0" * 32)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    # not an archive at all
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"not a tar" * 100)

    for bad, why in ((flipped, "does not match its SHA-256"), (extra, "not in the manifest"), (garbage, "not a whistle backup")):
        dst = tmp_path / f"dst-{bad.stem}"
        done = _run("restore.sh", str(bad), env=_env(dst))
        assert done.returncode != 0, bad
        assert why in done.stderr, done.stderr
        assert not dst.exists() or not any(dst.rglob("*")), f"{bad.name}: restore changed {dst}"


def test_restore_refuses_a_database_of_another_kind(sqlite_instance, tmp_path):
    src, _officer, _private = sqlite_instance
    archive = _backup(src, tmp_path / "backups")
    done = _run("restore.sh", str(archive), env=_env(tmp_path / "dst", WHISTLE_DATABASE_URL=POSTGRES_URL))
    assert done.returncode != 0 and "configured for postgresql" in done.stderr


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_databases():
    """Two databases of their own: backup.sh dumps a whole database."""
    if not postgres_reachable():
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}")
    for tool in ("pg_dump", "pg_restore"):  # .ci/run installs postgresql-client when missing
        assert shutil.which(tool), f"{tool} is not installed: apt-get install postgresql-client"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    names = [f"whistle_backup_{role}_{os.getpid()}_{secrets.token_hex(3)}" for role in ("src", "dst")]
    try:
        with admin.connect() as conn:
            for name in names:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"cannot create a PostgreSQL database for the backup test: {type(exc).__name__}")
    base = make_url(POSTGRES_URL)
    yield [base.set(database=name).render_as_string(hide_password=False) for name in names]
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.postgres
def test_postgresql_backup_and_restore(pg_databases, tmp_path, officer_key, recovery_key):
    src_url, dst_url = pg_databases
    src = tmp_path / "src"
    src.mkdir()
    secret_key = "pg-" + secrets.token_hex(24)
    (src / "config.toml").write_text(f'secret_key = "{secret_key}"\ndatabase_url = "{src_url}"\n', "utf-8")
    app = create_app({"instance_path": src, "unsafe_code_cost": CHEAP_COST, "ratelimit_enabled": False},
                     require_recipients=False)
    app.config["TESTING"] = True
    with app.app_context():
        db.create_schema()
        install_keys(app, db.session(), officer_key, recovery_key, app.extensions["whistle.clock"]())
        db.session().commit()
    tip = Submitted(app, officer_key)
    app.extensions["whistle.engine"].dispose()

    archive = _backup(src, tmp_path / "backups")
    names = _members(archive)
    assert "database.pgdump" in names and "database.sqlite3" not in names
    _scan(archive.read_bytes(), [*tip.plaintexts(), secret_key.encode(), src_url.encode()])
    # the dump compresses its tables: scan its SQL text as well
    with tarfile.open(archive) as tar:
        (tmp_path / "dump").write_bytes(tar.extractfile("database.pgdump").read())
    sql = subprocess.run(["pg_restore", "-f", "-", str(tmp_path / "dump")], capture_output=True, check=True).stdout
    assert b"COPY public.reports" in sql
    _scan(sql, tip.plaintexts())

    # restore through WHISTLE_DATABASE_URL into a fresh instance and an empty database
    dst = tmp_path / "restored"
    env = _env(dst, WHISTLE_DATABASE_URL=dst_url)
    done = _run("restore.sh", str(archive), env=env)
    assert done.returncode == 0, done.stderr
    assert "Restored 1 cases" in done.stdout
    assert dst_url not in (dst / "config.toml").read_text("utf-8")
    restored = create_app({"instance_path": dst, "database_url": dst_url, "unsafe_code_cost": CHEAP_COST,
                           "ratelimit_enabled": False})
    restored.config["TESTING"] = True
    tip.check_restored(restored, recovery_key)
    tip.check_restored(restored, officer_key)
    restored.extensions["whistle.engine"].dispose()

    again = _run("restore.sh", str(archive), env=env)
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr
    forced = _run("restore.sh", "--force", str(archive), env=env)
    assert forced.returncode == 0, forced.stderr
    with create_engine(dst_url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM reports")).scalar() == 1
