"""The services every handler shares, built once from Settings and held under one AppKey."""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field

from aiohttp import web

from .auth import Signer
from .config import Settings
from .elevenlabs import ElevenLabs
from .injection import ImageInjector
from .metrics import Metrics
from .storage import ImageStorage, open_storage
from .store import ConversationStore, open_store
from .tracing import Tracing
from .upstream import Upstream
from .urls import ImageUrls

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    store: ConversationStore
    storage: ImageStorage
    signer: Signer
    urls: ImageUrls
    injector: ImageInjector
    upstream: Upstream
    elevenlabs: ElevenLabs
    metrics: Metrics
    tracing: Tracing
    draining: bool = False
    live_streams: int = 0
    no_live_streams: asyncio.Event = field(default_factory=asyncio.Event)

    def stream_started(self) -> None:
        self.live_streams += 1
        self.metrics.active_streams.inc()
        self.no_live_streams.clear()

    def stream_ended(self) -> None:
        self.live_streams -= 1
        self.metrics.active_streams.dec()
        if self.live_streams == 0:
            self.no_live_streams.set()

    def public_base_url(self, request: web.Request) -> str:
        return self.settings.public_base_url or f"{request.scheme}://{request.host}"


SERVICES = web.AppKey("services", Services)


def build_services(settings: Settings, *, metrics: Metrics | None = None, tracing: Tracing | None = None,
                   storage: ImageStorage | None = None, store: ConversationStore | None = None) -> Services:
    secret = settings.signing_secret.encode() if settings.signing_secret else secrets.token_bytes(32)
    if not settings.signing_secret:
        log.warning("GLIMPSE_SIGNING_SECRET is not set: using a random one, so image URLs and upload tokens "
                    "are only valid on this replica until it restarts")
    signer = Signer(secret)
    storage = storage or open_storage(settings)
    store = store or open_store(settings)
    urls = ImageUrls(signer, storage, settings.image_url_ttl_seconds)
    metrics = metrics or Metrics()
    return Services(
        settings=settings, store=store, storage=storage, signer=signer, urls=urls,
        injector=ImageInjector(settings, store, storage, urls, metrics),
        upstream=Upstream(settings), elevenlabs=ElevenLabs(settings), metrics=metrics,
        tracing=tracing or Tracing.from_environment(),
    )
