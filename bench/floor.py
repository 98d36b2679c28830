"""The least an aiohttp relay can cost: the caller's body forwarded as it is, the upstream's bytes written back as they
arrive, nothing parsed, checked or recorded. A bench target (`floor`) that shows what of Glimpse's cost is the
framework's own (aiohttp's server and client on uvloop), which no change inside Glimpse can remove.

    python bench/floor.py PORT UPSTREAM_BASE_URL
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)


def make_app(upstream: str) -> web.Application:
    async def session(app: web.Application) -> AsyncIterator[None]:
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        yield
        await app[SESSION].close()

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with request.app[SESSION].post(upstream + "/chat/completions", data=body,
                                             headers={"Content-Type": "application/json"}) as answer:
            response = web.StreamResponse(status=answer.status, headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            async for chunk in answer.content.iter_any():
                await response.write(chunk)
        await response.write_eof()
        return response

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_post("/v1/chat/completions", relay)
    return app


if __name__ == "__main__":
    import uvloop

    uvloop.install()
    web.run_app(make_app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None,
                backlog=2048)
