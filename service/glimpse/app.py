"""The aiohttp application factory, and how the application must be run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from .config import Settings
from .drain import CLOSE_SECONDS
from .observability.tracing import Tracing
from .resources import add_resources
from .web.cors import cors_middleware
from .web.errors import error_middleware
from .web.metrics_port import metrics_listener
from .web.observe import observe_middleware
from .web.rate_limit import rate_limit_middleware
from .web.routes import chat, health, images, metrics, models, page, session
from .web.series import initialise_series


def create_app(settings: Settings | None = None, *, tracing: Tracing | None = None) -> web.Application:
    settings = settings or Settings.load()
    app = web.Application(
        middlewares=[observe_middleware, cors_middleware, error_middleware, rate_limit_middleware],
        client_max_size=max(settings.chat_max_body_bytes, settings.image_max_bytes + 256 * 1024),
    )
    add_resources(app, settings, tracing=tracing)
    for module in (chat, models, images, session, health):
        app.router.add_routes(module.routes)
    if settings.metrics_port:
        app.cleanup_ctx.append(metrics_listener)
    else:
        app.router.add_routes(metrics.routes)
    page.add_page(app, _page_dir(settings), settings.elevenlabs_base_url)
    app.on_startup.append(initialise_series)
    return app


def runner_options(settings: Settings) -> dict[str, Any]:
    """What `web.AppRunner` needs for this app. handler_cancellation: a caller that hangs up cancels its
    handler at once, and with it the upstream request (chat.py relies on it), instead of on the next write.
    shutdown_timeout: what aiohttp's own shutdown gives requests still running after the drain (`drain.py` keeps
    this much of the grace for it), so the process ends within the grace. And `protocol_options`, which the runner
    passes on to each connection's protocol."""
    return {"handler_cancellation": True, "shutdown_timeout": CLOSE_SECONDS, **protocol_options(settings)}


def protocol_options(settings: Settings) -> dict[str, Any]:
    """What each connection's protocol (aiohttp's `RequestHandler`) gets; `GuardedSite` is given them too, as it
    makes the protocols. The request log is written by `web/observe.py`, not aiohttp's access logger.
    keepalive_timeout: how long a connection may wait for its next request (aiohttp's default is an hour); the
    other connection limits are `web/connections.py`'s."""
    return {"access_log": None, "keepalive_timeout": settings.keepalive_timeout_seconds}


def _page_dir(settings: Settings) -> Path | None:
    if settings.static_dir:
        return Path(settings.static_dir)
    candidate = Path(__file__).resolve().parents[2] / "frontend" / "dist"
    return candidate if candidate.is_dir() else None
