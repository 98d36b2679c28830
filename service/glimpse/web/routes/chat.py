"""The custom-LLM surface ElevenLabs calls each turn: `POST /v1/chat/completions` and, for agents whose
custom LLM `api_type` is `responses`, `POST /v1/responses`. Find the conversation, inject its images,
relay the upstream's answer.

A caller who hangs up cancels the handler at once (`handler_cancellation` in `app.runner_options`), and
with it the upstream request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ...auth import check_bearer
from ...chat.service import ChatTurn
from ...conversation.ids import elevenlabs_conversation_id_of
from ...observability.tracing import exception_type
from ...resources import BODIES, CHAT, DRAIN, RATE_LIMITS, SETTINGS
from ..base_url import public_base_url
from ..body import read_json_object_within
from ..errors import ERROR_TYPE, TYPE_BY_STATUS, status_for
from ..observe import OBSERVED, route_of

routes = web.RouteTableDef()

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx-style ingresses: do not buffer the stream
}
UPSTREAM_HEADER = "X-Glimpse-Upstream"  # the name of the upstream that answered (GLIMPSE_UPSTREAMS)
StartTurn = Callable[[dict[str, Any], str, dict[str, Any]], Awaitable[ChatTurn]]


@routes.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _turn(request, request.app[CHAT].start_completion)


@routes.post("/v1/responses")
async def responses(request: web.Request) -> web.StreamResponse:
    return await _turn(request, request.app[CHAT].start_response)


async def _turn(request: web.Request, start: StartTurn) -> web.StreamResponse:
    arrived = time.perf_counter()
    drain = request.app[DRAIN]
    with drain.turn():
        with drain.cut_before_answering():
            turn = await start(await _read_turn(request), public_base_url(request), request[OBSERVED])
        return await _answer(request, turn, arrived)


async def _read_turn(request: web.Request) -> dict[str, object]:
    settings = request.app[SETTINGS]
    check_bearer(request.headers.get("Authorization"), settings.custom_llm_key.get_secret_value())
    body = await read_json_object_within(request, settings.chat_max_body_bytes, bodies=request.app[BODIES],
                                         deadline_seconds=settings.chat_body_deadline_seconds)
    await request.app[RATE_LIMITS].check_conversation(route_of(request), request.headers.get("Authorization"),
                                                      elevenlabs_conversation_id_of(body))
    return body


async def _answer(request: web.Request, turn: ChatTurn, arrived: float) -> web.StreamResponse:
    try:
        if not turn.stream:
            with request.app[DRAIN].cut_before_answering():
                body = await turn.read_body()
            return web.Response(body=body, content_type="application/json", headers={UPSTREAM_HEADER: turn.upstream})
        with request.app[DRAIN].live_stream():
            return await _relay(request, turn, arrived)
    finally:
        await turn.close()


async def _relay(request: web.Request, turn: ChatTurn, arrived: float) -> web.StreamResponse:
    """The upstream's events as strict SSE, each written as it arrives; a failure after the first token
    is told in-band, as the API's own error event (then `[DONE]` for Chat Completions), and so is a stream cut
    by the server's shutdown."""
    response = web.StreamResponse(headers={**SSE_HEADERS, UPSTREAM_HEADER: turn.upstream})
    await response.prepare(request)
    try:
        if turn.first_event is not None:
            await response.write(turn.first_event)
            turn.first_token_sent(arrived)
        events = turn.remaining_events()
        while True:
            try:
                event = await anext(events)
            except StopAsyncIteration:
                turn.ended()
                break
            except Exception as exc:  # the upstream's failure; the caller's is raised by the write below
                interrupted = turn.interrupted(exc)
                request[ERROR_TYPE] = exception_type(interrupted)  # the 200 is sent; the stream still failed
                await response.write(turn.error_event(interrupted, TYPE_BY_STATUS[status_for(interrupted)]))
                break
            await response.write(event)
    except asyncio.CancelledError:
        if not request.app[DRAIN].was_cut():
            raise
        request[ERROR_TYPE] = "shutdown"
        await response.write(turn.cut_off_event(TYPE_BY_STATUS[503]))
    if turn.closing:
        await response.write(turn.closing)
    await response.write_eof()
    return response
