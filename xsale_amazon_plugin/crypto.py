"""Encryption at rest of LWA secrets (Fernet, with key rotation through MultiFernet)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretDecryptionError(RuntimeError):
    """A stored secret cannot be decrypted with any configured key (key lost or rotated away)."""
    pass


def _as_fernet(key: str | bytes) -> Fernet:
    try:
        return Fernet(key)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            "XSALE_AMAZON_ENCRYPTION_KEY must be a Fernet key (32 url-safe base64 bytes); "
            "create one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        ) from exc


def derive_key(secret_key: str | bytes) -> bytes:
    """A Fernet key derived from the app's SECRET_KEY, for hosts that set no explicit key."""
    if isinstance(secret_key, str):
        secret_key = secret_key.encode()
    digest = hashlib.sha256(b"xsale-amazon-plugin/secrets/v1\x00" + secret_key).digest()
    return base64.urlsafe_b64encode(digest)


class SecretBox:
    """Encrypts with the first key, decrypts with any of them."""

    def __init__(self, keys: Iterable[str | bytes]):
        fernets = [_as_fernet(k) for k in keys]
        if not fernets:
            raise ValueError("At least one encryption key is required.")
        self._multi = MultiFernet(fernets)

    def encrypt(self, plaintext: str) -> str:
        return self._multi.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._multi.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError) as exc:
            raise SecretDecryptionError(
                "A stored Amazon credential cannot be decrypted with the configured "
                "XSALE_AMAZON_ENCRYPTION_KEY. Restore the old key (keep it after the new one "
                "in the list) or enter the credentials again."
            ) from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` with the current (first) key."""
        try:
            return self._multi.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken as exc:
            raise SecretDecryptionError(
                "Cannot re-encrypt: no configured key decrypts it."
            ) from exc


def make_secret_box(
    config_value: str | bytes | list | tuple | None, secret_key: str | None
) -> SecretBox:
    if config_value is None:
        if not secret_key:
            raise RuntimeError(
                "xsale_amazon_plugin needs XSALE_AMAZON_ENCRYPTION_KEY (or at least SECRET_KEY) "
                "to encrypt Amazon credentials."
            )
        return SecretBox([derive_key(secret_key)])
    if isinstance(config_value, (str, bytes)):
        parts = config_value.split(",") if isinstance(config_value, str) else [config_value]
        keys = [k for k in parts if k]
    else:
        keys = list(config_value)
    return SecretBox([k.strip() if isinstance(k, str) else k for k in keys])
