"""Password-protected links: the slow check, the attempt limit, and the cookie that remembers.

The check (argon2id) runs in a thread, off the event loop. Success sets a signed cookie valid
for 30 minutes for that link and that password (changing the password voids old cookies).

Attempts are reserved before the check, atomically (one Lua call), per link and visitor
address and, for IPv6, per /64 too (one subscriber's network; it may hold
`PREFIX_FACTOR` x the limit, so a household is not locked out by one person, while rotating
addresses inside the /64 stays capped). So N concurrent guesses cost at most the limit in
argon2 verifies; a wrong password keeps its reservation, a right one gives it back. When Redis
is unreachable the worker counts in memory the same way (so the limit holds per worker: with
N workers and Redis down, at most N x the limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import time
from socket import AF_INET6, inet_ntop, inet_pton
from typing import NamedTuple
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


PREFIX_FACTOR = 4  # an IPv6 /64 may fail this many times the per-address limit
_LOCAL_KEYS = 100_000  # bound of the in-memory fallback counter
_REDIS_SHARE = 8  # Redis calls in flight for password attempts, per worker

# KEYS: the counters; ARGV[1]: the window in seconds, ARGV[1 + i]: the limit of KEYS[i].
# Every counter must be under its limit, then all are counted: a refused attempt costs
# nothing and does not extend the lock. INCR then EXPIRE on the first: Redis 6.2 has no
# EXPIRE NX, and a script runs alone, so no attempt slips in between.
_RESERVE = """
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i + 1]) then return 0 end
end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, ARGV[1]) end
end
return 1
"""
_REFUND = """
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') > 0 then redis.call('DECR', key) end
end
return 1
"""


def _network_64(ip: str) -> str | None:
    if ":" not in ip:
        return None
    try:
        packed = inet_pton(AF_INET6, ip)
    except (OSError, ValueError):
        return None
    return inet_ntop(AF_INET6, packed[:8] + bytes(8)) + "/64"


class Reservation(NamedTuple):
    keys: list[str]
    local: bool


class Attempts:
    """Password attempts per (link, visitor address) and (link, IPv6 /64)."""

    def __init__(self, redis: Redis, limit: int) -> None:
        self.limit = limit
        self._reserve = redis.register_script(_RESERVE)
        self._refund = redis.register_script(_REFUND)
        self._gate = asyncio.Semaphore(_REDIS_SHARE)
        self._local: dict[str, tuple[float, int]] = {}

    def _limits(self, link_id: str, ip: str) -> dict[str, int]:
        # One hash tag per link: both counters live in one Redis Cluster slot.
        prefix = f"ricochet:pwtries:{{{link_id}}}:"
        limits = {prefix + ip: self.limit}
        if net := _network_64(ip):
            limits[prefix + net] = self.limit * PREFIX_FACTOR
        return limits

    async def reserve(self, link_id: str, ip: str) -> Reservation | None:
        """Count one attempt before it is checked; None when the limit is reached."""
        limits = self._limits(link_id, ip)
        keys = list(limits)
        # Counted here too, before Redis answers: the worker's count holds every attempt it
        # let through or may be letting through, so however many requests fail over to it
        # below, mid-flight or not, a worker never grants more than the limit.
        self._count_local(limits, check=False)
        try:
            # A bounded share of the connection pool: a flood of POSTs must not exhaust it,
            # or its own errors would send it to the fallback.
            async with self._gate:
                granted = await self._reserve(keys, [ATTEMPT_WINDOW_S, *limits.values()])
        except Exception:
            # Redis unreachable: this worker's own count decides.
            self._uncount_local(keys)
            return Reservation(keys, local=True) if self._count_local(limits, check=True) else None
        if not granted:
            self._uncount_local(keys)
            return None
        return Reservation(keys, local=False)

    async def refund(self, reservation: Reservation) -> None:
        """Give an attempt back (the password was right)."""
        self._uncount_local(reservation.keys)
        if not reservation.local:
            # Failing, the attempt stays counted: a visitor who knows the password can wait.
            with contextlib.suppress(Exception):
                async with self._gate:
                    await self._refund(reservation.keys)

    def _count_local(self, limits: dict[str, int], check: bool) -> bool:
        # No await in here: within a worker this is as atomic as the script.
        now = time.monotonic()
        counts = {}
        for key, limit in limits.items():
            since, count = self._local.get(key, (now, 0))
            if now - since > ATTEMPT_WINDOW_S:
                since, count = now, 0
            if check and count >= limit:
                return False
            counts[key] = (since, count)
        if len(self._local) >= _LOCAL_KEYS:
            self._evict(now)
        for key, (since, count) in counts.items():
            self._local[key] = (since, count + 1)
        return True

    def _uncount_local(self, keys: list[str]) -> None:
        for key in keys:
            since, count = self._local.get(key, (0.0, 0))
            if count > 0:
                self._local[key] = (since, count - 1)

    def _evict(self, now: float) -> None:
        expired = [k for k, (since, _) in self._local.items() if now - since > ATTEMPT_WINDOW_S]
        for key in expired:
            del self._local[key]
        while len(self._local) >= _LOCAL_KEYS:  # still full: forget the oldest windows first
            del self._local[next(iter(self._local))]
