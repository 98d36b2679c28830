"""Serving a fake's aiohttp app on a free loopback port."""

from __future__ import annotations

from aiohttp import web


async def serve_app(app: web.Application, port: int = 0) -> tuple[web.AppRunner, int]:
    # handler_cancellation: a fake notices at once when the proxy hangs up on it, like a real server
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    return runner, runner.addresses[0][1]
