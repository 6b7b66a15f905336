"""The `whistle` command: create an instance, serve it, manage keys, export and open cases.

Run `whistle --help` and `whistle COMMAND --help`. The key commands are explained step by
step for IT staff and officers in keys/README.md.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from sqlalchemy import select
from sqlalchemy.engine import make_url

from . import bundles, create_app, crypto, db, keyring, migrate, reports, retention
from .config import ConfigError
from .extensions import today
from .models import Author, KeyRole, Report

DEFAULT_INSTANCE = "instance"


def _instance(path: str | None) -> Path:
    return Path(path or os.environ.get("WHISTLE_INSTANCE") or DEFAULT_INSTANCE).resolve()


def _app(instance: Path, require_recipients: bool = False):
    try:
        return create_app({"instance_path": instance}, require_recipients=require_recipients)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _instance_app(instance: str | Path | None, require_recipients: bool = False) -> Iterator:
    """The instance's app, inside its app context (for `db.session()`, `today()`...)."""
    path = instance if isinstance(instance, Path) else _instance(instance)
    app = _app(path, require_recipients)
    with app.app_context():
        yield app


def _generated_passphrase() -> str:
    """Six groups of five lowercase letters and digits: about 148 bits, easy to copy."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(6))


def _ask_passphrase(new: bool) -> str:
    env = os.environ.get("WHISTLE_PASSPHRASE")
    if env:
        return env
    return click.prompt(
        "Passphrase (at least 12 characters)" if new else "Passphrase",
        hide_input=True,
        confirmation_prompt=new,
    )


def _new_keypair(role: KeyRole, label: str, out: Path, passphrase: str, kdf: dict | None = None) -> keyring.KeyInfo:
    public_out = out.with_name(out.name.removesuffix(".key") + ".pub")
    for path in (out, public_out):
        if path.exists():
            raise click.ClickException(f"{path} exists; choose another file name.")
    private = crypto.PrivateKey.generate()
    doc = keyring.private_key_document(private, passphrase, role, label, kdf)
    info = keyring.key_info(doc)
    keyring.write_new_file(public_out, keyring.public_key_document(info))
    keyring.write_new_file(out, doc)
    return info


def _register(instance: Path, info: keyring.KeyInfo) -> None:
    with _instance_app(instance):
        keyring.register(db.session(), info, today())
        db.session().commit()


@click.group()
def main() -> None:
    """whistle: anonymous corruption-whistleblower intake."""


# --------------------------------------------------------------------------- instance


def _test_kdf() -> dict | None:
    """Cheap key-file KDF for the test suite only (WHISTLE_UNSAFE_FAST_KDF=1)."""
    if os.environ.get("WHISTLE_UNSAFE_FAST_KDF") == "1":
        return {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}
    return None


def create_instance(instance: Path, recovery_dir: Path, echo=click.echo) -> None:
    """Make a new instance: config with a random secret key, the database, the first
    officer key pair and the recovery key pair; print once what was made and where."""

    config_file = instance / "config.toml"
    if config_file.exists():
        raise click.ClickException(f"{config_file} exists already: this instance was created before.")
    instance.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(config_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(
            "# whistle instance settings; WHISTLE_<NAME> environment variables override them.\n"
            "# The secret key signs visits' cookies and keys the rate limiter's hashes: keep it secret.\n"
            f'secret_key = "{secrets.token_urlsafe(48)}"\n'
            'organisation_th = "เทศบาลตัวอย่าง"\n'
            'organisation_en = "Example Municipality"\n'
            'general_complaints_url = ""\n'
        )
    with _instance_app(instance) as app:
        db.create_schema()
        database = make_url(app.extensions["whistle.settings"].database_url).render_as_string(hide_password=True)
    officer_pass, recovery_pass = _generated_passphrase(), _generated_passphrase()
    officer_file = instance / "private-keys" / "officer-1.key"
    recovery_file = recovery_dir / "recovery.key"
    officer = _new_keypair(KeyRole.OFFICER, "officer-1", officer_file, officer_pass, _test_kdf())
    recovery = _new_keypair(KeyRole.RECOVERY, "recovery", recovery_file, recovery_pass, _test_kdf())
    for info in (officer, recovery):
        _register(instance, info)
    echo(
        f"""
Created a whistle instance in {instance}
  settings and a random secret key: {config_file}
  database:                         {database}
  sealed file store:                {instance / 'blobs'}

First officer key "officer-1" (key id {officer.key_id_hex})
  private key file: {officer_file}
  passphrase:       {officer_pass}

Recovery key (key id {recovery.key_id_hex})
  private key file: {recovery_file}
  passphrase:       {recovery_pass}

These passphrases are shown only now. Write them down; without them, and without the key
files, no tip can ever be read. Move the recovery key file and its passphrase OFF this
machine (see keys/README.md), and give officer-1 its passphrase in person.
"""
    )


@main.command()
@click.option("--instance", "instance_path", help="Instance folder (default: ./instance or $WHISTLE_INSTANCE).")
@click.option("--recovery-dir", default="recovery-key", show_default=True, help="Where to write the recovery key.")
def init(instance_path: str | None, recovery_dir: str) -> None:
    """Create a new instance (SQLite, first officer key, recovery key, secret key)."""
    create_instance(_instance(instance_path), Path(recovery_dir).resolve())


#: How long `whistle serve` waits for a request's line and headers (and for the next
#: request on a kept-alive connection), as nginx's client_header_timeout does in production.
HEADER_SECONDS = 30.0


def _addressless_server():
    """The embedded server's classes, which never write a client's address: Werkzeug's
    own log lines start with it, and Python's socketserver prints it, with a traceback,
    when handling a connection fails."""
    from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

    from .wsgi_guard import watchdog

    http_log = logging.getLogger("whistle.http")

    class AddresslessHandler(WSGIRequestHandler):
        """Logs method, path and status, never the client's address nor what a malformed
        request sent; a request's headers must arrive within HEADER_SECONDS."""

        # An answer to a request line that could not be read starts with a status line
        # (under Python's default, HTTP/0.9, it would be a bare page).
        default_request_version = "HTTP/1.0"

        def handle_one_request(self) -> None:
            deadline = time.monotonic() + HEADER_SECONDS
            self._headers_watch = watchdog.watch(self.connection, lambda: deadline)
            try:
                super().handle_one_request()
            finally:
                self._headers_watch.cancel()

        def parse_request(self) -> bool:
            parsed = super().parse_request()
            self._headers_watch.cancel()
            if parsed and self._headers_watch.fired:  # the headers stopped short of their end
                self.send_error(408)
                return False
            return parsed

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            # A request line that could not be parsed leaves no command or path (or those of
            # the previous request on the connection): log the answer alone.
            if not getattr(self, "command", None):
                http_log.info("malformed request %s", code)
                return
            path = "".join(c if c.isprintable() else "?" for c in self.path.split("?", 1)[0][:200])
            http_log.info("%s %s %s", self.command, path, code)

        def log_error(self, format: str, *args: object) -> None:
            http_log.warning("request error")

        def log(self, type: str, message: str, *args: object) -> None:
            http_log.warning("server %s (details withheld)", type)

    class AddresslessServer(ThreadedWSGIServer):
        def handle_error(self, request: object, client_address: object) -> None:
            kind, _value, tb = sys.exc_info()
            frames = "".join(traceback.format_tb(tb))
            name = kind.__name__ if kind else "Exception"
            http_log.error("Traceback (most recent call last):\n%s%s (message withheld)", frames, name)

    return AddresslessServer, AddresslessHandler


@main.command()
@click.option("--instance", "instance_path")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve(instance_path: str | None, host: str, port: int) -> None:
    """Serve the instance on the embedded default, creating it first if it does not exist.

    For a laptop or a trial. Production runs gunicorn behind nginx (README, deploy/).
    """
    instance = _instance(instance_path)
    if not (instance / "config.toml").exists():
        create_instance(instance, Path("recovery-key").resolve())
    app = _app(instance, require_recipients=True)

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    server_class, handler = _addressless_server()
    server = server_class(host, port, app, handler=handler)
    click.echo(f"Serving whistle on http://{host}:{server.port}/ (Ctrl+C to stop)")
    server.serve_forever()


# --------------------------------------------------------------------------- keys


@main.group()
def keys() -> None:
    """Create, list, retire and re-wrap recipient keys."""


def _new_key_command(role: KeyRole, out: str, label: str, instance_path: str | None, register: bool) -> None:
    out_path = Path(out)
    if out_path.exists():
        raise click.ClickException(f"{out_path} exists; choose another file name.")
    passphrase = _ask_passphrase(new=True)
    try:
        info = _new_keypair(role, label, out_path, passphrase, _test_kdf())
    except keyring.KeyFileError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Wrote {out_path} (private, sealed under the passphrase) and its public key file.")
    click.echo(f"Key id: {info.key_id_hex}")
    if register:
        _register(_instance(instance_path), info)
        click.echo("Registered: new tips are sealed to this key from now on.")
        click.echo("Existing cases are not yet readable with it: run `whistle keys rewrap` (keys/README.md).")


@keys.command("new-officer")
@click.option("--label", required=True, help="Who holds the key, e.g. a role name.")
@click.option("--out", required=True, help="Private key file to write (e.g. officer-2.key).")
@click.option("--instance", "instance_path")
@click.option("--register/--no-register", default=True, show_default=True, help="Register the public key in the instance.")
def new_officer(label: str, out: str, instance_path: str | None, register: bool) -> None:
    """Create an officer key pair, the private key sealed under a passphrase."""
    _new_key_command(KeyRole.OFFICER, out, label, instance_path, register)


@keys.command("new-recovery")
@click.option("--out", required=True, help="Private key file to write; move it offline.")
@click.option("--instance", "instance_path")
@click.option("--register/--no-register", default=True, show_default=True)
def new_recovery(out: str, instance_path: str | None, register: bool) -> None:
    """Create the offline recovery key pair."""
    _new_key_command(KeyRole.RECOVERY, out, "recovery", instance_path, register)


@keys.command("add")
@click.argument("public_key_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--instance", "instance_path")
def add_key(public_key_file: str, instance_path: str | None) -> None:
    """Register a public key file (.pub) made on another machine."""
    try:
        info = keyring.key_info(keyring.read_document(Path(public_key_file)))
        _register(_instance(instance_path), info)
    except keyring.KeyFileError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Registered {info.role.value} key {info.key_id_hex} ({info.label}).")


@keys.command("list")
@click.option("--instance", "instance_path")
def list_keys(instance_path: str | None) -> None:
    """List the recipients a new tip will be sealed to."""
    with _instance_app(instance_path):
        rows = keyring.active_keys(db.session())
        for row in rows:
            click.echo(f"{row.key_id.hex()}  {row.role.value:<8}  {row.label}  (since {row.created_on.isoformat()})")
        try:
            keyring.recipients(db.session())
        except keyring.MissingRecipients as exc:
            raise click.ClickException(f"New tips cannot be accepted: {exc}") from None


@keys.command("retire")
@click.argument("key_id")
@click.option("--instance", "instance_path")
@click.option("--force", is_flag=True, help="Retire even the last key of its role (the service then refuses tips).")
def retire_key(key_id: str, instance_path: str | None, force: bool) -> None:
    """Stop sealing new tips to a key. Then run `whistle keys rewrap` to remove its access."""
    with _instance_app(instance_path):
        try:
            keyring.retire(db.session(), key_id, today(), allow_last=force)
        except (keyring.KeyFileError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
        db.session().commit()
    click.echo(f"Retired {key_id}. Run `whistle keys rewrap --key FILE` so stored cases drop it.")


def _unlock_file(path: str) -> crypto.PrivateKey:
    try:
        return keyring.unlock(keyring.read_document(Path(path)), _ask_passphrase(new=False))
    except keyring.KeyFileError as exc:
        raise click.ClickException(str(exc)) from None


@keys.command("rewrap")
@click.option("--key", "key_file", required=True, help="A private key that opens every stored case (an officer's or the recovery key).")
@click.option("--instance", "instance_path")
def rewrap(key_file: str, instance_path: str | None) -> None:
    """Seal every stored case to exactly the active recipients (after adding or retiring a key)."""

    private = _unlock_file(key_file)
    with _instance_app(instance_path):
        try:
            count = keyring.rewrap_all(db.session(), private)
        except crypto.OpenError:
            db.session().rollback()
            raise click.ClickException("This key does not open every stored item; nothing was changed.") from None
        except keyring.MissingRecipients as exc:
            raise click.ClickException(str(exc)) from None
        db.session().commit()
    click.echo(f"Re-wrapped {count} items for the active recipients.")


# --------------------------------------------------------------------------- cases


@main.group()
def case() -> None:
    """Export cases and write to reporters."""


@case.command("list")
@click.option("--instance", "instance_path")
def list_cases(instance_path: str | None) -> None:
    """Cases with their workflow metadata (never their content)."""
    with _instance_app(instance_path):
        for r in db.session().scalars(select(Report).order_by(Report.id)):
            click.echo(
                f"{r.id:>6}  {r.received_on.isoformat()}  {r.status.value:<13} {r.category:<22} "
                f"ack by {r.ack_due.isoformat()}  resolve by {r.resolve_due.isoformat()}"
            )


@case.command("export")
@click.argument("case_id", type=int)
@click.option("--out", required=True, help="Bundle file to write (.zip).")
@click.option("--instance", "instance_path")
def export(case_id: int, out: str, instance_path: str | None) -> None:
    """Export one case as a ciphertext bundle, to open offline with `whistle decrypt`."""
    with _instance_app(instance_path) as app:
        try:
            path = bundles.export_case(db.session(), app.extensions["whistle.blobs"], case_id, Path(out))
        except (bundles.BundleError, FileExistsError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"Wrote {path} (ciphertext only).")


@case.command("message")
@click.argument("case_id", type=int)
@click.option("--text", required=True, help="The message to the reporter.")
@click.option("--instance", "instance_path")
def message(case_id: int, text: str, instance_path: str | None) -> None:
    """Write to a case's reporter. Needs no private key: messages are sealed, not opened."""
    with _instance_app(instance_path, require_recipients=True) as app:
        try:
            reports.add_message(db.session(), app.extensions["whistle.blobs"], case_id, Author.OFFICER, text, [], today())
        except reports.UnknownCode:
            raise click.ClickException(f"no case {case_id}") from None
    click.echo(f"Message sealed to case {case_id}'s reporter and the officers.")


# --------------------------------------------------------------------------- database


@main.group("db")
def db_group() -> None:
    """Schema migrations."""


@db_group.command("upgrade")
@click.option("--instance", "instance_path")
def db_upgrade(instance_path: str | None) -> None:
    """Bring the database to the current schema (safe to run again)."""
    with _instance_app(instance_path):
        migrate.upgrade(db.engine())
    click.echo("The database schema is current.")


@db_group.command("revision")
@click.option("-m", "--message", required=True, help="Why the schema changes.")
@click.option("--instance", "instance_path")
def db_revision(message: str, instance_path: str | None) -> None:
    """For developers: write a migration for the changes made to models.py."""
    with _instance_app(instance_path):
        migrate.new_revision(db.engine(), message)


@main.command("sweep")
@click.option("--instance", "instance_path")
@click.option("--older-than", default=3600, show_default=True, help="Seconds an unreferenced file must be old.")
def sweep(instance_path: str | None, older_than: int) -> None:
    """Delete sealed files no record points to (left by a crash mid-request)."""
    from .models import Attachment

    with _instance_app(instance_path) as app:
        referenced = set(db.session().scalars(select(Attachment.blob_name)))
        removed = app.extensions["whistle.blobs"].sweep(referenced, older_than)
    click.echo(f"Removed {removed} unreferenced sealed files.")


@main.command("purge")
@click.option("--instance", "instance_path")
@click.option("--dry-run", is_flag=True, help="List the cases that would be purged; change nothing.")
def purge(instance_path: str | None, dry_run: bool) -> None:
    """Purge cases closed more than `retention_days` ago: their content, messages and files
    go; what the statistics count stays. Run daily (deploy/systemd/whistle-purge.timer)."""
    with _instance_app(instance_path) as app:
        days = app.extensions["whistle.settings"].retention_days
        if days <= 0:
            click.echo("Retention is off (retention_days = 0): nothing purged.")
            return
        now = today()
        before = retention.cutoff(now, days).isoformat()
        if dry_run:
            due = retention.due_for_purge(db.session(), now, days)
            for case_id, closed_on in due:
                click.echo(f"would purge case {case_id} (closed {closed_on.isoformat()})")
            click.echo(f"Dry run: {len(due)} cases closed before {before} would be purged; nothing changed.")
            return
        try:
            count = retention.purge_closed(db.session(), app.extensions["whistle.blobs"], now, days)
        except retention.PurgeFailed as exc:
            raise click.ClickException(f"{exc}; that batch is unchanged, run again later.") from None
    click.echo(f"Purged {count} cases closed before {before} (retention_days = {days}).")


@main.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.option("--key", "key_file", required=True, help="Your private key file.")
@click.option("--out", required=True, help="Folder to write the plaintext into.")
def decrypt(bundle: str, key_file: str, out: str) -> None:
    """Open a case bundle offline with a private key file. Needs no instance or network."""
    private = _unlock_file(key_file)
    try:
        written = bundles.open_bundle(Path(bundle), private, Path(out))
    except bundles.BundleError as exc:
        raise click.ClickException(str(exc)) from None
    except crypto.OpenError:
        raise click.ClickException("This key cannot open the bundle (not a recipient, or the bundle was altered).") from None
    for path in written:
        click.echo(f"wrote {path}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
