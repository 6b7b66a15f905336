"""A full disk: on a real, small filesystem (a size-limited tmpfs), the blob store and the
SQLite database run out of space (or of inodes) under a reporter's submission.

The reporter gets the translated 503 "nothing was kept" with what they typed, nothing is
half-stored (no row, no stored file, no empty or partial file in `incoming/`), and once
space returns the same running app stores the next tip without a restart.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
from pathlib import Path

import pytest

from whistle import crypto, db
from whistle.models import Attachment, Message, Report

from .conftest import TIP, Reporter

FULL = "could not be stored just now, and nothing was kept"
PAGE = 4096  # tmpfs allocates whole pages


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MiB tmpfs with 64 inodes, unmounted at teardown (lazily if something still
    holds a file open there, so that no mount is ever left behind)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    root = tmp_path / "disk"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,nr_inodes=64,mode=0700", "tmpfs", str(root)], check=True)
    try:
        yield root
    finally:
        if subprocess.run(["umount", str(root)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(root)], check=True)


def _fill(root: Path, leave: int = 0) -> Path:
    """Fill the filesystem's free space, then give `leave` bytes of it back."""
    filler = root / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for size in (65536, 4096, 1):
            try:
                while fh.write(b"\0" * size):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    if leave:
        os.truncate(filler, filler.stat().st_size - leave)
    return filler


def _use_all_inodes(root: Path) -> list[Path]:
    made = []
    try:
        while True:
            made.append(root / f"inode{len(made)}")
            made[-1].touch()
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
        made.pop()
    return made


def _counts(app) -> tuple[int, int, int]:
    with app.app_context():
        session = db.session()
        return session.query(Report).count(), session.query(Message).count(), session.query(Attachment).count()


def _files(app) -> tuple[list[str], list[str]]:
    """(stored blobs, incoming blobs), by name."""
    store = app.extensions["whistle.blobs"]
    return (
        sorted(p.name for p in store.root.iterdir() if p.is_file()),
        sorted(p.name for p in store.incoming.iterdir()),
    )


def _refused_with_text_kept(response, typed: str, files: bool = True) -> None:
    html = response.get_data(as_text=True)
    assert response.status_code == 503, html[:1500]
    assert FULL in html and typed in html
    assert 'class="code"' not in html
    assert ("attach them again" in html) is files


def _evidence(size: int = 300_000):
    return [(io.BytesIO(b"%PDF-1.4\n" + os.urandom(size)), "evidence.pdf")]


class TestFullBlobStore:
    def test_full_blob_store_report_gets_503_with_text_kept(self, small_disk, make_app):
        app = make_app(blob_dir=str(small_disk / "blobs"))
        reporter = Reporter(app.test_client())
        _fill(small_disk)
        _refused_with_text_kept(reporter.submit(files=_evidence()), TIP["what"])
        assert _counts(app) == (0, 0, 0)
        assert _files(app) == ([], [])

    def test_full_blob_store_partial_file_is_removed(self, small_disk, make_app):
        app = make_app(blob_dir=str(small_disk / "blobs"))
        reporter = Reporter(app.test_client())
        _fill(small_disk, leave=512 * 1024)  # the file starts to go in, then the disk fills
        _refused_with_text_kept(reporter.submit(files=_evidence(1_200_000)), TIP["what"])
        assert _counts(app) == (0, 0, 0)
        assert _files(app) == ([], [])

    def test_full_blob_store_second_file_refused_first_removed(self, small_disk, make_app):
        app = make_app(blob_dir=str(small_disk / "blobs"))
        reporter = Reporter(app.test_client())
        _fill(small_disk, leave=400 * 1024)
        files = [(io.BytesIO(os.urandom(100_000)), "fits.pdf"), *_evidence(900_000)]
        _refused_with_text_kept(reporter.submit(files=files), TIP["what"])
        assert _counts(app) == (0, 0, 0)
        assert _files(app) == ([], [])

    def test_no_inodes_left_report_gets_503_with_text_kept(self, small_disk, make_app):
        app = make_app(blob_dir=str(small_disk / "blobs"))
        reporter = Reporter(app.test_client())
        _use_all_inodes(small_disk)
        _refused_with_text_kept(reporter.submit(files=_evidence(1000)), TIP["what"])
        assert _counts(app) == (0, 0, 0)
        assert _files(app) == ([], [])

    def test_full_blob_store_reply_gets_503_with_text_kept(self, small_disk, make_app):
        app = make_app(blob_dir=str(small_disk / "blobs"))
        reporter = Reporter(app.test_client())
        reporter.open_case(reporter.submit_ok())
        _fill(small_disk)
        typed = "The contract number is 12/2569 ผู้รับเหมา"
        _refused_with_text_kept(reporter.reply(typed, files=_evidence()), typed)
        assert _counts(app) == (1, 0, 0)
        assert _files(app) == ([], [])

    def test_full_blob_store_recovers_when_space_returns(self, small_disk, make_app):
        app = make_app(blob_dir=str(small_disk / "blobs"))
        reporter = Reporter(app.test_client())
        filler = _fill(small_disk)
        for _ in range(3):
            assert reporter.submit(files=_evidence()).status_code == 503
        assert _files(app) == ([], [])
        filler.unlink()
        reporter.submit_ok(files=_evidence())
        reporter.open_case(reporter.submit_ok(files=_evidence()))
        assert reporter.reply("More details", files=_evidence(1000)).status_code == 303
        stored, incoming = _files(app)
        assert len(stored) == 3 and incoming == []
        assert _counts(app) == (2, 1, 3)


class TestFullDatabase:
    """SQLite's file on the full filesystem: "database or disk is full"."""

    @pytest.fixture
    def database_url(self, small_disk) -> str:
        return f"sqlite:///{small_disk / 'whistle.sqlite3'}"

    @pytest.fixture
    def app_on_disk(self, small_disk, make_app):
        return make_app(blob_dir=str(small_disk / "blobs"))

    def test_full_database_disk_report_gets_503_with_text_kept(self, app_on_disk, small_disk):
        reporter = Reporter(app_on_disk.test_client())
        _fill(small_disk)
        _refused_with_text_kept(reporter.submit(), TIP["what"], files=False)
        assert _counts(app_on_disk) == (0, 0, 0)

    def test_full_database_disk_report_with_file_gets_503(self, app_on_disk, small_disk):
        reporter = Reporter(app_on_disk.test_client())
        _fill(small_disk)
        _refused_with_text_kept(reporter.submit(files=_evidence(20_000)), TIP["what"])
        assert _counts(app_on_disk) == (0, 0, 0)
        assert _files(app_on_disk) == ([], [])

    def test_database_full_after_files_fit_removes_them(self, app_on_disk, small_disk, monkeypatch):
        """The files go in, then the database cannot grow: the moved files come out again."""
        from whistle.storage import LocalBlobStore

        claimed = []
        real_claim = LocalBlobStore.claim
        monkeypatch.setattr(LocalBlobStore, "claim", lambda self, name: claimed.append(name) or real_claim(self, name))
        reporter = Reporter(app_on_disk.test_client())
        reporter.submit_ok()  # the schema and a first row are on the disk
        files = _evidence(150_000)
        sealed = crypto.sealed_file_size(len(files[0][0].getvalue()))
        _fill(small_disk, leave=-(-sealed // PAGE) * PAGE)  # room for the file, none for the journal
        _refused_with_text_kept(reporter.submit(files=files), TIP["what"])
        assert len(claimed) == 1  # the file was whole and moved in before the commit failed
        assert _counts(app_on_disk)[0] == 1
        assert _files(app_on_disk) == ([], [])

    def test_full_database_disk_recovers_when_space_returns(self, app_on_disk, small_disk):
        reporter = Reporter(app_on_disk.test_client())
        filler = _fill(small_disk)
        assert reporter.submit(files=_evidence(20_000)).status_code == 503
        assert reporter.submit().status_code == 503
        filler.unlink()
        code = reporter.submit_ok(files=_evidence(20_000))
        assert reporter.open_case(code).status_code == 303
        assert _counts(app_on_disk) == (1, 0, 1)
        assert _files(app_on_disk)[1] == []


class TestFailingDisk:
    """Errors a full or failing disk gives after the writes went through."""

    def test_fsync_failure_gets_503_and_leaves_no_file(self, app, monkeypatch):
        def no_space(_fd):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr("whistle.uploads.os.fsync", no_space)
        reporter = Reporter(app.test_client())
        _refused_with_text_kept(reporter.submit(files=_evidence(1000)), TIP["what"])
        assert _counts(app) == (0, 0, 0)
        assert _files(app) == ([], [])

    def test_claim_rename_failure_gets_503_and_leaves_no_file(self, app, monkeypatch):
        from whistle.storage import LocalBlobStore

        real_claim = LocalBlobStore.claim
        moved = []

        def second_claim_fails(self, name):
            if moved:
                raise OSError(errno.EIO, "Input/output error")
            real_claim(self, name)
            moved.append(name)

        monkeypatch.setattr(LocalBlobStore, "claim", second_claim_fails)
        reporter = Reporter(app.test_client())
        files = [(io.BytesIO(b"one"), "one.pdf"), (io.BytesIO(b"two"), "two.pdf")]
        _refused_with_text_kept(reporter.submit(files=files), TIP["what"])
        assert moved
        assert _counts(app) == (0, 0, 0)
        assert _files(app) == ([], [])

    def test_times_not_set_back_still_shows_the_code(self, app, monkeypatch):
        from whistle.storage import LocalBlobStore

        def read_only(self, name, day):
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr(LocalBlobStore, "blur_times", read_only)
        Reporter(app.test_client()).submit_ok(files=_evidence(1000))
        assert _counts(app) == (1, 0, 1)


def test_storage_refusal_is_logged_without_the_path(app, monkeypatch, caplog):
    def no_space(_fd):
        raise OSError(errno.ENOSPC, "No space left on device", "/srv/secret/evidence-name.pdf")

    monkeypatch.setattr("whistle.uploads.os.fsync", no_space)
    Reporter(app.test_client()).submit(files=_evidence(1000))
    assert "refused an upload" in caplog.text
    assert "evidence" not in caplog.text and "/srv" not in caplog.text
