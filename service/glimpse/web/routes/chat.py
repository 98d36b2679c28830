"""POST /v1/chat/completions: find the conversation, inject its images, relay the upstream's answer.

A caller who hangs up cancels this handler at once (`handler_cancellation` in `app.runner_options`), and
with it the upstream request.
"""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from ...auth import check_bearer
from ...chat.service import ChatTurn, StreamInterrupted
from ...resources import CHAT, DRAIN, SETTINGS
from ..base_url import public_base_url
from ..body import read_json_object
from ..errors import TYPE_BY_STATUS, error_body, status_for
from ..observe import OBSERVED

routes = web.RouteTableDef()

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx-style ingresses: do not buffer the stream
}
DONE_EVENT = b"data: [DONE]\n\n"


@routes.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    arrived = time.perf_counter()
    settings = request.app[SETTINGS]
    request.app[DRAIN].refuse_if_draining()
    check_bearer(request.headers.get("Authorization"), settings.custom_llm_key.get_secret_value())
    body = await read_json_object(request, settings.chat_max_body_bytes)
    turn = await request.app[CHAT].start(body, public_base_url(request), request[OBSERVED])
    try:
        if not turn.stream:
            return web.Response(body=await turn.read_body(), content_type="application/json")
        with request.app[DRAIN].live_stream():
            return await _relay(request, turn, arrived)
    finally:
        await turn.close()


async def _relay(request: web.Request, turn: ChatTurn, arrived: float) -> web.StreamResponse:
    """The upstream's events as strict SSE, each written as it arrives; a failure after the first token
    is told in-band, as an error event before `[DONE]`."""
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    try:
        if turn.first_event is not None:
            await response.write(_event(turn.first_event))
            turn.first_token_sent(arrived)
        async for payload in turn.remaining_events():
            await response.write(_event(payload))
    except StreamInterrupted as exc:
        status = status_for(exc)
        await response.write(_event(orjson.dumps(error_body(exc.message, type=TYPE_BY_STATUS[status],
                                                            code=exc.code))))
    await response.write(DONE_EVENT)
    await response.write_eof()
    return response


def _event(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"
