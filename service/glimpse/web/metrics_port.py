"""GLIMPSE_METRICS_PORT: /metrics served by a listener of its own, so a Service can expose it to Prometheus while
the Ingress, which routes to the API's port only, never publishes it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from ..resources import METRICS, SETTINGS
from .routes import metrics


async def metrics_listener(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: the metrics listener lives as long as the app."""
    settings = app[SETTINGS]
    metrics_app = web.Application()
    metrics_app[METRICS] = app[METRICS]
    metrics_app.router.add_routes(metrics.routes)
    runner = web.AppRunner(metrics_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.metrics_port).start()
    yield
    await runner.cleanup()
