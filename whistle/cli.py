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

from . import accounts, audit, bundles, cases, create_app, create_officer_app, crypto, db, intake, keyring, migrate, retention
from .uploads import blob_store
from .config import ConfigError
from .extensions import password_hashing, today, trust
from .i18n import thai_today as today_thai
from .models import Author, KeyRole, Report, Role

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


_generated_passphrase = accounts.generate_passphrase


def _ask_passphrase(new: bool) -> str:
    env = os.environ.get("WHISTLE_PASSPHRASE")
    if env:
        return env
    return click.prompt(
        "Passphrase (at least 12 characters)" if new else "Passphrase",
        hide_input=True,
        confirmation_prompt=new,
    )


def _new_keypair(
    role: KeyRole, label: str, out: Path, passphrase: str, kdf: dict | None = None
) -> tuple[keyring.KeyInfo, crypto.PrivateKey]:
    public_out = out.with_name(out.name.removesuffix(".key") + ".pub")
    for path in (out, public_out):
        if path.exists():
            raise click.ClickException(f"{path} exists; choose another file name.")
    private = crypto.PrivateKey.generate()
    doc = keyring.private_key_document(private, passphrase, role, label, kdf)
    info = keyring.key_info(doc)
    keyring.write_new_file(public_out, keyring.public_key_document(info))
    keyring.write_new_file(out, doc)
    return info, private


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


def _password_hashing() -> crypto.PasswordHashing:
    """The sign-in passphrase hashing of the instance (cheap under WHISTLE_UNSAFE_FAST_KDF=1)."""
    kdf = _test_kdf()
    if kdf is not None:
        return crypto.PasswordHashing(kdf["time_cost"], kdf["memory_cost"], kdf["parallelism"])
    return password_hashing()


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
            "\n"
            "# The municipality this instance serves (README: Configuration).\n"
            "[organisation]\n"
            'name_th = "เทศบาลตัวอย่าง"\n'
            'name_en = "Example Municipality"\n'
            'general_complaints_url = ""\n'
        )
    with _instance_app(instance) as app:
        db.create_schema()
        database = make_url(app.extensions["whistle.settings"].database_url).render_as_string(hide_password=True)
    officer_pass, recovery_pass = _generated_passphrase(), _generated_passphrase()
    officer_file = instance / "private-keys" / "officer-1.key"
    recovery_file = recovery_dir / "recovery.key"
    admin_pass = _generated_passphrase()
    officer, officer_private = _new_keypair(KeyRole.OFFICER, "officer-1", officer_file, officer_pass, _test_kdf())
    recovery, recovery_private = _new_keypair(KeyRole.RECOVERY, "recovery", recovery_file, recovery_pass, _test_kdf())
    with _instance_app(instance):
        hashing, session = _password_hashing(), db.session()
        keyring.install_first_keys(session, trust(), officer_private, recovery_private, "officer-1", today())
        accounts.create_account(session, hashing, "admin", "Administrator", Role.ADMIN, admin_pass, today())
        accounts.create_account(
            session, hashing, "officer-1", "officer-1", Role.OFFICER, officer_pass, today(),
            private_key=officer_private, key_kdf=_test_kdf(),
        )
        session.commit()
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
  pinned as this instance's trust anchor: {instance / keyring.ANCHOR_FILE}
  (it certified officer-1's key; it certifies every officer key added later)

Officers' workspace accounts (served by `whistle serve` at http://127.0.0.1:5001/)
  administrator: user name "admin", one-time passphrase {admin_pass}
  first officer: user name "officer-1", one-time passphrase the same as key "officer-1" above
At the first sign-in each chooses a new passphrase and turns on the second factor with an
authenticator app on their phone (leave the code empty that first time).

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
@click.option("--officer-port", default=5001, show_default=True, type=int, help="The officers' app (0: do not serve it).")
def serve(instance_path: str | None, host: str, port: int, officer_port: int) -> None:
    """Serve the instance on the embedded default, creating it first if it does not exist.

    The reporters' app on --port, the officers' app on --officer-port: two apps, as in
    production, where they have their own host names. For a laptop or a trial; production
    runs gunicorn behind nginx (README, deploy/).
    """
    import threading

    instance = _instance(instance_path)
    if not (instance / "config.toml").exists():
        create_instance(instance, Path("recovery-key").resolve())
    app = _app(instance, require_recipients=True)
    try:
        officer_app = create_officer_app({"instance_path": instance}) if officer_port else None
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    server_class, handler = _addressless_server()
    if officer_app is not None:
        officers = server_class(host, officer_port, officer_app, handler=handler)
        threading.Thread(target=officers.serve_forever, name="officers", daemon=True).start()
        click.echo(f"Officers' workspace on http://{host}:{officers.port}/")
    server = server_class(host, port, app, handler=handler)
    click.echo(f"Serving whistle on http://{host}:{server.port}/ (Ctrl+C to stop)")
    server.serve_forever()


@main.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder to write the files into (made if missing).")
@click.option("--instance", "instance_path")
def publicity(out_dir: str, instance_path: str | None) -> None:
    """Write the publicity kit: the two snippets for the municipality's website, the A4
    poster, the A5 flyer and the staff flyer (Thai and English, PDF and PNG), and the
    share image. All of it comes from config.toml (site_url, onion_address, the
    organisation's names, seal and deadlines)."""
    from . import publicity as kit
    from .extensions import settings

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _instance_app(instance_path) as app, app.test_request_context("/"):
        try:
            for filename in kit.file_names():
                body, _type = kit.kit_file(settings(), filename)
                (out / filename).write_bytes(body)
                click.echo(f"{out / filename}")
        except kit.NotConfigured as exc:
            raise click.ClickException(str(exc)) from None


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
        info, _private = _new_keypair(role, label, out_path, passphrase, _test_kdf())
    except keyring.KeyFileError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Wrote {out_path} (private, sealed under the passphrase) and its public key file.")
    click.echo(f"Key id: {info.key_id_hex}")
    if register:
        _register(_instance(instance_path), info)
        if role is KeyRole.OFFICER:
            click.echo("Registered. Before new tips are sealed to it, the recovery key must certify it:")
            click.echo(f"  whistle keys certify --key {out_path} --recovery-key RECOVERY.key")
            click.echo("Existing cases become readable with it after `whistle keys rewrap` (keys/README.md).")
        else:
            click.echo("Registered. Pin it as the trust anchor with `whistle keys anchor` (keys/README.md).")


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
@click.option("--certificate", "certificate_file", type=click.Path(exists=True, dir_okay=False),
              help="The recovery key's certificate for this officer key (`whistle keys certify --out`).")
@click.option("--instance", "instance_path")
def add_key(public_key_file: str, certificate_file: str | None, instance_path: str | None) -> None:
    """Register a public key file (.pub) made on another machine, with its certificate."""
    try:
        info = keyring.key_info(keyring.read_document(Path(public_key_file)))
        with _instance_app(_instance(instance_path)):
            row = keyring.register(db.session(), info, today())
            if certificate_file:
                keyring.attach_certificate(row, trust(), keyring.read_certificate(Path(certificate_file)))
            db.session().commit()
            certified = trust().certified(row) is not None
    except (keyring.KeyFileError, keyring.MissingAnchor) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Registered {info.role.value} key {info.key_id_hex} ({info.label}).")
    if info.role is KeyRole.OFFICER and not certified:
        click.echo("It receives nothing until the recovery key certifies it: `whistle keys certify` (keys/README.md).")


@keys.command("list")
@click.option("--instance", "instance_path")
def list_keys(instance_path: str | None) -> None:
    """List the recipients a new tip will be sealed to."""
    with _instance_app(instance_path):
        rows = keyring.active_keys(db.session())
        for row in rows:
            state = ""
            if row.role is KeyRole.OFFICER:
                state = "  certified" if _certified(row) else "  NOT CERTIFIED: receives nothing (`whistle keys certify`)"
            click.echo(f"{row.key_id.hex()}  {row.role.value:<8}  {row.label}  (since {row.created_on.isoformat()}){state}")
        try:
            keyring.recipients(db.session(), trust())
        except keyring.MissingRecipients as exc:
            raise click.ClickException(f"New tips cannot be accepted: {exc}") from None


def _certified(row) -> bool:
    try:
        return trust().certified(row) is not None
    except keyring.MissingAnchor:
        return False


@keys.command("anchor")
@click.option("--recovery-key", "recovery_file", required=True, help="The recovery key file (private, or a public file with a verify key).")
@click.option("--instance", "instance_path")
def anchor_key(recovery_file: str, instance_path: str | None) -> None:
    """Pin the recovery key as the instance's trust anchor (trust-anchor.json)."""
    doc = _read_key_document(recovery_file)
    recovery = _unlock_document(doc) if doc.get("format") == keyring.PRIVATE_FORMAT else keyring.key_info(doc)
    role = KeyRole(doc.get("role"))
    if role is not KeyRole.RECOVERY:
        raise click.ClickException("this is not a recovery key file")
    path = _instance(instance_path) / keyring.ANCHOR_FILE
    try:
        anchor = keyring.write_anchor(path, recovery)
    except keyring.KeyFileError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Pinned recovery key {anchor.public_key.key_id.hex()} (verify key {anchor.verify_key.key_id.hex()}) in {path}.")
    click.echo("Officer keys now count only with its certificate: `whistle keys certify`.")


@keys.command("certify")
@click.option("--key", "officer_file", required=True, help="The officer's private key file.")
@click.option("--recovery-key", "recovery_file", required=True, help="The recovery key file.")
@click.option("--out", "out_file", help="Write the certificate to this file instead (no instance needed: on the officer's or an offline computer).")
@click.option("--instance", "instance_path")
def certify_key(officer_file: str, recovery_file: str, out_file: str | None, instance_path: str | None) -> None:
    """Have the recovery key vouch for an officer key: it then receives new tips and its
    messages are shown to reporters as the officers'. Asks for both passphrases
    (WHISTLE_PASSPHRASE, then WHISTLE_RECOVERY_PASSPHRASE, when set).

    With --out, writes a certificate file that IT registers with `whistle keys add
    OFFICER.pub --certificate FILE`: neither private key need come near the server."""
    officer_doc = _read_key_document(officer_file)
    officer = _unlock_document(officer_doc)
    recovery = _unlock_document(_read_key_document(recovery_file), env="WHISTLE_RECOVERY_PASSPHRASE", prompt="Recovery key passphrase")
    label = str(officer_doc.get("label") or "officer")
    if out_file:
        try:
            keyring.write_new_file(Path(out_file), keyring.certificate_document(officer, recovery, label, today_thai()))
        except (keyring.KeyFileError, FileExistsError) as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"Wrote {out_file}: the recovery key's certificate for officer key {officer.key_id.hex()}.")
        return
    with _instance_app(instance_path):
        try:
            row = keyring.certify(db.session(), trust(), officer, recovery, label, today())
        except (keyring.KeyFileError, keyring.MissingAnchor) as exc:
            raise click.ClickException(str(exc)) from None
        audit.record(db.session(), "key_certified", None, key=officer.key_id.hex(), via="command line")
        db.session().commit()
        key_id = row.key_id.hex()
    click.echo(f"Certified officer key {key_id}: new tips are sealed to it from now on.")
    click.echo("Run `whistle keys rewrap` with a key that opens every case to let it read the existing ones.")


@keys.command("revoke")
@click.argument("key_id")
@click.option("--instance", "instance_path")
def revoke_key(key_id: str, instance_path: str | None) -> None:
    """For a lost or stolen officer key: list it as revoked in the trust anchor (its
    certificate and signatures stop counting at once) and retire it. Then rewrap."""
    try:
        raw = bytes.fromhex(key_id)
    except ValueError:
        raise click.ClickException("a key id is 32 hexadecimal digits") from None
    with _instance_app(instance_path) as app:
        keyring.revoke_in_anchor(app.extensions["whistle.settings"].instance_path / keyring.ANCHOR_FILE, raw)
        audit.record(db.session(), "key_revoked", None, key=raw.hex(), via="command line")
        try:
            keyring.retire(db.session(), key_id, today(), allow_last=True)
            audit.record(db.session(), "key_retired", None, key=raw.hex(), via="command line")
        except keyring.KeyFileError:
            pass  # retired already: revoking still counts
        db.session().commit()
    click.echo(f"Revoked {key_id}. Run `whistle keys rewrap --key FILE` so stored cases drop it.")


@keys.command("rebind")
@click.option("--key", "key_file", help="A private key that opens every case (an officer's or the recovery key).")
@click.option("--list", "list_only", is_flag=True, help="Only list the cases with version 1 items; needs no key.")
@click.option("--sign-officer-messages", is_flag=True,
              help="Also re-bind officers' legacy messages, signed with --key (an officer key): only after the officers recognised them.")
@click.option("--instance", "instance_path")
def rebind_keys(key_file: str | None, list_only: bool, sign_officer_messages: bool, instance_path: str | None) -> None:
    """Re-seal version 1 items (from before items were bound to their case) as version 2."""
    from . import rebind

    if list_only:
        with _instance_app(instance_path):
            found = rebind.find_legacy(db.session())
        for legacy in found:
            officer = sum(1 for _seq, author in legacy.messages if author is Author.OFFICER)
            click.echo(
                f"case {legacy.case_id:>6}: tip {'yes' if legacy.tip else 'no'}, {len(legacy.messages)} messages "
                f"({officer} by officers), {legacy.files} files"
            )
        click.echo(f"{sum(x.count for x in found)} version 1 items in {len(found)} cases.")
        return
    if not key_file:
        raise click.ClickException("give --key (or --list to see what would change)")
    private = _unlock_file(key_file)
    with _instance_app(instance_path, require_recipients=True):
        try:
            changed = rebind.rebind_all(db.session(), blob_store(), trust(), private, sign_officer_messages=sign_officer_messages)
        except crypto.OpenError:
            raise click.ClickException("This key does not open every version 1 item; the case it failed on was left as it was.") from None
        left = sum(x.count for x in rebind.find_legacy(db.session()))
    click.echo(f"Re-bound {changed} items. {left} version 1 items are left" + (" (officers' messages: see --sign-officer-messages)." if left else "."))


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
        audit.record(db.session(), "key_retired", None, key=key_id.lower(), via="command line")
        db.session().commit()
    click.echo(f"Retired {key_id}. Run `whistle keys rewrap --key FILE` so stored cases drop it.")


def _read_key_document(path: str) -> dict:
    try:
        return keyring.read_document(Path(path))
    except keyring.KeyFileError as exc:
        raise click.ClickException(str(exc)) from None


def _unlock_document(doc: dict, env: str = "WHISTLE_PASSPHRASE", prompt: str = "Passphrase") -> crypto.PrivateKey:
    passphrase = os.environ.get(env) or click.prompt(prompt, hide_input=True)
    try:
        return keyring.unlock(doc, passphrase)
    except keyring.KeyFileError as exc:
        raise click.ClickException(str(exc)) from None


def _unlock_file(path: str) -> crypto.PrivateKey:
    return _unlock_document(_read_key_document(path))


@keys.command("rewrap")
@click.option("--key", "key_file", required=True, help="A private key that opens every stored case (an officer's or the recovery key).")
@click.option("--instance", "instance_path")
def rewrap(key_file: str, instance_path: str | None) -> None:
    """Seal every stored case to exactly the active recipients (after adding or retiring a key)."""

    private = _unlock_file(key_file)
    with _instance_app(instance_path):
        try:
            count = keyring.rewrap_all(db.session(), trust(), private)
        except crypto.OpenError:
            db.session().rollback()
            raise click.ClickException("This key does not open every stored item; nothing was changed.") from None
        except keyring.MissingRecipients as exc:
            raise click.ClickException(str(exc)) from None
        audit.record(db.session(), "rewrap", None, items=count, by=_key_kind(private), via="command line")
        db.session().commit()
    click.echo(f"Re-wrapped {count} items for the active recipients.")


def _key_kind(private: crypto.PrivateKey) -> str:
    return "recovery key" if private.public_key() == trust().anchor().public_key else "officer key"


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
            path = bundles.export_case(db.session(), blob_store(), case_id, Path(out))
        except (bundles.BundleError, FileExistsError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"Wrote {path} (ciphertext only).")


@case.command("message")
@click.argument("case_id", type=int)
@click.option("--text", required=True, help="The message to the reporter.")
@click.option("--key", "key_file", required=True, help="Your certified officer key file: the message is signed with it.")
@click.option("--instance", "instance_path")
def message(case_id: int, text: str, key_file: str, instance_path: str | None) -> None:
    """Write to a case's reporter, signed with your officer key so that their status page
    shows it as the officers' (an unsigned message is never shown to them)."""
    private = _unlock_file(key_file)
    with _instance_app(instance_path, require_recipients=True):
        row = keyring.find_key(db.session(), private.key_id)
        if row is None or trust().certified(row) is None:
            raise click.ClickException("this key is not a certified officer key of this instance (`whistle keys certify`)")
        try:
            cases.get_case(db.session(), case_id)
            intake.add_message(
                db.session(), blob_store(), trust(), case_id, Author.OFFICER, text, [], today(), signing_key=private.signing_key
            )
        except (cases.CaseNotFound, intake.UnknownCode):
            raise click.ClickException(f"no case {case_id}") from None
    click.echo(f"Message signed and sealed to case {case_id}'s reporter and the officers.")


# --------------------------------------------------------------------------- accounts


@main.group("accounts")
def accounts_group() -> None:
    """Accounts of the officers' workspace (admins also manage them in the browser)."""


@accounts_group.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--name", "display_name", default="", help="The person's name as shown to colleagues.")
@click.option("--instance", "instance_path")
def create_account(username: str, role: str, display_name: str, instance_path: str | None) -> None:
    """Create an account with a one-time passphrase, printed once.

    The person chooses their own passphrase and turns on the second factor at their first
    sign-in; an officer's key pair is made then.
    """
    passphrase = _generated_passphrase()
    with _instance_app(instance_path):
        try:
            accounts.create_account(
                db.session(), _password_hashing(), username, display_name or username, Role(role), passphrase, today()
            )
        except accounts.AccountError as exc:
            raise click.ClickException(str(exc)) from None
        db.session().commit()
    click.echo(f"Created the {role} account {accounts.normalise_username(username)!r}.")
    click.echo(f"One-time passphrase (shown only now; hand it over in person): {passphrase}")


@accounts_group.command("list")
@click.option("--instance", "instance_path")
def list_accounts(instance_path: str | None) -> None:
    """Accounts with their role and state (never a secret)."""
    from .models import Account

    with _instance_app(instance_path):
        for a in db.session().scalars(select(Account).order_by(Account.id)):
            state = "disabled" if a.disabled_on else ("first sign-in pending" if a.must_change_passphrase else "active")
            factor = "second factor on" if a.totp_enrolled_on else "no second factor yet"
            click.echo(f"{a.username:<20} {a.role.value:<10} {state}, {factor}")


@accounts_group.command("reset-factor")
@click.argument("username")
@click.option("--instance", "instance_path")
def reset_factor(username: str, instance_path: str | None) -> None:
    """Turn off an account's second factor: at their next sign-in the person enrols again.
    Needed for everyone after the secret key changes (it seals the TOTP secrets)."""
    with _instance_app(instance_path):
        account = accounts.find(db.session(), username)
        if account is None:
            raise click.ClickException(f"no account {accounts.normalise_username(username)!r}")
        accounts.reset_second_factor(db.session(), account, None)
    click.echo(f"The second factor of {account.username!r} is off: they turn it on again at their next sign-in.")


# --------------------------------------------------------------------------- audit


@main.group("audit")
def audit_group() -> None:
    """Check the audit trail, and anchor its head outside the database."""


def _anchor_file(app) -> Path:
    return app.extensions["whistle.settings"].instance_path / "audit-anchors.log"


@audit_group.command("verify")
@click.option("--instance", "instance_path")
def audit_verify(instance_path: str | None) -> None:
    """Check every link of the chain and every anchored head; name the first break."""
    with _instance_app(instance_path) as app:
        anchors = audit.read_anchors(_anchor_file(app))
        broken = audit.verify(db.session(), anchors)
        entries, _digest = audit.head(db.session())
    if broken is not None:
        raise click.ClickException(f"The audit trail is broken at {broken}.")
    click.echo(f"The audit trail is whole: {entries} entries, {len(anchors)} anchored heads match.")


@audit_group.command("anchor")
@click.option("--instance", "instance_path")
def audit_anchor(instance_path: str | None) -> None:
    """Write the chain's head to the instance's anchor file (run daily by a systemd timer)."""
    with _instance_app(instance_path) as app:
        written = audit.anchor(db.session(), _anchor_file(app), today())
    if written is None:
        click.echo("The audit trail is empty: nothing to anchor.")
    else:
        click.echo(f"Anchored entry {written[0]} ({written[1].hex()[:16]}...) in {_anchor_file(app)}.")


# --------------------------------------------------------------------------- notices


@main.command("notify")
@click.option("--instance", "instance_path")
def notify_command(instance_path: str | None) -> None:
    """Mail each active officer with news one notice that something is new or due in the
    workspace, never what (run hourly by deploy/systemd/whistle-notify.timer)."""
    from . import notify
    from .extensions import now

    with _instance_app(instance_path) as app:
        settings = app.extensions["whistle.settings"]
        try:
            mailer = notify.SMTPMailer(settings)
        except notify.NoticesOff as exc:
            click.echo(f"Notices are off: {exc}.")
            return
        with mailer:
            result = notify.run(db.session(), settings, mailer, today(), now())
    click.echo(f"Sent {result.sent} notices." + (f" {result.failed} were not accepted; the next run tries again." if result.failed else ""))
    if result.failed:
        sys.exit(1)


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
        removed = blob_store().sweep(referenced, older_than)
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
            count = retention.purge_closed(db.session(), blob_store(), now, days)
        except retention.PurgeFailed as exc:
            raise click.ClickException(f"{exc}; that batch is unchanged, run again later.") from None
    click.echo(f"Purged {count} cases closed before {before} (retention_days = {days}).")


@main.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.option("--key", "key_file", required=True, help="Your private key file.")
@click.option("--out", required=True, help="Folder to write the plaintext into.")
@click.option("--anchor", "anchor_file", help="The instance's trust-anchor.json: check who signed each officer's message.")
def decrypt(bundle: str, key_file: str, out: str, anchor_file: str | None) -> None:
    """Open a case bundle offline with a private key file. Needs no instance or network."""
    private = _unlock_file(key_file)
    try:
        anchor = keyring.read_anchor(Path(anchor_file)) if anchor_file else None
    except keyring.MissingAnchor as exc:
        raise click.ClickException(str(exc)) from None
    try:
        written = bundles.open_bundle(Path(bundle), private, Path(out), anchor)
    except bundles.BundleError as exc:
        raise click.ClickException(str(exc)) from None
    except crypto.OpenError:
        raise click.ClickException("This key cannot open the bundle (not a recipient, or the bundle was altered).") from None
    for path in written:
        click.echo(f"wrote {path}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
