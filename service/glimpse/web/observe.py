"""Per-request observation: server span, request metrics and one access log line.

Handlers add what they learn (model, time to first token, images injected) to `request[OBSERVED]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiohttp import web
from opentelemetry import trace

from ..resources import METRICS, TRACING
from .errors import Handler

log = logging.getLogger("glimpse.access")

OBSERVED = web.RequestKey("observed", dict)
UNMATCHED = "unmatched"
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics, tracing = request.app[METRICS], request.app[TRACING]
    route = route_of(request)
    observed: dict[str, Any] = {}
    request[OBSERVED] = observed
    started = time.perf_counter()
    status = 500
    # with tracing off, no span at all: even a no-op span costs a context switch per request
    spanning = tracing.tracer.start_as_current_span(
        f"{request.method} {route}", context=tracing.extract(request.headers),  # type: ignore[arg-type]
        kind=trace.SpanKind.SERVER) if tracing.enabled else contextlib.nullcontext(trace.INVALID_SPAN)
    with spanning as span:
        try:
            response = await handler(request)
            status = response.status
            return response
        except asyncio.CancelledError:
            status = 499  # the caller went away
            raise
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            duration = time.perf_counter() - started
            metrics.requests.labels(route, str(status)).inc()
            metrics.request_duration.labels(route).observe(duration)
            if span.is_recording():
                span.set_attribute("http.request.method", request.method)
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
            if (route not in QUIET_ROUTES or status >= 400) and log.isEnabledFor(logging.INFO):
                trace_id = span.get_span_context().trace_id
                log.info("%s %s %s", request.method, route, status, extra={
                    "route": route, "method": request.method, "status": status,
                    "duration_ms": round(duration * 1000, 2),
                    **({"trace_id": format(trace_id, "032x")} if trace_id else {}),
                    **observed,
                })
