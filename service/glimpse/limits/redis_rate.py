"""Token buckets in Redis, shared by replicas: one Lua script per call, the server's clock, a key that expires once
its bucket is full. With Redis unreachable the limiter fails open: the call is allowed and counted in
`glimpse_store_errors_total{op="rate_limit"}`, and Redis is left alone for a second.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..observability.metrics import Metrics
from .rate import Rate, RateLimiter

log = logging.getLogger(__name__)

KEY_PREFIX = "glimpse:rate:"
FAIL_OPEN_SECONDS = 1.0  # after a Redis failure, calls are allowed without asking it for this long

# KEYS bucket; ARGV milliseconds per token, burst. Returns 0 when a token was taken, else the milliseconds
# until one is there.
TAKE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local interval = tonumber(ARGV[1])
local backlog = math.max((tonumber(redis.call('GET', KEYS[1]) or 0)) - now, 0)
local wait = backlog - (tonumber(ARGV[2]) - 1) * interval
if wait > 0 then return math.ceil(wait) end
redis.call('SET', KEYS[1], tostring(now + backlog + interval), 'PX', math.ceil(backlog + interval))
return 0
"""


class RedisRateLimiter(RateLimiter):
    def __init__(self, client: redis.Redis, metrics: Metrics, now: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self._take = client.register_script(TAKE)
        self._metrics = metrics
        self._now = now
        self._skip_until = 0.0

    @classmethod
    def from_url(cls, url: str, metrics: Metrics) -> RedisRateLimiter:
        # Every request waits on this: short timeouts and no retries, so an unwell Redis costs milliseconds.
        client = redis.from_url(url, socket_connect_timeout=0.25, socket_timeout=0.25, retry=Retry(NoBackoff(), 0))
        return cls(client, metrics)

    async def take(self, key: str, rate: Rate) -> float:
        if self._now() < self._skip_until:
            return 0.0
        try:
            wait_ms = await self._take(keys=[KEY_PREFIX + key], args=[rate.interval * 1000, rate.burst])
        except (RedisError, OSError) as exc:
            self._metrics.store_errors.labels("rate_limit").inc()
            self._skip_until = self._now() + FAIL_OPEN_SECONDS
            log.warning("rate limits are not applied: redis failed (%s)", exc)
            return 0.0
        return int(wait_ms) / 1000

    async def close(self) -> None:
        await self.client.aclose()
