"""GET /v1/models: the upstream's model list, as the upstream sent it."""

from __future__ import annotations

from aiohttp import web

from ..auth import check_bearer
from ..services import SERVICES

routes = web.RouteTableDef()


@routes.get("/v1/models")
async def list_models(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    check_bearer(request.headers.get("Authorization"), services.settings.custom_llm_key)
    return web.Response(body=await services.upstream.models(), content_type="application/json")
