"""Per-API-key request limits in Redis (sliding window), with RateLimit headers.

Built on the `limits` library. Limits fail open: if Redis is unreachable the request is
served (the API must not go down with the cache), and a warning is logged.
"""

from __future__ import annotations

import logging
import time

from limits import RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import ConnectionPool

from control.errors import TooManyRequests

log = logging.getLogger("ricochet.control")


class KeyLimiter:
    def __init__(self, redis_url: str, per_minute: int) -> None:
        uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
        self.item = RateLimitItemPerMinute(per_minute)
        # Our own pool, so shutdown can close its connections.
        self.pool = ConnectionPool.from_url(redis_url)
        self.storage = RedisStorage(
            uri,
            implementation="redispy",
            key_prefix="ricochet-rl",
            connection_pool=self.pool,  # type: ignore[arg-type]
        )
        self.limiter = SlidingWindowCounterRateLimiter(self.storage)

    async def hit(self, key_id: str) -> dict[str, str]:
        """Count one request; return the RateLimit headers, or raise 429 when over."""
        try:
            allowed = await self.limiter.hit(self.item, key_id)
            stats = await self.limiter.get_window_stats(self.item, key_id)
        except Exception as exc:  # fail open: see module docstring
            log.warning("rate limiter unavailable (%s); serving without a limit", exc)
            return {}
        reset = max(0, int(stats.reset_time - time.time()) + 1)
        headers = {
            "ratelimit-limit": str(self.item.amount),
            "ratelimit-remaining": str(max(0, stats.remaining)),
            "ratelimit-reset": str(reset),
            "ratelimit-policy": f"{self.item.amount};w=60",
        }
        if not allowed:
            raise TooManyRequests.rate_limited(reset, headers)
        return headers

    async def close(self) -> None:
        await self.pool.disconnect()
