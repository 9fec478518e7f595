"""Secrets at rest: ciphertext in the column, key rotation, never in HTML or job data."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from xsale_amazon_plugin.crypto import SecretBox, SecretDecryptionError, derive_key, make_secret_box

from .hostapp import CLIENT_SECRET, REFRESH_TOKEN, make_host


def raw_secrets(host) -> tuple[str, str]:
    with host.app.app_context():
        return host.db.session.execute(sa.text(
            "SELECT lwa_client_secret, refresh_token FROM xsale_amazon_integration"
        )).one()


def test_column_holds_ciphertext_and_round_trips(db_url, redis_conn):
    host = make_host(db_url)
    host.add_integration()
    secret, token = raw_secrets(host)
    assert CLIENT_SECRET not in secret and REFRESH_TOKEN not in token
    assert secret.startswith("gAAAA") and token.startswith("gAAAA")  # Fernet tokens
    with host.app.app_context():
        integ = host.db.session.execute(sa.select(host.models.AmazonIntegration)).scalar_one()
        assert integ.lwa_client_secret == CLIENT_SECRET
        assert integ.refresh_token == REFRESH_TOKEN
        assert CLIENT_SECRET not in repr(integ) and CLIENT_SECRET not in str(integ)


def test_key_rotation_with_old_key_kept_and_rotate_command(db_url, redis_conn, tmp_path):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    url = db_url
    host = make_host(url, config={"XSALE_AMAZON_ENCRYPTION_KEY": old})
    host.add_integration()
    before = raw_secrets(host)
    rotated = make_host(url, config={"XSALE_AMAZON_ENCRYPTION_KEY": [new, old]})
    with rotated.app.app_context():
        integ = rotated.db.session.execute(sa.select(rotated.models.AmazonIntegration)).scalar_one()
        assert integ.refresh_token == REFRESH_TOKEN  # the old key still decrypts
    result = rotated.app.test_cli_runner().invoke(args=["xsale-amazon", "rotate-key"])
    assert "Re-encrypted 2 secrets" in result.output, result.output
    after = raw_secrets(rotated)
    assert after != before
    new_only = make_host(url, config={"XSALE_AMAZON_ENCRYPTION_KEY": new})
    with new_only.app.app_context():
        integ = new_only.db.session.execute(
            sa.select(new_only.models.AmazonIntegration)).scalar_one()
        assert integ.lwa_client_secret == CLIENT_SECRET
    wrong = make_host(url, config={"XSALE_AMAZON_ENCRYPTION_KEY": old})
    with wrong.app.app_context(), pytest.raises(SecretDecryptionError, match="cannot be decrypted"):
        _ = wrong.db.session.execute(
            sa.select(wrong.models.AmazonIntegration)).scalar_one().refresh_token


def test_secret_box_rules():
    box = make_secret_box(None, "app-secret")
    assert box.decrypt(box.encrypt("x")) == "x"
    assert make_secret_box(None, "app-secret").decrypt(box.encrypt("y")) == "y"
    assert derive_key("a") != derive_key("b")
    with pytest.raises(ValueError, match="Fernet key"):
        SecretBox(["not-a-key"])
    with pytest.raises(RuntimeError, match="ENCRYPTION_KEY"):
        make_secret_box(None, None)
    two = make_secret_box(",".join([Fernet.generate_key().decode()] * 2), None)
    assert two.decrypt(two.encrypt("z")) == "z"
