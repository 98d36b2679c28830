"""What the handlers share, one `web.AppKey` each, and one cleanup context per resource that must be
opened and closed (as in aiohttp's examples).

`add_resources` registers the contexts in dependency order; aiohttp runs them in that order at start-up
and closes them in reverse, each one even when another failed. The services the handlers call are plain
objects built on those resources once they are open (`_build_services`, an on-startup step).

The `open_*` factories choose a backend from the settings; each backend is imported only when chosen (Redis, GCS, S3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from aiohttp import web

from .auth import Signer
from .chat.service import ChatService
from .config import Settings
from .conversation.injection import ImageInjector
from .conversation.payload_memory import TurnPayloadMemory
from .conversation.sessions import PageSessions
from .conversation.store import ConversationStore
from .drain import Drain
from .elevenlabs.client import ElevenLabs
from .images.storage import ImageStorage
from .images.sweeper import sweep_forever
from .images.uploads import ImageUploads
from .images.urls import ImageUrls
from .limits.bodies import BodyBudget
from .limits.in_flight import TurnsInFlight
from .limits.policy import RateLimits
from .limits.quota import Quotas
from .limits.rate import MemoryRateLimiter, RateLimiter
from .observability.metrics import Metrics
from .observability.tracing import Tracing
from .upstream.failover import Upstreams
from .upstream.span import UpstreamSpans
from .web.demo_model import DemoModelServer

log = logging.getLogger(__name__)

# Set by create_app: plain objects with nothing to open or close (tracing is flushed on close).
SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
TRACING = web.AppKey("tracing", Tracing)
SIGNER = web.AppKey("signer", Signer)
DRAIN = web.AppKey("drain", Drain)
TURNS_IN_FLIGHT = web.AppKey("turns_in_flight", TurnsInFlight)  # the cap on chat turns in flight (issue 30)
BODIES = web.AppKey("bodies", BodyBudget)  # bytes request bodies being read may hold (uploads and chat turns)
# Opened and closed by a cleanup context each.
CONVERSATIONS = web.AppKey("conversations", ConversationStore)
IMAGE_STORAGE = web.AppKey("image_storage", ImageStorage)
DEMO_MODEL = web.AppKey("demo_model", DemoModelServer)  # only when it is one of the upstreams
UPSTREAMS = web.AppKey("upstreams", Upstreams)
ELEVENLABS = web.AppKey("elevenlabs", ElevenLabs)
RATE_LIMITS = web.AppKey("rate_limits", RateLimits)
QUOTAS = web.AppKey("quotas", Quotas)
# The services handlers call, built on the above once they are open.
IMAGE_URLS = web.AppKey("image_urls", ImageUrls)
IMAGE_UPLOADS = web.AppKey("image_uploads", ImageUploads)
PAGE_SESSIONS = web.AppKey("page_sessions", PageSessions)
CHAT = web.AppKey("chat", ChatService)
INJECTOR = web.AppKey("image_injector", ImageInjector)


def add_resources(app: web.Application, settings: Settings, *, tracing: Tracing | None = None) -> None:
    metrics = Metrics()
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[TRACING] = tracing or Tracing.from_environment()
    app[SIGNER] = Signer(_signing_secret(settings))
    app[DRAIN] = Drain(metrics)
    app[TURNS_IN_FLIGHT] = TurnsInFlight(settings.chat_max_turns_in_flight)
    app.cleanup_ctx.extend([_tracing, _conversations, _image_storage, _demo_model, _upstream, _elevenlabs,
                            _image_sweeper])
    app.cleanup_ctx.extend([_rate_limits, _storage_quota])
    app.on_startup.append(_build_services)


def open_conversation_store(settings: Settings) -> ConversationStore:
    if settings.store_scheme == "memory":
        from .conversation.memory import MemoryStore

        return MemoryStore(settings.image_ttl_seconds, settings.images_per_conversation,
                           settings.session_storage_quota_bytes)
    from .conversation.redis import RedisStore

    return RedisStore.from_url(settings.store_url, settings.image_ttl_seconds, settings.images_per_conversation,
                               settings.session_storage_quota_bytes)


def open_image_storage(settings: Settings) -> ImageStorage:
    url = urlsplit(settings.storage_url)
    if url.scheme == "file":
        from .images.local import LocalStorage

        return LocalStorage.from_url(settings.storage_url, settings.storage_min_free_bytes)
    if url.scheme == "gs":
        from .images.gcs import GcsStorage

        return GcsStorage(bucket=url.netloc, prefix=url.path.strip("/"))
    if url.scheme == "s3":
        from .images.s3 import S3Storage

        return S3Storage.from_url(settings.storage_url, endpoint_url=settings.s3_endpoint_url or None)
    raise ValueError(f"unknown storage scheme {url.scheme!r}")


def open_rate_limiter(settings: Settings, metrics: Metrics) -> RateLimiter:
    """Where the conversation store is, the buckets are: shared by replicas when that is Redis."""
    if settings.store_scheme == "memory":
        return MemoryRateLimiter()
    from .limits.redis_rate import RedisRateLimiter  # the Redis client is loaded only where Redis is used

    return RedisRateLimiter.from_url(settings.store_url, metrics)


def _signing_secret(settings: Settings) -> bytes:
    secret = settings.signing_secret.get_secret_value()
    if secret:
        return secret.encode()
    log.warning("GLIMPSE_SIGNING_SECRET is not set: using a random one, so image URLs and upload tokens "
                "are only valid on this replica until it restarts")
    return secrets.token_bytes(32)


async def _tracing(app: web.Application) -> AsyncIterator[None]:
    yield
    app[TRACING].shutdown()  # flushes spans still queued for export


async def _conversations(app: web.Application) -> AsyncIterator[None]:
    store = app[CONVERSATIONS] = open_conversation_store(app[SETTINGS])
    yield
    await store.close()


async def _image_storage(app: web.Application) -> AsyncIterator[None]:
    storage = app[IMAGE_STORAGE] = open_image_storage(app[SETTINGS])
    yield
    await storage.close()


async def _demo_model(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if not settings.demo_model:
        yield
        return
    demo = app[DEMO_MODEL] = await DemoModelServer.start(settings)
    if settings.upstream_configured:
        log.warning("GLIMPSE_UPSTREAM_PROVIDER=demo: answering with the built-in demo model (it measures pictures, "
                    "it does not understand them).")
    else:
        log.warning("No upstream LLM configured: answering with the built-in demo model (it measures pictures, it "
                    "does not understand them). Set GLIMPSE_UPSTREAM_API_KEY (or OPENAI_API_KEY) for OpenAI, or "
                    "GLIMPSE_UPSTREAM_BASE_URL or GLIMPSE_UPSTREAMS for another LLM.")
    yield
    await demo.close()


async def _upstream(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    targets = app[DEMO_MODEL].serve(settings.upstream_targets) if DEMO_MODEL in app else settings.upstream_targets
    upstreams = app[UPSTREAMS] = Upstreams(settings, targets)
    yield
    await upstreams.close()


async def _elevenlabs(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    elevenlabs = app[ELEVENLABS] = ElevenLabs(settings.elevenlabs_base_url, settings.elevenlabs_agent_id,
                                              settings.elevenlabs_api_key.get_secret_value())
    yield
    await elevenlabs.close()


async def _image_sweeper(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # the injector is built at startup, after this; the first sweep is an interval later
    sweeper = asyncio.create_task(sweep_forever(app[IMAGE_STORAGE], app[CONVERSATIONS], settings.image_ttl_seconds,
                                                settings.sweep_interval_seconds,
                                                keep_only=lambda in_use: app[INJECTOR].keep_only(in_use)),
                                  name="glimpse-sweeper")
    yield
    sweeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sweeper


async def _rate_limits(app: web.Application) -> AsyncIterator[None]:
    settings, metrics = app[SETTINGS], app[METRICS]
    limiter = open_rate_limiter(settings, metrics)
    app[RATE_LIMITS] = RateLimits.from_settings(settings, limiter, metrics)
    yield
    await limiter.close()


async def _storage_quota(app: web.Application) -> AsyncIterator[None]:
    settings, metrics, storage = app[SETTINGS], app[METRICS], app[IMAGE_STORAGE]
    try:
        await storage.measure()
    except Exception as exc:
        log.warning("could not measure the image storage, the storage quota counts from 0: %s", exc)
    metrics.stored_image_bytes.set_function(lambda: storage.stored_bytes)
    app[QUOTAS] = Quotas(metrics, session_bytes=settings.session_storage_quota_bytes,
                         storage_bytes=settings.storage_quota_bytes, stored=lambda: storage.stored_bytes,
                         retry_after_seconds=settings.sweep_interval_seconds)
    yield


async def _build_services(app: web.Application) -> None:
    settings, metrics = app[SETTINGS], app[METRICS]
    store, storage = app[CONVERSATIONS], app[IMAGE_STORAGE]
    urls = app[IMAGE_URLS] = ImageUrls(app[SIGNER], storage, settings.image_url_ttl_seconds)
    payload_memory = TurnPayloadMemory(settings.turn_payload_memory_bytes, settings.turn_payload_wait_seconds,
                                       metrics.turn_payloads_refused)
    injector = app[INJECTOR] = ImageInjector(
        store, storage, urls, metrics, delivery=settings.image_delivery, policy=settings.image_policy,
        detail=settings.image_detail, payload_memory=payload_memory,
        data_url_cache_bytes=settings.image_data_url_cache_bytes,
        session_key_valid=app[SIGNER].session_key_valid if settings.require_session_key else None)
    metrics.turn_payload_bytes.set_function(lambda: payload_memory.reserved_bytes)
    metrics.data_url_cache_bytes.set_function(lambda: injector.data_url_cache_bytes)
    app[BODIES] = BodyBudget(settings.upload_body_budget, metrics)  # uploads' and chat turns' bodies
    app[IMAGE_UPLOADS] = ImageUploads(app[SIGNER], storage, store, urls, app[QUOTAS], metrics,
                                      max_pixels=settings.image_max_pixels, max_edge=settings.image_max_edge,
                                      decode_memory_bytes=settings.image_decode_memory_bytes,
                                      decode_concurrency=settings.image_decode_concurrency,
                                      decode_queue=settings.image_decode_queue,
                                      decode_wait_seconds=settings.image_decode_wait_seconds,
                                      forget=injector.forget, bodies=app[BODIES])
    app[PAGE_SESSIONS] = PageSessions(app[SIGNER], app[ELEVENLABS], settings.upload_token_ttl_seconds,
                                      settings.images_per_conversation, demo_model=settings.demo_model)
    spans = UpstreamSpans(app[TRACING], metrics, settings.image_delivery, settings.image_policy)
    # a request naming no model (the page's typed turns): GLIMPSE_UPSTREAM_MODEL, else the first upstream's own
    default_model = settings.upstream_model or settings.upstream_targets[0].model
    app[CHAT] = ChatService(injector, app[UPSTREAMS], spans, metrics, default_model=default_model,
                            max_messages=settings.chat_max_messages,
                            first_byte_timeout=settings.upstream_first_byte_timeout,
                            first_token_timeout=settings.first_token_timeout,
                            reasoning_effort=settings.reasoning_effort)
