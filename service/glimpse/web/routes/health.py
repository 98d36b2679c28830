"""Liveness, readiness and the API's description."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ...images.storage import StorageLow
from ...resources import CONVERSATIONS, DRAIN, IMAGE_STORAGE
from ..errors import json_response
from ..openapi import DOCUMENT

routes = web.RouteTableDef()
READY_TIMEOUT = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    app = request.app
    checks: dict[str, str] = {}
    if app[DRAIN].draining:
        checks["server"] = "draining"
    for name, probe in (("store", app[CONVERSATIONS].ping), ("storage", app[IMAGE_STORAGE].check)):
        try:
            await asyncio.wait_for(probe(), READY_TIMEOUT)
            checks[name] = "ok"
        except StorageLow as exc:
            checks[name] = f"unavailable: {exc.reason}"
        except Exception as exc:
            checks[name] = f"unavailable: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return json_response({"status": "ready" if ready else "not ready", "checks": checks},
                         status=200 if ready else 503)


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return json_response(DOCUMENT)
