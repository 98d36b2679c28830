"""Rate limits per client address, by route, before the handler runs (so a refused call costs nothing), and the
cap on chat turns in flight.

The routes each limit covers are listed here, by route template: both upload routes share one bucket, and so
do both custom-LLM routes. CORS preflights are never counted. A turn showing the custom-LLM key is ElevenLabs:
no per-address limit for it (its per-conversation limit needs the body: the chat handler applies it).
"""

from __future__ import annotations

from aiohttp import web

from ..limits.policy import CHAT, SESSION, UPLOAD
from ..resources import RATE_LIMITS, TURNS_IN_FLIGHT
from .errors import Handler
from .observe import route_of

KIND_BY_ROUTE = {
    "/v1/session": SESSION,
    "/v1/images": UPLOAD,
    "/upload_image_get_url": UPLOAD,
    "/v1/chat/completions": CHAT,
    "/v1/responses": CHAT,
}


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = route_of(request)
    kind = KIND_BY_ROUTE.get(route)
    if kind is None or request.method == "OPTIONS":
        return await handler(request)
    limits = request.app[RATE_LIMITS]
    if kind != CHAT or not limits.keyed(request.headers.get("Authorization")):
        await limits.check(kind, route, request.remote, request.headers.getall("X-Forwarded-For", ()))
    if kind != CHAT:
        return await handler(request)
    with request.app[TURNS_IN_FLIGHT].hold():
        return await handler(request)
