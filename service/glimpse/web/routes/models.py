"""GET /v1/models: the upstream's model list, as the upstream sent it."""

from __future__ import annotations

from aiohttp import web

from ...auth import check_bearer
from ...resources import CHAT, SETTINGS

routes = web.RouteTableDef()


@routes.get("/v1/models")
async def list_models(request: web.Request) -> web.Response:
    check_bearer(request.headers.get("Authorization"), request.app[SETTINGS].custom_llm_key.get_secret_value())
    return web.Response(body=await request.app[CHAT].models(), content_type="application/json")
