"""Running the app on a socket: used by `glimpse serve` and by the tests, the same way."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal

from aiohttp import web

from .app import create_app
from .config import Settings
from .services import SERVICES, Services

log = logging.getLogger(__name__)

async def start_server(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start `app` listening; port 0 picks a free one. Returns the runner and the bound port."""
    # handler_cancellation: a caller that hangs up cancels its handler at once, and with it the
    # upstream request, instead of on the next write.
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                           shutdown_timeout=app[SERVICES].settings.shutdown_grace_seconds)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, bound


async def serve(settings: Settings) -> None:
    app = create_app(settings)
    runner, port = await start_server(app, settings.host, settings.port)
    # Everything loaded so far lives for the whole process: keep it out of the garbage collector's
    # full passes, which otherwise walk the SDKs' many objects and pause live streams.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)  # fewer young-generation passes: streams allocate many short-lived objects
    log.info("glimpse listening on http://%s:%d (store %s, storage %s, delivery %s, policy %s)",
             settings.host, port, settings.store_scheme, settings.storage_scheme, settings.image_delivery,
             settings.image_policy)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await drain(app[SERVICES], settings.shutdown_grace_seconds)
    await runner.cleanup()


async def drain(services: Services, grace_seconds: float) -> None:
    """Refuse new chats (503) and fail /readyz while still listening, until live streams end or the grace
    period is over, so the load balancer moves traffic away before the socket closes."""
    services.draining = True
    log.info("draining: refusing new chats, %d live stream(s) to finish", services.live_streams)
    if services.live_streams:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(services.no_live_streams.wait(), grace_seconds)
    if services.live_streams:
        log.warning("grace period over with %d live stream(s); closing them", services.live_streams)
