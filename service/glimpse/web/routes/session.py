"""GET /v1/session: what the page needs to start a voice conversation that can see."""

from __future__ import annotations

from aiohttp import web

from ...conversation.sessions import require_transport
from ...resources import PAGE_SESSIONS
from ..body import form_flag
from ..errors import json_response

routes = web.RouteTableDef()


@routes.get("/v1/session")
async def new_session(request: web.Request) -> web.Response:
    transport = require_transport(request.query.get("transport", "websocket"))
    voice = form_flag(dict(request.query), "voice", default=True)
    session = await request.app[PAGE_SESSIONS].start(transport, voice=voice)
    return json_response(session.to_json(), headers={"Cache-Control": "no-store"})
