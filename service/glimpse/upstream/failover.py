"""The upstreams in the order they are tried, each behind a circuit breaker.

Which to try for a turn is `candidates()`; `ChatService` walks them until one sends a first token. An upstream
that failed `GLIMPSE_UPSTREAM_BREAKER_FAILURES` times in a row is skipped for a cool-down, so a dead primary
costs the callers nothing after its first failures.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..config import Settings
from ..errors import UpstreamError, UpstreamLacksApi, UpstreamRateLimited, UpstreamTimedOut
from .breaker import CircuitBreaker
from .client import Upstream

log = logging.getLogger(__name__)


def fails_over(error: UpstreamError) -> bool:
    """Is this failure the upstream's, so that another one may answer? Connection errors, timeouts, 429, 5xx,
    refused credentials, a missing API; not a refusal of the request itself (a 400 stays the caller's)."""
    return (isinstance(error, UpstreamTimedOut | UpstreamRateLimited | UpstreamLacksApi)
            or type(error) is UpstreamError)


@dataclass
class Candidate:
    upstream: Upstream
    breaker: CircuitBreaker


class Upstreams:
    def __init__(self, settings: Settings) -> None:
        targets = settings.upstream_targets
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
        """The upstreams a turn may try, in order: those whose breaker lets it; if every breaker is open, all of
        them (trying is better than certain silence)."""
        allowed = [candidate for candidate in self.all if candidate.breaker.allows()]
        return allowed or list(self.all)

    async def close(self) -> None:
        for candidate in self.all:
            try:
                await candidate.upstream.close()
            except Exception as exc:  # one failing to close must not keep the others open
                log.warning("upstream %s did not close cleanly: %s", candidate.upstream.name, exc)
