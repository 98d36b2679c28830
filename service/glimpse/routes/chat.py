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
        upstream = await span.open(services.upstream.open(payload, extra_headers=span.headers()))
        try:
            if not stream:
                raw = await upstream.read_json()
                span.finish(upstream.state)
                return web.Response(body=raw, content_type="application/json")
            return await _relay(request, services, upstream, span, model, arrived)
        finally:
            await upstream.close()


async def _relay(request: web.Request, services: Services, upstream: UpstreamStream, span: UpstreamSpan,
                 model: str, arrived: float) -> web.StreamResponse:
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    metrics = services.metrics
    metrics.active_streams.inc()
    first = True
    try:
        try:
            async for payload in upstream.events():
                await response.write(b"data: " + payload + b"\n\n")
                if first:
                    first = False
                    ttft = time.perf_counter() - arrived
                    metrics.ttft.labels(model).observe(ttft)
                    request[OBSERVED]["ttft_ms"] = round(ttft * 1000, 2)
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
        metrics.active_streams.dec()
    return response

