"""Webhook signing secrets: generated once, shown once, stored encrypted.

Secrets must be usable to sign (they are not hashed like API keys), so they are kept with
Fernet under a key derived from RICOCHET_SECRET_KEY (HKDF-SHA256, its own `info`, so the
key differs from every other use of the pepper). Changing the secret key makes stored
webhook secrets undecryptable: endpoints then need a rotation.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import secrets as _secrets
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:
    from control.settings import ControlSettings
    from control.webhooks.models import WebhookEndpoint

PREFIX = "whsec_"
_INFO = b"ricochet webhook secrets"


@functools.lru_cache(maxsize=8)
def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(settings: ControlSettings, plaintext: str) -> str:
    return _fernet(settings.secret_key).encrypt(plaintext.encode()).decode("ascii")


def decrypt(settings: ControlSettings, token: str) -> str:
    return _decrypt(settings.secret_key, token)


# Every delivery attempt signs with its target's secrets: remember the last few thousand
# instead of paying Fernet (HMAC check + AES) per attempt. A token that fails to decrypt
# raises each time (exceptions are not cached).
@functools.lru_cache(maxsize=4096)
def _decrypt(secret_key: str, token: str) -> str:
    return _fernet(secret_key).decrypt(token.encode("ascii")).decode()


def new_secret() -> str:
    """ "whsec_" + 32 URL-safe random characters (192 bits)."""
    return PREFIX + _secrets.token_urlsafe(24)


def mask(secret: str) -> str:
    return f"{PREFIX}…{secret[-4:]}"


def signing_secrets(
    settings: ControlSettings, endpoint: WebhookEndpoint, now: dt.datetime
) -> list[str]:
    """The secrets to sign with: the current one first, then the previous one while its
    overlap after a rotation lasts (each gives its own `v1=` in X-Nim-Signature)."""
    result = [decrypt(settings, endpoint.secret_encrypted)]
    if (
        endpoint.previous_secret_encrypted is not None
        and endpoint.previous_secret_expires_at is not None
        and endpoint.previous_secret_expires_at > now
    ):
        result.append(decrypt(settings, endpoint.previous_secret_encrypted))
    return result
