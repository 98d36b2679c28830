"""Running the app on a socket: used by `glimpse serve` and by the tests, the same way."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

from aiohttp import web

from .app import create_app, protocol_options, runner_options
from .config import Settings
from .resources import DRAIN, METRICS, SETTINGS
from .web.connections import GuardedSite, Limits

log = logging.getLogger(__name__)


async def start_server(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start `app` listening; port 0 picks a free one. Returns the runner and the bound port."""
    settings = app[SETTINGS]
    runner = web.AppRunner(app, **runner_options(settings))
    await runner.setup()
    site = GuardedSite(runner, host, port, limits=Limits.from_settings(settings), metrics=app[METRICS],
                       backlog=settings.listen_backlog, protocol_options=protocol_options(settings))
    await site.start()
    address = runner.addresses[0] if runner.addresses else None
    bound = address[1] if isinstance(address, tuple) else port
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
    await app[DRAIN].drain(settings.shutdown_grace_seconds)
    await runner.cleanup()
