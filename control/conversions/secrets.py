"""Conversion API signing secrets: one per workspace, generated here, shown once.

Like webhook secrets (control/webhooks/secrets.py) they must be usable to verify an HMAC,
so they are kept with Fernet, not hashed; the key is derived from RICOCHET_SECRET_KEY with
HKDF under its own `info`, so it differs from the webhook key and every other use of the
pepper. Changing RICOCHET_SECRET_KEY makes stored secrets unusable: rotate them then.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import secrets as _secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from control.conversions.models import ConversionSecret

PREFIX = "cvsec_"
_INFO = b"ricochet conversion secrets"


@functools.lru_cache(maxsize=8)
def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(secret_key: str, plaintext: str) -> str:
    return _fernet(secret_key).encrypt(plaintext.encode()).decode("ascii")


def decrypt(secret_key: str, token: str) -> str:
    return _fernet(secret_key).decrypt(token.encode("ascii")).decode()


def new_secret() -> str:
    """`cvsec_` + 32 URL-safe random characters (192 bits)."""
    return PREFIX + _secrets.token_urlsafe(24)


def mask(secret: str) -> str:
    return f"{PREFIX}…{secret[-4:]}"


def masked(secret_key: str, row: ConversionSecret) -> str:
    try:
        return mask(decrypt(secret_key, row.secret_encrypted))
    except InvalidToken:  # RICOCHET_SECRET_KEY changed since: a rotation makes a usable one
        return mask("????")


def accepted(secret_key: str, row: ConversionSecret, now: dt.datetime) -> list[str]:
    """The secrets a request may be signed with: the current one, and the previous one
    while its overlap after a rotation lasts. Undecryptable ones are left out."""
    tokens = [row.secret_encrypted]
    if (
        row.previous_secret_encrypted is not None
        and row.previous_secret_expires_at is not None
        and row.previous_secret_expires_at > now
    ):
        tokens.append(row.previous_secret_encrypted)
    found = []
    for token in tokens:
        try:
            found.append(decrypt(secret_key, token))
        except InvalidToken:
            continue
    return found
