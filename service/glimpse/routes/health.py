"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..errors import json_response
from ..metrics import CONTENT_TYPE
from ..openapi import DOCUMENT
from ..services import SERVICES

routes = web.RouteTableDef()
READY_TIMEOUT = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    checks: dict[str, str] = {}
    if services.draining:
        checks["server"] = "draining"
    for name, probe in (("store", services.store.ping), ("storage", services.storage.check)):
        try:
            await asyncio.wait_for(probe(), READY_TIMEOUT)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"unavailable: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return json_response({"status": "ready" if ready else "not ready", "checks": checks},
                         status=200 if ready else 503)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = request.app[SERVICES].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return json_response(DOCUMENT)
