"""OpenAI-style errors: `{"error": {"message", "type", "code", "param"}}` with the right status.

The one place where a domain error (`glimpse.errors`) becomes HTTP: its status, type, default code and
headers. aiohttp's own HTTP exceptions and anything unexpected get the same shape; nothing reaches the
caller as a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ..errors import (
    ElevenLabsFailed,
    GlimpseError,
    InvalidRequest,
    NotAuthenticated,
    NotFound,
    NotPermitted,
    RateLimited,
    RequestTimedOut,
    SessionQuotaExceeded,
    StorageFull,
    TooLarge,
    Unavailable,
    UnsupportedMedia,
    UpstreamError,
    UpstreamLacksApi,
    UpstreamRateLimited,
    UpstreamRejectedRequest,
    UpstreamTimedOut,
)
from ..observability.tracing import exception_type

log = logging.getLogger(__name__)

# Most specific first: the first class an error is an instance of gives its status.
STATUS_BY_ERROR: tuple[tuple[type[GlimpseError], int], ...] = (
    (TooLarge, 413),
    (RequestTimedOut, 408),
    (UnsupportedMedia, 415),
    (InvalidRequest, 400),
    (NotAuthenticated, 401),
    (NotPermitted, 403),
    (NotFound, 404),
    (RateLimited, 429),
    (SessionQuotaExceeded, 429),
    (StorageFull, 507),
    (Unavailable, 503),
    (ElevenLabsFailed, 502),
    (UpstreamTimedOut, 504),
    (UpstreamRateLimited, 429),
    (UpstreamLacksApi, 501),
    (UpstreamError, 502),
)
# An upstream's own refusal keeps its status where the caller can act on it; 422 reads as 400.
PASSED_THROUGH_UPSTREAM_STATUSES = frozenset({400, 404, 409})

TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    501: "invalid_request_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "upstream_timeout",
    507: "insufficient_storage",
}
# Every status a route answers (success, the caller gone before the answer, each error's): the metrics make their
# series at 0 on start, so that rate() counts the first of each (web/series.py).
ANSWERED_STATUSES = frozenset({200, 201, 204, 499, *TYPE_BY_STATUS})
# Where the status alone does not say it: OpenAI's word for an allowance used up, which waiting does not restore.
TYPE_BY_ERROR: tuple[tuple[type[GlimpseError], str], ...] = ((SessionQuotaExceeded, "insufficient_quota"),)

CODE_BY_STATUS = {
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limit_exceeded",
    501: "unsupported_api",
    502: "bad_gateway",
    503: "unavailable",
    504: "timeout",
    507: "storage_full",
}


# A browser never guesses another type for a JSON body (an error message echoing input cannot turn into HTML).
NOSNIFF = {"X-Content-Type-Options": "nosniff"}


def status_for(error: GlimpseError) -> int:
    if isinstance(error, UpstreamRejectedRequest):
        return error.upstream_status if error.upstream_status in PASSED_THROUGH_UPSTREAM_STATUSES else 400
    for kind, status in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 500


def error_body(message: str, *, type: str = "server_error", code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "code": code, "param": param}}


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json",
                        headers={**NOSNIFF, **headers} if headers else NOSNIFF)


def error_response(status: int, message: str, *, code: str | None = None, param: str | None = None,
                   headers: dict[str, str] | None = None, type: str | None = None) -> web.Response:
    body = error_body(message, type=type or TYPE_BY_STATUS.get(status, "server_error"),
                      code=code or CODE_BY_STATUS.get(status), param=param)
    return json_response(body, status=status, headers=headers)


def response_for(error: GlimpseError) -> web.Response:
    headers: dict[str, str] = {}
    if error.retry_after:
        headers["Retry-After"] = error.retry_after
    if isinstance(error, NotAuthenticated) and error.challenge:
        headers["WWW-Authenticate"] = error.challenge
    kind = next((name for cls, name in TYPE_BY_ERROR if isinstance(error, cls)), None)
    return error_response(status_for(error), error.message, code=error.code, param=error.param, headers=headers,
                          type=kind)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# What failed, for the server span's `error.type` (web/observe.py): the error's class, or what broke a stream.
ERROR_TYPE = web.RequestKey("error_type", str)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GlimpseError as exc:
        request[ERROR_TYPE] = exception_type(exc)
        return response_for(exc)
    except web.HTTPRequestEntityTooLarge:  # aiohttp's own limit (client_max_size), met by request.post()
        return error_response(413, "Request body too large.")
    except HttpProcessingError as exc:  # a malformed body part or header met while reading the body
        return error_response(400, f"The request is malformed: {exc.message}")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = {404: f"No route for {request.method} {request.path}.",
                   405: f"Method {request.method} is not allowed on {request.path}."}.get(exc.status, exc.reason)
        allow = exc.headers.get("Allow")
        return error_response(exc.status, message, headers={"Allow": allow} if allow else None)
    except Exception as exc:
        log.exception("unhandled error on %s %s", request.method, request.path)
        request[ERROR_TYPE] = exception_type(exc)
        return error_response(500, "Internal server error.", type="server_error", code="internal_error")
