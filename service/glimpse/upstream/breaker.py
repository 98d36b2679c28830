"""A circuit breaker per upstream: after `failures` failures in a row it is skipped for `cooldown` seconds; then
one request tries it (half-open) while the others keep skipping it for another cool-down. A success closes it, a
failure keeps it open; a trial that never ends (its caller left) only delays the next one."""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(self, failures: int, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._open_until: float | None = None

    @property
    def state(self) -> str:
        """closed (used), open (skipped) or half_open (the cool-down is over: the next request tries it)."""
        if self._open_until is None:
            return "closed"
        return "open" if self._clock() < self._open_until else "half_open"

    def allows(self) -> bool:
        """May a request use this upstream now? In half-open state only the one that asks first."""
        state = self.state
        if state == "half_open":
            self._open_until = self._clock() + self._cooldown  # the others skip it while this one tries
        return state != "open"

    def succeeded(self) -> None:
        self._failures = 0
        self._open_until = None

    def failed(self) -> None:
        self._failures += 1
        if self._failures >= self._threshold:
            self._open_until = self._clock() + self._cooldown
