"""The aiohttp application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from .config import Settings
from .cors import cors_middleware
from .errors import error_middleware
from .observe import observe_middleware
from .services import SERVICES, Services, build_services

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, services: Services | None = None) -> web.Application:
    from .routes import chat, health, images, models, session, static

    services = services or build_services(settings or Settings.load())
    settings = services.settings
    app = web.Application(
        middlewares=[observe_middleware, cors_middleware, error_middleware],
        client_max_size=max(settings.chat_max_body_bytes, settings.image_max_bytes + 256 * 1024),
    )
    app[SERVICES] = services
    for module in (chat, models, images, session, health):
        app.router.add_routes(module.routes)
    static.add_frontend(app, _frontend_dir(settings))
    app.cleanup_ctx.append(_lifecycle)
    return app


def _frontend_dir(settings: Settings) -> Path | None:
    if settings.static_dir:
        return Path(settings.static_dir)
    candidate = Path(__file__).resolve().parents[2] / "frontend" / "dist"
    return candidate if candidate.is_dir() else None


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    sweeper = asyncio.create_task(_sweep_forever(services), name="glimpse-sweeper")
    yield
    sweeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sweeper
    await services.upstream.close()
    await services.elevenlabs.close()
    await services.store.close()
    await services.storage.close()


async def _sweep_forever(services: Services) -> None:
    """Delete images older than their TTL (the conversation store expires its own keys)."""
    interval = services.settings.sweep_interval_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            removed = await services.storage.sweep(services.settings.image_ttl_seconds)
            if removed:
                log.info("swept %d expired images", removed)
        except Exception as exc:
            log.warning("image sweep failed: %s", exc)
