"""Per-request observation: server span, request metrics and one access log line.

Handlers add what they learn (model, time to first token, images injected) to `request[OBSERVED]`.

The server span follows open-telemetry/semantic-conventions v1.44.0 `docs/http/http-spans.md` ("HTTP server span"
and "Status"): ERROR on a 5xx, unset on a 4xx (the caller's mistake) and on a caller that went away (499), ERROR
too when a 200 stream broke off; `error.type` the failing error's class (`request[ERROR_TYPE]`), else the status.
Probes and /metrics get no span: they would bury the traces that matter.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from typing import Any
from urllib.parse import SplitResult, urlsplit

from aiohttp import web
from opentelemetry import trace
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE as ERROR_TYPE_ATTRIBUTE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
)
from opentelemetry.semconv.attributes.network_attributes import NETWORK_PROTOCOL_VERSION
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_PATH, URL_QUERY, URL_SCHEME

from ..resources import METRICS, SETTINGS, TRACING
from .errors import ERROR_TYPE, Handler

log = logging.getLogger("glimpse.access")

OBSERVED = web.RequestKey("observed", dict)
UNMATCHED = "unmatched"
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
# url.query values that are credentials (semconv `docs/registry/attributes/url.md`, url.query note): image URLs' `sig`
_SECRET_QUERY_VALUES = re.compile(r"(?<![^&])(sig|token|key)=[^&]*")


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
        kind=trace.SpanKind.SERVER, record_exception=False, set_status_on_exception=False,
    ) if tracing.enabled and route not in QUIET_ROUTES else contextlib.nullcontext(trace.INVALID_SPAN)
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
                _describe(span, request, route, status)
            if (route not in QUIET_ROUTES or status >= 400) and log.isEnabledFor(logging.INFO):
                trace_id = span.get_span_context().trace_id
                log.info("%s %s %s", request.method, route, status, extra={
                    "route": route, "method": request.method, "status": status,
                    "duration_ms": round(duration * 1000, 2),
                    **({"trace_id": format(trace_id, "032x")} if trace_id else {}),
                    **observed,
                })


def _describe(span: trace.Span, request: web.Request, route: str, status: int) -> None:
    """The server span's attributes and status, set once the response is known."""
    scheme, address, port = _server_of(request)
    attributes: dict[str, Any] = {
        HTTP_REQUEST_METHOD: request.method, HTTP_ROUTE: route, HTTP_RESPONSE_STATUS_CODE: status,
        URL_PATH: request.path, URL_SCHEME: scheme, SERVER_ADDRESS: address, SERVER_PORT: port,
        NETWORK_PROTOCOL_VERSION: f"{request.version.major}.{request.version.minor}",
    }
    if request.query_string:
        attributes[URL_QUERY] = _SECRET_QUERY_VALUES.sub(r"\1=REDACTED", request.query_string)
    failed = request.get(ERROR_TYPE)
    if status >= 500 or (failed and status < 400):  # a 4xx is the caller's: unset; a broken 200 stream is ours
        attributes[ERROR_TYPE_ATTRIBUTE] = failed or str(status)
        span.set_status(trace.StatusCode.ERROR)
    span.set_attributes(attributes)


def _server_of(request: web.Request) -> tuple[str, str, int]:
    """Scheme, host and port as the caller addressed the proxy: GLIMPSE_PUBLIC_BASE_URL's when set (behind an
    ingress, which is what callers reach), else this request's Host."""
    configured = request.app[SETTINGS].public_base_url
    url = _split(configured or f"{request.scheme}://{request.host}")
    try:
        port = url.port
    except ValueError:  # a Host header with a port that is none
        port = None
    return url.scheme, url.hostname or "", port or (443 if url.scheme == "https" else 80)


@functools.lru_cache(maxsize=64)
def _split(url: str) -> SplitResult:
    return urlsplit(url)
