"""GET /v1/session: what the page needs to start a voice conversation that can see."""

from __future__ import annotations

import secrets

from aiohttp import web

from ..errors import ApiError, json_response
from ..services import SERVICES

routes = web.RouteTableDef()


@routes.get("/v1/session")
async def new_session(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    transport = request.query.get("transport", "websocket")
    if transport not in ("websocket", "webrtc"):
        raise ApiError(400, "`transport` must be websocket or webrtc.", param="transport")
    session_id = secrets.token_urlsafe(18)
    token = services.signer.upload_token(session_id, services.settings.upload_token_ttl_seconds)
    body: dict[str, object] = {
        "session_id": session_id,
        "upload_token": token.value,
        "upload_token_expires_at": token.expires_at,
        "agent_id": services.elevenlabs.agent_id or None,
        "transport": transport,
    }
    if services.elevenlabs.configured:
        if transport == "webrtc":
            body["conversation_token"] = await services.elevenlabs.conversation_token()
        else:
            body["signed_url"] = await services.elevenlabs.signed_url()
    else:
        body["warning"] = "No ElevenLabs agent is configured on this server: uploads and chat work, voice does not."
    return json_response(body, headers={"Cache-Control": "no-store"})
