"""Which rate applies to which kind of call, per client address, and the refusal.

`session` (GET /v1/session) is strict because each call spends the ElevenLabs API key on a signed URL.
`chat` is generous: ElevenLabs' servers call it for every user of the agent from a handful of addresses, so
one bucket there is shared by many conversations at once; it is a brake on a runaway caller, not a per-user
limit. A kind whose `per_minute` is 0 is not limited.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..config import Settings
from ..errors import RateLimited
from ..observability.metrics import Metrics
from .client_ip import ClientAddresses, parse_networks
from .rate import Rate, RateLimiter, whole_seconds

SESSION, UPLOAD, CHAT = "session", "upload", "chat"


class RateLimits:
    def __init__(self, limiter: RateLimiter, rates: Mapping[str, Rate], clients: ClientAddresses,
                 metrics: Metrics) -> None:
        self._limiter = limiter
        self._rates = dict(rates)
        self._clients = clients
        self._metrics = metrics

    @classmethod
    def from_settings(cls, settings: Settings, limiter: RateLimiter, metrics: Metrics) -> RateLimits:
        wanted = {SESSION: (settings.session_rate_per_minute, settings.session_rate_burst),
                  UPLOAD: (settings.upload_rate_per_minute, settings.upload_rate_burst),
                  CHAT: (settings.chat_rate_per_minute, settings.chat_rate_burst)}
        rates = {kind: Rate(per_minute, burst) for kind, (per_minute, burst) in wanted.items() if per_minute}
        return cls(limiter, rates, ClientAddresses(parse_networks(settings.trusted_proxies)), metrics)

    def limits(self, kind: str) -> bool:
        return kind in self._rates

    async def check(self, kind: str, route: str, peer: str | None, forwarded_for: Iterable[str] = ()) -> None:
        """Take one call of `kind` from the caller's bucket; raise RateLimited (counted by `route`) when empty."""
        rate = self._rates.get(kind)
        if rate is None:
            return
        wait = await self._limiter.take(f"{kind}:{self._clients.key_of(peer, forwarded_for)}", rate)
        if wait <= 0:
            return
        self._metrics.rate_limited.labels(route).inc()
        seconds = whole_seconds(wait)
        raise RateLimited(f"Too many requests to {route} from your address (at most {rate.per_minute} a minute, "
                          f"{rate.burst} at once). Try again in {seconds} s.", retry_after=str(seconds))
