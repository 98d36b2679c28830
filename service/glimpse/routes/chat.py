"""POST /v1/chat/completions: find the conversation, inject its images, relay the upstream's answer."""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
from aiohttp import web

from ..auth import check_bearer
from ..chat_request import validate_chat_request
from ..errors import ApiError, error_body
from ..observe import OBSERVED
from ..services import SERVICES, Services
from ..upstream import UpstreamStream, openai_payload
from ..upstream_span import UpstreamSpan
from .body import read_json_object

log = logging.getLogger(__name__)
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
    services = request.app[SERVICES]
    settings = services.settings
    if services.draining:
        raise ApiError(503, "The server is shutting down; retry on another replica.", headers={"Retry-After": "1"})
    check_bearer(request.headers.get("Authorization"), settings.custom_llm_key)
    body = await read_json_object(request, settings.chat_max_body_bytes)
    validate_chat_request(body, settings.chat_max_messages)

    injected = await services.injector.apply(body, services.public_base_url(request))
    payload = openai_payload(body, injected.messages, settings.upstream_model)
    model = services.metrics.model_label(payload["model"])
    stream = bool(payload.get("stream"))
    observed = request[OBSERVED]
    observed.update(model=model, stream=stream, images=injected.image_count)

    with UpstreamSpan(services, payload, injected.image_count) as span:
        upstream, first = await _start(services, span, payload, stream)
        try:
            if not stream:
                raw = await upstream.read_json()
                span.finish(upstream.state)
                return web.Response(body=raw, content_type="application/json")
            return await _relay(request, services, upstream, first, span, model, arrived)
        finally:
            await upstream.close()


async def _start(services: Services, span: UpstreamSpan, payload: dict[str, object],
                 stream: bool) -> tuple[UpstreamStream, bytes | None]:
    """Open the upstream and, when streaming, wait for its first event before answering the caller:
    until then every failure can still be a proper HTTP error instead of an in-band one."""
    limit = services.settings.upstream_first_byte_timeout
    upstream: UpstreamStream | None = None
    try:
        async with asyncio.timeout(limit):
            upstream = await span.open(services.upstream.open(payload, extra_headers=span.headers()))
            first = await upstream.first_event() if stream else None
    except BaseException as exc:
        if upstream is not None:
            await upstream.close()
        if isinstance(exc, TimeoutError):
            span.finish(None, outcome="timeout")
            raise ApiError(504, f"The upstream LLM sent nothing within {limit:g} s.") from None
        if isinstance(exc, ApiError) or not isinstance(exc, Exception):
            raise
        log.warning("upstream failed before its first token: %s", exc)
        span.finish(None, outcome="dropped")
        raise ApiError(502, "The upstream LLM stream failed before its first token.") from None
    return upstream, first


async def _relay(request: web.Request, services: Services, upstream: UpstreamStream, first_payload: bytes | None,
                 span: UpstreamSpan, model: str, arrived: float) -> web.StreamResponse:
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    metrics = services.metrics
    services.stream_started()
    try:
        try:
            if first_payload is not None:
                await response.write(b"data: " + first_payload + b"\n\n")
                ttft = time.perf_counter() - arrived
                metrics.ttft.labels(model).observe(ttft)
                request[OBSERVED]["ttft_ms"] = round(ttft * 1000, 2)
            async for payload in upstream.remaining_events():
                await response.write(b"data: " + payload + b"\n\n")
        except (asyncio.CancelledError, ConnectionResetError):
            span.finish(upstream.state, outcome="cancelled")
            raise
        except Exception as exc:  # the upstream failed after the stream started: tell the caller in-band
            log.warning("upstream stream broke after %d chunks: %s", upstream.state.chunks, exc)
            span.finish(upstream.state, outcome="dropped")
            message = "The upstream LLM stream ended unexpectedly."
            await response.write(b"data: " + orjson.dumps(error_body(message, type="upstream_error",
                                                                      code="stream_interrupted")) + b"\n\n")
        else:
            span.finish(upstream.state)
        await response.write(DONE_EVENT)
        await response.write_eof()
    finally:
        services.stream_ended()
    return response

