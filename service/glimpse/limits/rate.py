"""Token buckets: `burst` tokens, refilled at `per_minute`; a call takes one or is refused.

A bucket is kept as one number, the time at which it will be full again (the GCRA form of a token bucket):
the tokens it holds at `now` are `burst - max(0, full_at - now) * rate`. A full bucket is the same as no
bucket, so idle buckets can be forgotten without changing any answer.

In memory (one replica) or in Redis (shared by replicas, one Lua script per call, the server's clock, a key
that expires once its bucket is full). With Redis unreachable the limiter fails open: the call is allowed and
counted in `glimpse_store_errors_total{op="rate_limit"}`, and Redis is left alone for a second.
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..config import Settings
from ..observability.metrics import Metrics

log = logging.getLogger(__name__)

# 100,000 buckets take about 12 MB with their keys (measured); past that the least recently used bucket is
# dropped, which only ever gives its client a full bucket again.
MAX_BUCKETS = 100_000
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


@dataclass(frozen=True)
class Rate:
    per_minute: int
    burst: int

    def __post_init__(self) -> None:
        if self.per_minute <= 0 or self.burst <= 0:
            raise ValueError("a rate needs a positive per_minute and burst")

    @property
    def interval(self) -> float:
        """Seconds per token."""
        return 60.0 / self.per_minute


class RateLimiter(ABC):
    @abstractmethod
    async def take(self, key: str, rate: Rate) -> float:
        """Take a token from bucket `key`: 0 when taken, else the seconds until one is there (nothing taken)."""

    async def close(self) -> None:
        return None


class MemoryRateLimiter(RateLimiter):
    """Buckets in a dict, least recently used first; bounded by `max_buckets`."""

    def __init__(self, max_buckets: int = MAX_BUCKETS, now: Callable[[], float] = time.monotonic) -> None:
        self._full_at: OrderedDict[str, float] = OrderedDict()
        self._max_buckets = max_buckets
        self._now = now

    async def take(self, key: str, rate: Rate) -> float:
        return self.take_now(key, rate)

    def take_now(self, key: str, rate: Rate) -> float:
        now = self._now()
        backlog = max(self._full_at.get(key, now) - now, 0.0)
        wait = backlog - (rate.burst - 1) * rate.interval
        if wait > 0:
            return wait
        self._full_at[key] = now + backlog + rate.interval
        self._full_at.move_to_end(key)
        self._forget_idle(now)
        return 0.0

    def _forget_idle(self, now: float) -> None:
        while self._full_at:
            key, full_at = next(iter(self._full_at.items()))
            if full_at > now and len(self._full_at) <= self._max_buckets:
                return
            del self._full_at[key]

    def __len__(self) -> int:
        return len(self._full_at)


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


def open_rate_limiter(settings: Settings, metrics: Metrics) -> RateLimiter:
    """Where the conversation store is, the buckets are: shared by replicas when that is Redis."""
    if settings.store_scheme == "memory":
        return MemoryRateLimiter()
    return RedisRateLimiter.from_url(settings.store_url, metrics)


def whole_seconds(wait: float) -> int:
    """A wait as Retry-After says it: whole seconds, at least one."""
    return max(1, math.ceil(wait))
