"""CORS for the page's origins only (GLIMPSE_CORS_ORIGINS); other origins get no CORS headers."""

from __future__ import annotations

from aiohttp import web

from ..resources import SETTINGS
from .errors import Handler

ALLOW_METHODS = "GET, POST, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, X-Upload-Token"


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    allowed = request.app[SETTINGS].cors_origins
    permitted = origin is not None and (origin in allowed or "*" in allowed)
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        if not permitted:
            return web.Response(status=403, text="origin not allowed")
        response: web.StreamResponse = web.Response(status=204, headers={
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Max-Age": "600",
        })
    else:
        response = await handler(request)
    if permitted and not response.prepared:
        response.headers["Access-Control-Allow-Origin"] = origin  # type: ignore[assignment]
        response.headers.add("Vary", "Origin")
    return response
