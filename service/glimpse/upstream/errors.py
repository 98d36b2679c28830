"""What an upstream's failure before the first byte means for the caller, as a domain error: from the status and
body it answered (the turn's hot path, `http.py`), or from an `openai` SDK error (`/models`)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import orjson

from ..errors import UpstreamError, UpstreamRateLimited, UpstreamRejectedRequest, UpstreamTimedOut
from ..observability.tracing import exception_type
from .retry import MAX_RETRY_AFTER_DELAY, retry_after_seconds

if TYPE_CHECKING:
    import openai

log = logging.getLogger(__name__)

# The upstream's refusals of the request itself: the caller sees them (with the upstream's message).
REJECTED_REQUEST_STATUSES = frozenset({400, 404, 409, 422})
MESSAGE_CHARS = 500  # of the upstream's message, as the caller sees it


def status_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    """The domain error for an upstream's non-2xx answer; its message and code come from the OpenAI-style error
    object when the body holds one (`{"error": {...}}`, or the object itself, as the SDK reads it)."""
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    inner = parsed.get("error", parsed) if isinstance(parsed, dict) else None
    error = inner if isinstance(inner, dict) else {}
    message = error.get("message")
    if not isinstance(message, str):  # the SDK's own wording for an answer without one
        message = f"Error code: {status} - {body.decode('utf-8', 'replace')}"
    code = error.get("code")
    return _for_status(status, message, code if isinstance(code, str) else None, headers)


def upstream_error(exc: openai.APIError) -> UpstreamError:
    """The same for a failure the SDK raised."""
    import openai  # only the SDK's own calls fail this way, and they import it (`Upstream.models`)

    if isinstance(exc, openai.APITimeoutError):
        return UpstreamTimedOut("The upstream LLM did not answer in time.")
    if isinstance(exc, openai.APIConnectionError):  # the SDK's wrapper of httpx's own error, which says what failed
        return UpstreamError("Could not reach the upstream LLM.", error_type=exception_type(exc.__cause__ or exc))
    if not isinstance(exc, openai.APIStatusError):
        return UpstreamError(f"The upstream LLM answered unexpectedly: {exc.message}")
    error = exc.body if isinstance(exc.body, dict) else {}  # the SDK keeps the inner error object
    message, code = error.get("message"), error.get("code")
    return _for_status(exc.status_code, message if isinstance(message, str) else exc.message,
                       code if isinstance(code, str) else None, exc.response.headers)


def _for_status(status: int, message: str, code: str | None, headers: Mapping[str, str]) -> UpstreamError:
    """The error for `status`; the upstream's message cut to MESSAGE_CHARS, its delay (retry-after or -ms) passed on
    as whole seconds when it is one a caller can use."""
    if len(message) > MESSAGE_CHARS:
        message = message[:MESSAGE_CHARS] + "…"
    if status in (401, 403):
        log.error("upstream rejected the proxy's credentials (%s): check GLIMPSE_UPSTREAM_API_KEY", status)
        return UpstreamError("The upstream LLM rejected the proxy's credentials.", code="upstream_auth",
                             upstream_status=status)
    if status == 429:
        delay = retry_after_seconds(headers)
        retry_after = str(max(1, math.ceil(delay))) if delay is not None and 0 < delay <= MAX_RETRY_AFTER_DELAY \
            else None
        return UpstreamRateLimited(f"The upstream LLM is rate limiting: {message}", retry_after=retry_after,
                                   upstream_status=status)
    if status in REJECTED_REQUEST_STATUSES:
        return UpstreamRejectedRequest(message, upstream_status=status, code=code)
    return UpstreamError(f"The upstream LLM failed ({status}): {message}", upstream_status=status)
