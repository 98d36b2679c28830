"""Prometheus metrics: alone on GLIMPSE_METRICS_PORT (`web/metrics_port.py`), or on the API's port when it is 0."""

from __future__ import annotations

from aiohttp import web

from ...observability.metrics import CONTENT_TYPE
from ...resources import METRICS

routes = web.RouteTableDef()


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS].exposition(), headers={"Content-Type": CONTENT_TYPE})
