"""Encryption at rest for secrets: config values the integration's schema marks secret, and the
client secret / refresh tokens of auth flows.

A secret is stored as ``{"$enc": "<Fernet token>"}`` in place of its value, so a reader can tell
what is encrypted without knowing the schema. The token encrypts the JSON encoding of the value,
so a secret may be any JSON value, not only a string.

Keys come from ``SECRETS_ENCRYPTION_KEYS`` (``SecretsSettings.keys``): a comma-separated list of
Fernet keys (``python -c "from store.crypto import generate_key; print(generate_key())"``). The
first key encrypts; every key decrypts (``cryptography``'s ``MultiFernet``).

With no key configured the server still starts, logs a warning, and refuses to *store* a secret
(FAILED_PRECONDITION naming the variable): nothing is ever written in plaintext, and there is no
built-in default key that could leak into production. ``make dev`` / devstack sets an explicit
development key.

Key rotation procedure (copy to README):

1. Generate a new key: ``python -c "from store.crypto import generate_key; print(generate_key())"``.
2. Put it FIRST in ``SECRETS_ENCRYPTION_KEYS``, keeping the old keys after it
   (``SECRETS_ENCRYPTION_KEYS=<new>,<old>``), and restart every server, worker and scheduler.
   New secrets are now encrypted with the new key; old ones still decrypt with the old key.
3. Re-encrypt what is stored: ``python -m store.migrate --rotate-secrets`` (same environment).
   It rewrites every ``{"$enc": ...}`` value with the first key, tenant by tenant, in one
   transaction per table, and prints how many values it rewrote.
4. Remove the old key from ``SECRETS_ENCRYPTION_KEYS`` and restart again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from engine.errors import OrchidError, PreconditionFailedError
from settings.model import SecretsSettings

__all__ = [
    "ENC_KEY",
    "SecretBox",
    "SecretDecryptionError",
    "generate_key",
    "is_encrypted",
]

log = logging.getLogger(__name__)

ENC_KEY = "$enc"
KEY_ENV = "SECRETS_ENCRYPTION_KEYS"


class SecretDecryptionError(OrchidError):
    """A stored secret cannot be decrypted with any configured key (a key was removed too early)."""


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def is_encrypted(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(ENC_KEY), str)


class SecretBox:
    """Encrypts and decrypts secret values with the configured keys."""

    def __init__(self, keys: Sequence[str]) -> None:
        try:
            fernets = [Fernet(key.encode("ascii")) for key in keys]
        except (ValueError, UnicodeEncodeError) as exc:
            raise ValueError(f"{KEY_ENV}: every key must be a url-safe base64 Fernet key (32 bytes)") from exc
        self._multi = MultiFernet(fernets) if fernets else None

    @classmethod
    def from_settings(cls, settings: SecretsSettings) -> SecretBox:
        if not settings.keys:
            log.warning(
                "%s is not set: secrets cannot be stored (writes carrying secrets fail with "
                "FAILED_PRECONDITION). Set it to one or more Fernet keys.",
                KEY_ENV,
            )
        return cls(settings.keys)

    @property
    def can_encrypt(self) -> bool:
        return self._multi is not None

    def _require(self) -> MultiFernet:
        if self._multi is None:
            raise PreconditionFailedError(
                f"secrets cannot be stored: no encryption key is configured ({KEY_ENV})"
            )
        return self._multi

    def encrypt(self, value: Any) -> dict[str, str]:
        """Return ``{"$enc": token}`` for a JSON value."""
        plaintext = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return {ENC_KEY: self._require().encrypt(plaintext).decode("ascii")}

    def decrypt(self, stored: Any) -> Any:
        """Return the plaintext of ``{"$enc": token}``; any other value is returned unchanged."""
        if not is_encrypted(stored):
            return stored
        try:
            plaintext = self._require().decrypt(stored[ENC_KEY].encode("ascii"))
        except InvalidToken as exc:
            raise SecretDecryptionError(
                f"a stored secret cannot be decrypted with the configured keys ({KEY_ENV})"
            ) from exc
        return json.loads(plaintext)

    def rotate(self, stored: Any) -> Any:
        """Re-encrypt ``{"$enc": token}`` with the first key; other values are returned unchanged."""
        if not is_encrypted(stored):
            return stored
        try:
            token = self._require().rotate(stored[ENC_KEY].encode("ascii"))
        except InvalidToken as exc:
            raise SecretDecryptionError(
                f"a stored secret cannot be decrypted with the configured keys ({KEY_ENV})"
            ) from exc
        return {ENC_KEY: token.decode("ascii")}

    def rotate_tree(self, document: Any) -> tuple[Any, int]:
        """Re-encrypt every ``{"$enc": ...}`` inside a JSON document; return it and the count."""
        if is_encrypted(document):
            return self.rotate(document), 1
        if isinstance(document, dict):
            total = 0
            out: dict[str, Any] = {}
            for key, value in document.items():
                out[key], count = self.rotate_tree(value)
                total += count
            return out, total
        if isinstance(document, list):
            items = [self.rotate_tree(value) for value in document]
            return [item for item, _ in items], sum(count for _, count in items)
        return document, 0

    def decrypt_tree(self, document: Any) -> Any:
        """Replace every ``{"$enc": ...}`` inside a JSON document by its plaintext."""
        if is_encrypted(document):
            return self.decrypt(document)
        if isinstance(document, dict):
            return {key: self.decrypt_tree(value) for key, value in document.items()}
        if isinstance(document, list):
            return [self.decrypt_tree(value) for value in document]
        return document
