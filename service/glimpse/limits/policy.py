"""Which rate applies to which kind of call, per client address, and the refusal.

`session` (GET /v1/session) is strict because each call spends the ElevenLabs API key on a signed URL.
`chat` is generous: it is a brake on a runaway caller, not a per-user limit. A turn that shows the custom-LLM
key (`keyed`) is ElevenLabs, which calls for every user of the agent from a handful of addresses: it is never
limited per address (one bucket would be shared by all of them), only per conversation (`conversation`: a person
speaks a turn every few seconds), and by the cap on turns in flight (`in_flight.py`). Without a key configured,
or without the key shown, turns are limited per address. A kind whose `per_minute` is 0 is not limited.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..auth import presents_key
from ..config import Settings
from ..errors import RateLimited
from ..observability.metrics import Metrics
from .client_ip import ClientAddresses, parse_networks
from .rate import Rate, RateLimiter, whole_seconds

SESSION, UPLOAD, CHAT, CONVERSATION = "session", "upload", "chat", "conversation"


class RateLimits:
    def __init__(self, limiter: RateLimiter, rates: Mapping[str, Rate], clients: ClientAddresses,
                 metrics: Metrics, custom_llm_key: str = "") -> None:
        self._limiter = limiter
        self._rates = dict(rates)
        self._clients = clients
        self._metrics = metrics
        self._key = custom_llm_key

    @classmethod
    def from_settings(cls, settings: Settings, limiter: RateLimiter, metrics: Metrics) -> RateLimits:
        wanted = {SESSION: (settings.session_rate_per_minute, settings.session_rate_burst),
                  UPLOAD: (settings.upload_rate_per_minute, settings.upload_rate_burst),
                  CHAT: (settings.chat_rate_per_minute, settings.chat_rate_burst),
                  CONVERSATION: (settings.conversation_rate_per_minute, settings.conversation_rate_burst)}
        rates = {kind: Rate(per_minute, burst) for kind, (per_minute, burst) in wanted.items() if per_minute}
        return cls(limiter, rates, ClientAddresses(parse_networks(settings.trusted_proxies)), metrics,
                   settings.custom_llm_key.get_secret_value())

    def limits(self, kind: str) -> bool:
        return kind in self._rates

    def keyed(self, authorization: str | None) -> bool:
        """Whether a call shows the custom-LLM key: ElevenLabs, whose turns are not limited per address."""
        return presents_key(authorization, self._key)

    async def check_conversation(self, route: str, authorization: str | None, conversation_id: str | None) -> None:
        """For a keyed turn, take one from its conversation's bucket (`conversation_id`: ElevenLabs' own,
        `ids.elevenlabs_conversation_id_of`); raise RateLimited when empty. An unkeyed turn was limited per address
        already; a keyed one naming no conversation only by the cap on turns in flight."""
        rate = self._rates.get(CONVERSATION)
        if rate is None or conversation_id is None or not self.keyed(authorization):
            return
        wait = await self._limiter.take(f"{CONVERSATION}:{conversation_id}", rate)
        if wait > 0:
            raise self._refused(route, wait, f"Too many turns in this conversation (at most {rate.per_minute} a "
                                f"minute, {rate.burst} at once)")

    async def check(self, kind: str, route: str, peer: str | None, forwarded_for: Iterable[str] = ()) -> None:
        """Take one call of `kind` from the caller's bucket; raise RateLimited (counted by `route`) when empty."""
        rate = self._rates.get(kind)
        if rate is None:
            return
        wait = await self._limiter.take(f"{kind}:{self._clients.key_of(peer, forwarded_for)}", rate)
        if wait > 0:
            raise self._refused(route, wait, f"Too many requests to {route} from your address (at most "
                                f"{rate.per_minute} a minute, {rate.burst} at once)")

    def _refused(self, route: str, wait: float, reason: str) -> RateLimited:
        self._metrics.rate_limited.labels(route).inc()
        seconds = whole_seconds(wait)
        return RateLimited(f"{reason}. Try again in {seconds} s.", retry_after=str(seconds))
