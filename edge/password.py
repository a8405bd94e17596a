"""Password-protected links: the form's POST, the slow check, and the cookie that remembers.

The check (argon2id) runs in a thread, off the event loop. Success sets a signed cookie valid
for 30 minutes for that link and that password (changing the password voids old cookies).
Wrong attempts are counted per visitor IP and link in Redis (in memory if Redis is down)
and refused past the limit for 10 minutes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from urllib.parse import parse_qs

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis

from shared.records import LinkRecord

COOKIE_TTL_S = 30 * 60
ATTEMPT_WINDOW_S = 10 * 60
MAX_FORM_BYTES = 4096
_hasher = PasswordHasher()


def cookie_name(record: LinkRecord) -> str:
    return "ricpw_" + record.link_id.replace("-", "")[:16]


def _mac(secret: bytes, record: LinkRecord, expires: int) -> str:
    message = f"{record.link_id}|{record.password_hash}|{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]


def make_cookie(secret: bytes, record: LinkRecord, now: float | None = None) -> tuple[str, str]:
    expires = int((now or time.time()) + COOKIE_TTL_S)
    return cookie_name(record), f"{expires}.{_mac(secret, record, expires)}"


def cookie_valid(
    secret: bytes, record: LinkRecord, value: str | None, now: float | None = None
) -> bool:
    if not value:
        return False
    expires_text, _, mac = value.partition(".")
    if not expires_text.isdigit() or int(expires_text) < (now or time.time()):
        return False
    return hmac.compare_digest(mac.encode(), _mac(secret, record, int(expires_text)).encode())


def password_from_form(body: bytes) -> str | None:
    if len(body) > MAX_FORM_BYTES:
        return None
    values = parse_qs(body.decode("utf-8", "replace")).get("password")
    return values[0] if values else None


async def check(record: LinkRecord, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(record.password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


class Attempts:
    """Wrong-password counter per (link, visitor IP)."""

    def __init__(self, redis: Redis, limit: int) -> None:
        self.redis = redis
        self.limit = limit
        self._local: dict[str, tuple[float, int]] = {}

    async def allowed(self, link_id: str, ip: str) -> bool:
        return await self._count(link_id, ip, add=0) < self.limit

    async def failed(self, link_id: str, ip: str) -> None:
        await self._count(link_id, ip, add=1)

    async def _count(self, link_id: str, ip: str, add: int) -> int:
        key = f"ricochet:pwtries:{link_id}:{ip}"
        try:
            if add:
                # SET NX EX then INCR: the window starts at the first failure (Redis 6.2 has
                # no EXPIRE NX).
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.set(key, 0, ex=ATTEMPT_WINDOW_S, nx=True)
                    pipe.incrby(key, add)
                    _, count = await pipe.execute()
                return int(count)
            value = await self.redis.get(key)
            return int(value or 0)
        except Exception:
            # Redis down: count in this worker so guessing is still slowed down.
            now = time.monotonic()
            since, count = self._local.get(key, (now, 0))
            if now - since > ATTEMPT_WINDOW_S:
                since, count = now, 0
            self._local[key] = (since, count + add)
            return count + add
