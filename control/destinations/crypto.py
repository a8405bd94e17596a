"""Destination secrets: custom header values, vendor keys, signing secrets. Encrypted, since
each must be usable to send; never returned by the API after they are given.

Fernet under a key derived from RICOCHET_SECRET_KEY with its own HKDF `info`, as webhook
secrets are (control/webhooks/secrets.py), so neither key opens the other's tokens.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
from typing import TYPE_CHECKING

import msgspec
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:
    from control.destinations.models import Destination
    from control.settings import ControlSettings

_INFO = b"ricochet destination secrets"


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


class Secrets(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What `secrets_encrypted` holds."""

    headers: dict[str, str] = {}
    values: dict[str, str] = {}  # write_key, api_secret, access_token, webhook_url


def seal(settings: ControlSettings, secrets: Secrets) -> str | None:
    if not secrets.headers and not secrets.values:
        return None
    return encrypt(settings, msgspec.json.encode(secrets).decode())


def unseal(settings: ControlSettings, token: str | None) -> Secrets:
    """Raises cryptography's InvalidToken if RICOCHET_SECRET_KEY changed since."""
    if token is None:
        return Secrets()
    return msgspec.json.decode(decrypt(settings, token), type=Secrets)


def signing_secrets(
    settings: ControlSettings, destination: Destination, now: dt.datetime
) -> list[str]:
    """Current signing secret first, then the previous one while its overlap lasts."""
    if destination.secret_encrypted is None:
        return []
    result = [decrypt(settings, destination.secret_encrypted)]
    if (
        destination.previous_secret_encrypted is not None
        and destination.previous_secret_expires_at is not None
        and destination.previous_secret_expires_at > now
    ):
        result.append(decrypt(settings, destination.previous_secret_encrypted))
    return result
