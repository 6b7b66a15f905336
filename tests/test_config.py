"""Start-up fails closed and says exactly what is missing."""

from __future__ import annotations

import pytest

from whistle import create_app, db
from whistle.config import ConfigError, load
from whistle.models import Base


def test_no_secret_key_refuses_to_start(tmp_path, monkeypatch):
    monkeypatch.delenv("WHISTLE_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match="No secret key"):
        create_app({"instance_path": tmp_path})


def test_short_secret_key_refused(tmp_path):
    with pytest.raises(ConfigError, match="shorter than 32"):
        load(tmp_path, {"secret_key": "dev"})


def test_no_recipient_keys_refuses_to_start(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    app = create_app({"instance_path": tmp_path, "secret_key": "k" * 40, "database_url": url}, require_recipients=False)
    with app.app_context():
        Base.metadata.create_all(db.engine())
    with pytest.raises(ConfigError, match="no trust anchor at .*trust-anchor.json .*whistle keys anchor"):
        create_app({"instance_path": tmp_path, "secret_key": "k" * 40, "database_url": url})


def test_missing_anchor_named(make_app, instance, database_url):
    make_app()
    (instance / "trust-anchor.json").unlink()
    with pytest.raises(ConfigError, match="no trust anchor"):
        create_app({"instance_path": instance, "secret_key": "k" * 40, "database_url": database_url})


def test_officer_key_without_certificate_does_not_count(make_app, instance, database_url):
    app = make_app()
    from whistle.models import RecipientKey

    with app.app_context():
        for row in db.session().query(RecipientKey).filter(RecipientKey.certificate.is_not(None)):
            row.certificate = None
        db.session().commit()
    with pytest.raises(ConfigError, match="no active officer key with a certificate from the recovery key"):
        create_app({"instance_path": instance, "secret_key": "k" * 40, "database_url": database_url})


def test_anchor_of_another_recovery_key_voids_the_certificates(make_app, instance, database_url):
    from whistle import crypto, keyring

    make_app()
    keyring.write_anchor(instance / "trust-anchor.json", crypto.PrivateKey.generate())
    with pytest.raises(ConfigError, match="no active officer key with a certificate"):
        create_app({"instance_path": instance, "secret_key": "k" * 40, "database_url": database_url})


def test_no_database_schema_refuses_to_start(tmp_path):
    with pytest.raises(ConfigError, match="whistle init"):
        create_app({"instance_path": tmp_path, "secret_key": "k" * 40})


def test_environment_overrides_instance_file(tmp_path, monkeypatch):
    (tmp_path / "config.toml").write_text('secret_key = "' + "f" * 40 + '"\nmax_files = 3\n')
    monkeypatch.setenv("WHISTLE_MAX_FILES", "7")
    settings = load(tmp_path)
    assert settings.max_files == 7 and settings.secret_key == "f" * 40


def test_bad_instance_file_named(tmp_path):
    (tmp_path / "config.toml").write_text("secret_key = \n")
    with pytest.raises(ConfigError, match="config.toml is not valid TOML"):
        load(tmp_path)


def test_tip_refused_with_503_when_keys_vanish(make_app):
    app = make_app()
    from whistle import keyring
    from whistle.models import RecipientKey

    with app.app_context():
        session = db.session()
        for row in session.query(RecipientKey):
            keyring.retire(session, row.key_id.hex(), row.created_on, allow_last=True)
        session.commit()
    from .conftest import Reporter

    response = Reporter(app.test_client()).submit()
    assert response.status_code == 503
    assert 'class="code"' not in response.get_data(as_text=True)
