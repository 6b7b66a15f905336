"""The steps of deploy/backup.sh and deploy/restore.sh that need Python.

Run as `python -m whistle.backup STEP ...`; the shell scripts are the interface
(docs/operations.md). Python does what a shell cannot do safely:

* read the settings exactly as the app does (instance file, then `WHISTLE_*` variables);
* copy a live SQLite database consistently (SQLite's online backup API, WAL included);
* write the archive with every member's time set to 0 and no owner names, so the archive
  does not carry the time each sealed file arrived (docs/data.md: no time of day is kept);
* check every member of an archive against its manifest before anything is extracted,
  and refuse links, devices and paths outside the archive.

An archive holds `FORMAT`, `MANIFEST.sha256` (the `sha256sum` format: check by hand with
`sha256sum -c MANIFEST.sha256` after extracting), the database copy, `blobs/` (the sealed
files), `public-keys/` (one `.pub` file per registered key, and a list) and
`config-public.toml` (the instance file without its secrets). It never holds private keys,
the secret key, or database and Redis URLs (which may hold passwords).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import secrets
import shutil
import shlex
import sqlite3
import sys
import tarfile
import tomllib
from pathlib import Path
from typing import Iterable

FORMAT = "whistle-backup 1"
MANIFEST = "MANIFEST.sha256"
SQLITE_NAME = "database.sqlite3"
PG_NAME = "database.pgdump"
#: Settings never copied into a backup: the secret key, and URLs that may carry passwords.
SECRET_SETTINGS = ("secret_key", "database_url", "ratelimit_storage_uri")
#: Connection parameters a database URL may carry in its query, and libpq's variables.
_LIBPQ_QUERY = {
    "host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE", "options": "PGOPTIONS",
    "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT", "target_session_attrs": "PGTARGETSESSIONATTRS",
}
_BLOB = re.compile(r"[0-9a-f]{32}")
_CHUNK = 1024 * 1024


class BackupError(Exception):
    """Said to the operator as is, and the script stops."""


# --------------------------------------------------------------------------- settings


def _settings(instance: Path):
    from .config import ConfigError, load

    try:
        return load(instance)
    except ConfigError as exc:
        raise BackupError(str(exc)) from None


def shell_settings(instance: Path) -> str:
    """`NAME='value'` lines for the scripts to `eval`: where the database and files are.

    For PostgreSQL the connection goes in libpq's variables (PGHOST...), so that no
    password appears on a command line.
    """
    from sqlalchemy.engine import make_url

    settings = _settings(instance)
    url = make_url(settings.database_url)
    out = {"WB_INSTANCE": str(settings.instance_path), "WB_BLOB_DIR": str(settings.blob_dir)}
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise BackupError("an in-memory SQLite database cannot be backed up")
        out.update(WB_DB_KIND="sqlite", WB_SQLITE_PATH=str(Path(url.database).resolve()))
    elif url.get_backend_name() == "postgresql":
        out["WB_DB_KIND"] = "postgresql"
        pg = {"PGHOST": url.host, "PGPORT": url.port, "PGUSER": url.username, "PGPASSWORD": url.password,
              "PGDATABASE": url.database}
        for param, value in url.query.items():  # e.g. ?host=/var/run/postgresql (a socket)
            if param in _LIBPQ_QUERY and pg.get(_LIBPQ_QUERY[param]) is None:
                pg[_LIBPQ_QUERY[param]] = value if isinstance(value, str) else value[-1]
        out.update({k: str(v) for k, v in pg.items() if v not in (None, "")})
        if "search_path" in out.get("PGOPTIONS", ""):
            print("warning: the database URL sets a search_path; backups cover the whole database "
                  "(give whistle a database of its own)", file=sys.stderr)
    else:
        raise BackupError(f"cannot back up a {url.get_backend_name()} database (SQLite or PostgreSQL only)")
    lines = [f"{k}={shlex.quote(v)}" for k, v in out.items()]
    lines += [f"export {k}" for k in out if k.startswith("PG")]
    return "\n".join(lines) + "\n"


def _engine(instance: Path):
    from .db import make_engine

    return make_engine(_settings(instance).database_url)


# --------------------------------------------------------------------------- backup steps


def sqlite_copy(source: Path, dest: Path) -> None:
    """A consistent copy of a live SQLite database, as one self-contained file."""
    if not source.exists():
        raise BackupError(f"no database at {source}")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # no -wal file beside the copy
        dst.commit()
    finally:
        dst.close()
        src.close()


def public_keys(instance: Path, dest: Path) -> int:
    """Every registered key as a `.pub` file (`whistle keys add` reads it) and a list, so
    that whoever holds a backup can tell which private keys open it."""
    import json

    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from . import crypto, keyring
    from .models import RecipientKey

    dest.mkdir(parents=True, exist_ok=True)
    engine = _engine(instance)
    lines = ["# key id                          role      since       retired     label"]
    try:
        with Session(engine) as session:
            rows = list(session.scalars(select(RecipientKey).order_by(RecipientKey.id)))
            for row in rows:
                info = keyring.KeyInfo(row.role, row.label, crypto.PublicKey.from_bytes(row.public_key))
                doc = keyring.public_key_document(info)
                (dest / f"{info.key_id_hex}.pub").write_text(json.dumps(doc, indent=2) + "\n", "utf-8")
                retired = row.retired_on.isoformat() if row.retired_on else "-"
                lines.append(f"{info.key_id_hex}  {row.role.value:<8}  {row.created_on.isoformat()}  {retired:<10}  {row.label}")
    finally:
        engine.dispose()
    (dest / "list.txt").write_text("\n".join(lines) + "\n", "utf-8")
    # The instance's own public files: the trust anchor (without it the restored service
    # will not start) and the audit trail's anchored heads.
    for name in INSTANCE_PUBLIC_FILES:
        if (instance / name).exists():
            shutil.copyfile(instance / name, dest / name)
    return len(rows)


#: Public files of the instance folder that a backup carries (with the public keys).
INSTANCE_PUBLIC_FILES = ("trust-anchor.json", "audit-anchors.log")


def restore_instance_files(instance: Path, public_keys_dir: Path) -> list[str]:
    """Put the backed-up trust anchor and audit anchors into an instance lacking them."""
    restored = []
    for name in INSTANCE_PUBLIC_FILES:
        source, target = public_keys_dir / name, instance / name
        if source.exists() and not target.exists():
            shutil.copyfile(source, target)
            restored.append(name)
    return restored


def public_config(instance: Path, dest: Path) -> None:
    """The instance file without the secret key and the URLs (line-based, then checked)."""
    source = instance / "config.toml"
    text = source.read_text("utf-8") if source.exists() else ""
    pattern = re.compile(r"^\s*(?:" + "|".join(SECRET_SETTINGS) + r")\s*=")
    kept = [line for line in text.splitlines() if not pattern.match(line)]
    result = "\n".join(kept) + "\n"
    try:
        doc = tomllib.loads(result)
    except tomllib.TOMLDecodeError as exc:
        raise BackupError(f"{source}: cannot leave out the secret settings safely ({exc})") from None
    if any(key in doc for key in SECRET_SETTINGS):
        raise BackupError(f"{source}: a secret setting is written in a form the backup cannot leave out")
    header = "# The instance settings, without secret_key, database_url and ratelimit_storage_uri.\n"
    dest.write_text(header + result, "utf-8")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(staging: Path, blob_dir: Path) -> list[tuple[str, Path]]:
    """(name in the archive, path on disk) for everything the archive holds, sorted."""
    items = [
        (path.relative_to(staging).as_posix(), path)
        for path in staging.rglob("*")
        if path.is_file() and path.name != MANIFEST
    ]
    skipped = 0
    for path in blob_dir.iterdir() if blob_dir.exists() else ():
        if path.is_file() and _BLOB.fullmatch(path.name):
            items.append((f"blobs/{path.name}", path))
        elif path.name != "incoming":
            skipped += 1  # only sealed files go in, whatever else shares the folder
    if skipped:
        print(f"warning: left out {skipped} entries of {blob_dir} that are not sealed files", file=sys.stderr)
    return sorted(items)


def _member(name: str, size: int, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o700 if directory else 0o600
    if directory:
        info.type = tarfile.DIRTYPE
    return info


def pack(staging: Path, blob_dir: Path, out: Path) -> str:
    """Write the archive (manifest first) and return its SHA-256."""
    (staging / "FORMAT").write_text(FORMAT + "\n", "utf-8")
    items = []
    for name, path in _files(staging, blob_dir):
        try:
            items.append((name, path, _sha256(path), path.stat().st_size))
        except FileNotFoundError:  # a purge removed it after the database copy
            print(f"warning: {name} vanished during the backup", file=sys.stderr)
    manifest = "".join(f"{digest}  {name}\n" for name, _p, digest, _s in items).encode()
    partial = out.with_name(out.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_member(MANIFEST, len(manifest)), io.BytesIO(manifest))
            for directory in sorted({name.rsplit("/", 1)[0] for name, *_ in items if "/" in name}):
                tar.addfile(_member(directory, 0, directory=True))
            for name, path, _digest, size in items:
                with open(path, "rb") as fh:
                    tar.addfile(_member(name, size), fh)
            tar.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return _sha256(out)


# --------------------------------------------------------------------------- restore steps


def _safe_name(name: str) -> bool:
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and all(p not in ("", ".", "..") for p in parts)


def unpack(archive: Path, dest: Path) -> int:
    """Check the archive against its manifest while extracting it into the empty `dest`.

    Every file must be listed with a matching SHA-256, every listed file present, nothing
    but files and folders. On any mismatch `dest` is emptied again and `BackupError` says
    what did not match.
    """
    try:
        return _unpack(archive, dest)
    except BaseException:
        for path in sorted(dest.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        raise


def _unpack(archive: Path, dest: Path) -> int:
    try:
        tar = tarfile.open(archive, mode="r:")
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"{archive} is not a whistle backup archive ({exc})") from None
    with tar:
        first = tar.next()
        if first is None or first.name != MANIFEST or not first.isfile():
            raise BackupError(f"{archive} does not start with its manifest")
        expected: dict[str, str] = {}
        for line in tar.extractfile(first).read().decode("utf-8").splitlines():  # type: ignore[union-attr]
            digest, sep, name = line.partition("  ")
            if not sep or not re.fullmatch(r"[0-9a-f]{64}", digest) or not _safe_name(name):
                raise BackupError(f"manifest mismatch: malformed line {line[:80]!r}")
            expected[name] = digest
        seen: set[str] = set()
        for member in tar:
            if member.offset == first.offset:
                continue  # the manifest itself, read above
            name = member.name.rstrip("/")
            if not _safe_name(name):
                raise BackupError(f"manifest mismatch: unsafe path {member.name!r}")
            if member.isdir():
                (dest / name).mkdir(parents=True, exist_ok=True, mode=0o700)
                continue
            if not member.isfile():
                raise BackupError(f"manifest mismatch: {name} is not a regular file")
            if name not in expected or name in seen:
                raise BackupError(f"manifest mismatch: {name} is not in the manifest")
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            digest = hashlib.sha256()
            source = tar.extractfile(member)
            if source is None:
                raise BackupError(f"manifest mismatch: {name} cannot be read")
            with open(target, "xb") as out:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != expected[name]:
                raise BackupError(f"manifest mismatch: {name} does not match its SHA-256")
            seen.add(name)
    missing = sorted(set(expected) - seen)
    if missing:
        raise BackupError(f"manifest mismatch: {missing[0]} is listed but missing ({len(missing)} in all)")
    marker = dest / "FORMAT"
    if not marker.exists() or marker.read_text("utf-8").strip() != FORMAT:
        raise BackupError(f"{archive} is not a {FORMAT} archive")
    return len(seen)


def init_config(instance: Path, public: Path) -> bool:
    """Give a new instance the backed-up settings and a new random secret key.

    The secret key only signs visits' cookies and keys the rate limiter's hashes; no stored
    secret depends on it, so a restored instance works with a new one (open visits end and
    rate-limit counters start again). Returns False when the instance has its own file.
    """
    config = instance / "config.toml"
    if config.exists():
        return False
    instance.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = public.read_text("utf-8") if public.exists() else ""
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f'secret_key = "{secrets.token_urlsafe(48)}"  # new at restore\n')
        fh.write(text)
    return True


def target_state(instance: Path) -> str:
    """'' when the configured database and file store are empty, else what is in them."""
    from sqlalchemy import inspect

    settings = _settings(instance)
    found = []
    url = settings.database_url
    if not url.startswith("sqlite") or Path(url.split(":///", 1)[-1]).exists():
        engine = _engine(instance)
        try:
            tables = inspect(engine).get_table_names()
        finally:
            engine.dispose()
        if tables:
            found.append(f"the database has {len(tables)} tables")
    blobs = settings.blob_dir
    if blobs.exists() and any(p.name != "incoming" for p in blobs.iterdir()):
        found.append(f"{blobs} holds files")
    return " and ".join(found)


def restore_sqlite(source: Path, dest: Path) -> None:
    """Put the restored database file in place (the service must be stopped)."""
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = dest.with_name(dest.name + ".restoring")
    partial.unlink(missing_ok=True)
    sqlite_copy(source, partial)
    os.chmod(partial, 0o600)
    for suffix in ("-wal", "-shm", "-journal"):
        dest.with_name(dest.name + suffix).unlink(missing_ok=True)
    os.replace(partial, dest)


def restore_blobs(source: Path, dest: Path, replace: bool) -> int:
    """Copy the sealed files into the store; `replace` first removes what was there."""
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    if replace:
        for path in _iter_files(dest):
            path.unlink()
    count = 0
    for path in sorted(source.iterdir()) if source.exists() else ():
        target = dest / path.name
        with open(path, "rb") as src, open(target, "wb") as out:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(target, 0o600)
        count += 1
    return count


def _iter_files(folder: Path) -> Iterable[Path]:
    return [p for p in folder.iterdir() if p.is_file()]


def summary(instance: Path) -> str:
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from .models import Attachment, RecipientKey, Report

    engine = _engine(instance)
    try:
        with Session(engine) as session:
            cases = session.scalar(select(func.count()).select_from(Report))
            purged = session.scalar(select(func.count()).select_from(Report).where(Report.purged_on.is_not(None)))
            files = session.scalar(select(func.count()).select_from(Attachment))
            keys = [
                f"  {k.key_id.hex()}  {k.role.value:<8}  {k.label}"
                for k in session.scalars(select(RecipientKey).where(RecipientKey.retired_on.is_(None)))
            ]
    finally:
        engine.dispose()
    return (
        f"Restored {cases} cases ({purged} of them purged) and {files} sealed files.\n"
        "They open with the private key of any of these active recipients:\n" + "\n".join(keys) + "\n"
    )


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m whistle.backup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--instance", default=os.environ.get("WHISTLE_INSTANCE") or "instance")
    sub = parser.add_subparsers(dest="step", required=True)
    steps = {
        "settings": [],
        "sqlite-copy": ["source", "dest"],
        "public-keys": ["dest"],
        "config-public": ["dest"],
        "pack": ["staging", "blob_dir", "out"],
        "unpack": ["archive", "dest"],
        "init-config": ["public"],
        "instance-files": ["public_keys"],
        "target-state": [],
        "restore-sqlite": ["source", "dest"],
        "restore-blobs": ["source", "dest"],
        "summary": [],
    }
    for step, names in steps.items():
        p = sub.add_parser(step)
        for name in names:
            p.add_argument(name, type=Path)
        if step == "restore-blobs":
            p.add_argument("--replace", action="store_true")
    args = parser.parse_args(argv)
    instance = Path(args.instance).resolve()
    try:
        if args.step == "settings":
            sys.stdout.write(shell_settings(instance))
        elif args.step == "sqlite-copy":
            sqlite_copy(args.source, args.dest)
        elif args.step == "public-keys":
            print(f"{public_keys(instance, args.dest)} public keys listed", file=sys.stderr)
        elif args.step == "config-public":
            public_config(instance, args.dest)
        elif args.step == "pack":
            print(pack(args.staging, args.blob_dir, args.out))
        elif args.step == "unpack":
            print(f"{unpack(args.archive, args.dest)} files match the manifest", file=sys.stderr)
        elif args.step == "init-config":
            if init_config(instance, args.public):
                print(f"wrote {instance / 'config.toml'} with the backed-up settings and a new secret key", file=sys.stderr)
        elif args.step == "instance-files":
            for name in restore_instance_files(instance, args.public_keys):
                print(f"restored {instance / name}", file=sys.stderr)
        elif args.step == "target-state":
            state = target_state(instance)
            if state:
                print(state)
                return 3
        elif args.step == "restore-sqlite":
            restore_sqlite(args.source, args.dest)
        elif args.step == "restore-blobs":
            print(f"{restore_blobs(args.source, args.dest, args.replace)} sealed files restored", file=sys.stderr)
        elif args.step == "summary":
            sys.stdout.write(summary(instance))
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
