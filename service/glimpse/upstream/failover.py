"""The upstreams in the order they are tried, each behind a circuit breaker.

Which to try for a turn is `candidates()`; `ChatService` walks them until one sends a first token. An upstream
that failed `GLIMPSE_UPSTREAM_BREAKER_FAILURES` times in a row is skipped for a cool-down, so a dead primary
costs the callers nothing after its first failures.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..config import Settings, UpstreamConfig
from .breaker import CircuitBreaker
from .client import Upstream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    upstream: Upstream
    breaker: CircuitBreaker
    forced: bool = False  # every breaker was open: tried anyway

    def claim(self) -> bool:
        """May the turn that reached this upstream try it? Asked only then: a half-open breaker's one trial is
        used up by a turn that really tries it, not by one an earlier upstream answered."""
        return self.forced or self.breaker.allows()


class Upstreams:
    def __init__(self, settings: Settings, targets: Sequence[UpstreamConfig] | None = None) -> None:
        """`targets`: the settings' upstreams, unless the caller resolved them further (the demo model's address)."""
        targets = settings.upstream_targets if targets is None else targets
        # the SDK's own retries only on the last upstream: before it, the next upstream is the faster retry
        self.all = [Candidate(Upstream(target, settings, max_retries=settings.upstream_max_retries
                                       if index == len(targets) - 1 else 0),
                              CircuitBreaker(settings.upstream_breaker_failures,
                                             settings.upstream_breaker_cooldown_seconds))
                    for index, target in enumerate(targets)]

    @property
    def primary(self) -> Upstream:
        return self.all[0].upstream

    def candidates(self) -> list[Candidate]:
        """The upstreams a turn may try, in order: those whose breaker is not open (each `claim`ed as the turn
        reaches it); if every breaker is open, all of them (trying is better than certain silence)."""
        usable = [candidate for candidate in self.all if candidate.breaker.state != "open"]
        return usable or [replace(candidate, forced=True) for candidate in self.all]

    async def close(self) -> None:
        for candidate in self.all:
            try:
                await candidate.upstream.close()
            except Exception as exc:  # one failing to close must not keep the others open
                log.warning("upstream %s did not close cleanly: %s", candidate.upstream.name, exc)
