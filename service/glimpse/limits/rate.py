"""Token buckets: `burst` tokens, refilled at `per_minute`; a call takes one or is refused.

A bucket is kept as one number, the time at which it will be full again (the GCRA form of a token bucket):
the tokens it holds at `now` are `burst - max(0, full_at - now) * rate`. A full bucket is the same as no
bucket, so idle buckets can be forgotten without changing any answer.

In memory (one replica), or in Redis (`redis_rate.py`) when the conversation store is there.
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

# 100,000 buckets take about 12 MB with their keys (measured); past that the least recently used bucket is
# dropped, which only ever gives its client a full bucket again.
MAX_BUCKETS = 100_000
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


def whole_seconds(wait: float) -> int:
    """A wait as Retry-After says it: whole seconds, at least one."""
    return max(1, math.ceil(wait))
