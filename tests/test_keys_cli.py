"""The key and case commands as an IT person and an officer use them (keys/README.md):
create an instance, add and retire officers, re-wrap, export a case and read it offline."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from whistle import create_app, crypto
from whistle.cli import main
from whistle.codes import CodeCost
from whistle.models import KeyRole

from .conftest import Reporter

PASS_2 = "officer two long passphrase"
PASS_X = "outsider long passphrase"
TIP_TEXT = "ปลัดเทศบาลแบ่งสัญญาก่อสร้างถนนเพื่อเลี่ยงการประกวดราคา"
FILES = {
    "ใบสั่งซื้อ 12-2569.csv": "เลขที่,จำนวน\n12/2569,499000\n".encode() * 3000,  # > 2 chunks
    "evidence.bin": bytes(range(256)) * 7,
}


class Instance:
    """An instance made by `whistle init`, with what it printed once."""

    def __init__(self, root: Path, runner: CliRunner) -> None:
        self.root = root
        self.path = root / "instance"
        self.recovery_dir = root / "recovery-key"
        self.runner = runner
        self.init_result = self.run("init", "--instance", str(self.path), "--recovery-dir", str(self.recovery_dir))
        out = self.init_result.output
        self.officer_pass, self.recovery_pass = re.findall(r"passphrase:\s+(\S+)", out)
        self.officer_id, self.recovery_id = re.findall(r"key id ([0-9a-f]{32})", out)
        self.officer_key = self.path / "private-keys" / "officer-1.key"
        self.recovery_key = self.recovery_dir / "recovery.key"

    def run(self, *args: str, passphrase: str | None = None, ok: bool = True, recovery_passphrase: str | None = None):
        env = {"WHISTLE_PASSPHRASE": passphrase or "", "WHISTLE_RECOVERY_PASSPHRASE": recovery_passphrase or ""}
        result = self.runner.invoke(main, list(args), env=env, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    def keys(self, *args: str, **kw):
        return self.run("keys", *args, "--instance", str(self.path), **kw)

    def certify(self, key_file: Path, passphrase: str):
        """The recovery key vouches for an officer key, as keys/README.md has IT staff do."""
        return self.keys("certify", "--key", str(key_file), "--recovery-key", str(self.recovery_key),
                         passphrase=passphrase, recovery_passphrase=self.recovery_pass)

    def submit(self, files: dict[str, bytes] | None = None) -> str:
        app = create_app({"instance_path": self.path, "unsafe_code_cost": CodeCost(1, 256, 1)})
        app.config["TESTING"] = True
        uploads = [(io.BytesIO(data), name) for name, data in (files or {}).items()]
        return Reporter(app.test_client()).submit_ok(what=TIP_TEXT, files=uploads)

    def export(self, name: str, case_id: int = 1) -> Path:
        out = self.root / name
        self.run("case", "export", str(case_id), "--out", str(out), "--instance", str(self.path))
        return out

    def decrypt(self, bundle: Path, key: Path, passphrase: str, out: str, ok: bool = True):
        return self.run("decrypt", str(bundle), "--key", str(key), "--out", str(self.root / out), passphrase=passphrase, ok=ok)


@pytest.fixture
def runner(monkeypatch) -> CliRunner:
    monkeypatch.setenv("WHISTLE_UNSAFE_FAST_KDF", "1")
    for name in ("WHISTLE_INSTANCE", "WHISTLE_SECRET_KEY", "WHISTLE_DATABASE_URL", "WHISTLE_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


@pytest.fixture
def inst(tmp_path, runner) -> Instance:
    return Instance(tmp_path, runner)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


class TestInit:
    def test_init_prints_paths_and_passphrases_once(self, inst):
        out = inst.init_result.output
        for path in (inst.path / "config.toml", inst.officer_key, inst.recovery_key):
            assert str(path) in out
        for secret in (inst.officer_pass, inst.recovery_pass):
            assert out.count(secret) == 1
            assert len(secret) >= 12
        assert inst.officer_pass != inst.recovery_pass
        assert "shown only now" in out

    def test_init_makes_owner_only_files(self, inst):
        for path in (
            inst.path / "config.toml",
            inst.officer_key,
            inst.officer_key.with_suffix(".pub"),
            inst.recovery_key,
            inst.recovery_key.with_suffix(".pub"),
        ):
            assert path.is_file() and mode(path) == 0o600, path
        assert mode(inst.path) == 0o700

    def test_init_twice_refuses(self, inst):
        again = inst.run("init", "--instance", str(inst.path), "--recovery-dir", str(inst.root / "other"), ok=False)
        assert again.exit_code != 0 and "created before" in again.output

    def test_init_passphrases_unlock_the_keys(self, inst):
        from whistle import keyring

        officer = keyring.unlock(keyring.read_document(inst.officer_key), inst.officer_pass)
        recovery = keyring.unlock(keyring.read_document(inst.recovery_key), inst.recovery_pass)
        assert officer.key_id.hex() == inst.officer_id and recovery.key_id.hex() == inst.recovery_id


class TestKeys:
    def test_keys_list_shows_officer_and_recovery(self, inst):
        out = inst.keys("list").output
        assert re.search(rf"{inst.officer_id}\s+officer\s+officer-1", out)
        assert re.search(rf"{inst.recovery_id}\s+recovery\s+recovery", out)

    def test_keys_new_officer_registers_second_officer(self, inst):
        result = inst.keys("new-officer", "--label", "officer-2", "--out", str(inst.root / "officer-2.key"), passphrase=PASS_2)
        new_id = re.search(r"Key id: ([0-9a-f]{32})", result.output).group(1)
        assert (inst.root / "officer-2.pub").is_file() and mode(inst.root / "officer-2.key") == 0o600
        listing = inst.keys("list").output
        assert re.search(rf"{new_id}\s+officer\s+officer-2", listing)
        assert len(listing.strip().splitlines()) == 3

    def test_keys_new_officer_no_register_then_add(self, inst):
        inst.run("keys", "new-officer", "--label", "officer-2", "--out", str(inst.root / "o2.key"), "--no-register", passphrase=PASS_2)
        assert "officer-2" not in inst.keys("list").output
        added = inst.run("keys", "add", str(inst.root / "o2.pub"), "--instance", str(inst.path))
        assert "Registered officer key" in added.output
        assert "officer-2" in inst.keys("list").output
        again = inst.run("keys", "add", str(inst.root / "o2.pub"), "--instance", str(inst.path), ok=False)
        assert again.exit_code != 0 and "registered already" in again.output

    def test_keys_short_passphrase_refused_and_nothing_written(self, inst):
        result = inst.keys("new-officer", "--label", "x", "--out", str(inst.root / "x.key"), passphrase="short", ok=False)
        assert result.exit_code != 0 and "at least 12 characters" in result.output
        assert not (inst.root / "x.key").exists()

    def test_keys_existing_file_not_overwritten(self, inst):
        result = inst.keys("new-officer", "--label", "x", "--out", str(inst.officer_key), passphrase=PASS_2, ok=False)
        assert result.exit_code != 0 and "exists" in result.output

    def test_keys_private_file_holds_public_key_but_no_private_bytes(self, inst, monkeypatch):
        known = crypto.PrivateKey(bytes(range(64)), bytes(range(100, 132)))
        monkeypatch.setattr(crypto.PrivateKey, "generate", classmethod(lambda cls: known))
        path = inst.root / "known.key"
        inst.keys("new-officer", "--label", "known", "--out", str(path), "--no-register", passphrase=PASS_2)
        raw = path.read_bytes()
        text = raw.decode("ascii")
        doc = json.loads(text)
        secret = known.unsafe_to_bytes()
        for part in (secret, known.mlkem_seed, known.x25519):
            assert part not in raw
            assert part.hex() not in text.lower()
            assert base64.b64encode(part).decode() not in text
            assert base64.urlsafe_b64encode(part).decode() not in text
        assert doc["public_key"] == base64.b64encode(known.public_key().to_bytes()).decode()
        assert doc["key_id"] == known.key_id.hex()
        assert doc["verify_key"] == base64.b64encode(known.signing_key.verify_key().to_bytes()).decode()
        assert doc["kdf"]["name"] == "argon2id" and set(doc) == {
            "format", "version", "role", "label", "key_id", "public_key", "verify_key", "kdf", "sealed"
        }

    def test_keys_retire_unknown_key_fails_clearly(self, inst):
        result = inst.keys("retire", "00" * 16, ok=False)
        assert result.exit_code != 0 and "no active key" in result.output

    def test_retiring_last_officer_refused_without_force(self, inst):
        result = inst.keys("retire", inst.officer_id, ok=False)
        assert result.exit_code != 0 and "last active officer key" in result.output

    def test_keys_list_after_retiring_last_officer_warns(self, inst):
        inst.keys("retire", inst.officer_id, "--force")
        result = inst.keys("list", ok=False)
        assert result.exit_code != 0 and "no active officer" in result.output


class TestCases:
    def test_case_export_and_decrypt_with_officer_key(self, inst):
        inst.submit(FILES)
        listing = inst.run("case", "list", "--instance", str(inst.path)).output
        assert "procurement" in listing and TIP_TEXT not in listing
        inst.run("case", "message", "1", "--text", "Please send the purchase orders.", "--key", str(inst.officer_key),
                 "--instance", str(inst.path), passphrase=inst.officer_pass)
        bundle = inst.export("case-1.zip")
        assert TIP_TEXT.encode() not in bundle.read_bytes()
        result = inst.decrypt(bundle, inst.officer_key, inst.officer_pass, "out")
        out = inst.root / "out"
        assert "report.txt" in result.output
        report = (out / "report.txt").read_text("utf-8")
        assert TIP_TEXT in report
        for name, data in FILES.items():
            assert name in report
            assert (out / "files" / name).read_bytes() == data
        assert "Please send the purchase orders." in (out / "messages.txt").read_text("utf-8")

    def test_case_recovery_key_also_decrypts(self, inst):
        inst.submit(FILES)
        bundle = inst.export("case-1.zip")
        inst.decrypt(bundle, inst.recovery_key, inst.recovery_pass, "out")
        assert TIP_TEXT in (inst.root / "out" / "report.txt").read_text("utf-8")
        assert (inst.root / "out" / "files" / "evidence.bin").read_bytes() == FILES["evidence.bin"]

    def test_case_decrypt_with_non_recipient_key_fails_clearly(self, inst):
        inst.submit()
        bundle = inst.export("case-1.zip")
        outsider = inst.root / "outsider.key"
        inst.run("keys", "new-officer", "--label", "outsider", "--out", str(outsider), "--no-register", passphrase=PASS_X)
        result = inst.decrypt(bundle, outsider, PASS_X, "out", ok=False)
        assert result.exit_code != 0
        assert "cannot open the bundle" in result.output and "Traceback" not in result.output
        assert not (inst.root / "out" / "report.txt").exists()

    def test_case_decrypt_with_wrong_passphrase_fails_clearly(self, inst):
        inst.submit()
        bundle = inst.export("case-1.zip")
        result = inst.decrypt(bundle, inst.officer_key, "not the passphrase", "out", ok=False)
        assert result.exit_code != 0 and "wrong passphrase" in result.output

    def test_case_export_unknown_case_fails_clearly(self, inst):
        result = inst.run("case", "export", "9", "--out", str(inst.root / "x.zip"), "--instance", str(inst.path), ok=False)
        assert result.exit_code != 0 and "no case 9" in result.output

    def test_case_decrypt_not_a_bundle_fails_clearly(self, inst):
        junk = inst.root / "junk.zip"
        junk.write_bytes(b"not a zip")
        result = inst.decrypt(junk, inst.officer_key, inst.officer_pass, "out", ok=False)
        assert result.exit_code != 0 and "not a case bundle" in result.output


class TestRotation:
    def test_rewrap_gives_new_officer_access_to_existing_case(self, inst):
        inst.submit(FILES)
        inst.keys("new-officer", "--label", "officer-2", "--out", str(inst.root / "officer-2.key"), passphrase=PASS_2)
        inst.certify(inst.root / "officer-2.key", PASS_2)
        before = inst.export("before.zip")
        refused = inst.decrypt(before, inst.root / "officer-2.key", PASS_2, "out-before", ok=False)
        assert refused.exit_code != 0
        result = inst.keys("rewrap", "--key", str(inst.officer_key), passphrase=inst.officer_pass)
        assert "Re-wrapped 3 items" in result.output  # the tip and two files
        inst.decrypt(inst.export("after.zip"), inst.root / "officer-2.key", PASS_2, "out-after")
        assert (inst.root / "out-after" / "files" / "evidence.bin").read_bytes() == FILES["evidence.bin"]

    def test_retire_and_rewrap_remove_access_to_existing_case(self, inst):
        inst.submit(FILES)
        inst.keys("new-officer", "--label", "officer-2", "--out", str(inst.root / "officer-2.key"), passphrase=PASS_2)
        inst.certify(inst.root / "officer-2.key", PASS_2)
        old_copy = inst.export("old-copy.zip")
        inst.keys("retire", inst.officer_id)
        assert inst.officer_id not in inst.keys("list").output
        inst.keys("rewrap", "--key", str(inst.recovery_key), passphrase=inst.recovery_pass)

        bundle = inst.export("case-1.zip")
        refused = inst.decrypt(bundle, inst.officer_key, inst.officer_pass, "out-retired", ok=False)
        assert refused.exit_code != 0 and "cannot open the bundle" in refused.output
        inst.decrypt(bundle, inst.root / "officer-2.key", PASS_2, "out-officer-2")
        inst.decrypt(bundle, inst.recovery_key, inst.recovery_pass, "out-recovery")
        # What rewrap cannot do: a copy made before it still opens with the retired key,
        # because the content (and its data key) is not re-encrypted. keys/README.md says so.
        inst.decrypt(old_copy, inst.officer_key, inst.officer_pass, "out-old-copy")

    def test_officer_key_certified_offline_and_registered_with_its_certificate(self, inst):
        key, cert = inst.root / "officer-3.key", inst.root / "officer-3.cert"
        inst.run("keys", "new-officer", "--label", "officer-3", "--out", str(key), "--no-register", passphrase=PASS_2)
        inst.run("keys", "certify", "--key", str(key), "--recovery-key", str(inst.recovery_key), "--out", str(cert),
                 passphrase=PASS_2, recovery_passphrase=inst.recovery_pass)
        added = inst.keys("add", str(key.with_suffix(".pub")), "--certificate", str(cert))
        assert "receives nothing" not in added.output
        assert "officer-3" in inst.keys("list").output and "NOT CERTIFIED" not in inst.keys("list").output
        inst.submit()
        inst.decrypt(inst.export("case-1.zip"), key, PASS_2, "out-3")

    def test_certificate_from_another_recovery_key_is_refused(self, inst, tmp_path):
        other = Instance(tmp_path / "other", inst.runner)
        key, cert = inst.root / "officer-4.key", inst.root / "officer-4.cert"
        inst.run("keys", "new-officer", "--label", "officer-4", "--out", str(key), "--no-register", passphrase=PASS_2)
        inst.run("keys", "certify", "--key", str(key), "--recovery-key", str(other.recovery_key), "--out", str(cert),
                 passphrase=PASS_2, recovery_passphrase=other.recovery_pass)
        result = inst.keys("add", str(key.with_suffix(".pub")), "--certificate", str(cert), ok=False)
        assert result.exit_code != 0 and "not made by this instance's recovery key" in result.output

    def test_new_tips_after_retire_are_not_sealed_to_retired_key(self, inst):
        inst.keys("new-officer", "--label", "officer-2", "--out", str(inst.root / "officer-2.key"), passphrase=PASS_2)
        inst.certify(inst.root / "officer-2.key", PASS_2)
        inst.keys("retire", inst.officer_id)
        inst.submit()
        bundle = inst.export("case-1.zip")
        assert inst.decrypt(bundle, inst.officer_key, inst.officer_pass, "out", ok=False).exit_code != 0
        inst.decrypt(bundle, inst.root / "officer-2.key", PASS_2, "out-2")

    def test_rewrap_with_key_that_opens_nothing_changes_nothing(self, inst):
        inst.submit()
        outsider = inst.root / "outsider.key"
        inst.run("keys", "new-officer", "--label", "outsider", "--out", str(outsider), "--no-register", passphrase=PASS_X)
        result = inst.keys("rewrap", "--key", str(outsider), passphrase=PASS_X, ok=False)
        assert result.exit_code != 0 and "nothing was changed" in result.output
        inst.decrypt(inst.export("case-1.zip"), inst.officer_key, inst.officer_pass, "out")

    def test_rewrap_with_wrong_passphrase_fails_clearly(self, inst):
        result = inst.keys("rewrap", "--key", str(inst.officer_key), passphrase="not the passphrase", ok=False)
        assert result.exit_code != 0 and "wrong passphrase" in result.output


def test_retire_refuses_last_key_of_its_role(app, officer_key, clock):
    from whistle import db, keyring

    with app.app_context():
        session = db.session()
        with pytest.raises(keyring.KeyFileError, match="last active officer key"):
            keyring.retire(session, officer_key.key_id.hex(), clock())
        newcomer = keyring.KeyInfo(KeyRole.OFFICER, "officer-2", crypto.PrivateKey.generate().public_key())
        keyring.register(session, newcomer, clock())
        keyring.retire(session, officer_key.key_id.hex(), clock())
        session.commit()
        assert [r.label for r in keyring.active_keys(session) if r.role == KeyRole.OFFICER] == ["officer-2"]
