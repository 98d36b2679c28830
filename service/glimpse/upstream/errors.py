"""What an `openai` SDK failure before the first byte means for the caller, as a domain error."""

from __future__ import annotations

import logging

import aiohttp
import openai

from ..errors import UpstreamError, UpstreamRateLimited, UpstreamRejectedRequest, UpstreamTimedOut

log = logging.getLogger(__name__)

# The upstream's refusals of the request itself: the caller sees them (with the upstream's message).
REJECTED_REQUEST_STATUSES = frozenset({400, 404, 409, 422})


def upstream_error(exc: openai.APIError) -> UpstreamError:
    # The SDK's aiohttp transport reports a refused connection as a connect *timeout*; look at the cause.
    if isinstance(exc, openai.APITimeoutError) and not _caused_by(exc, aiohttp.ClientConnectorError):
        return UpstreamTimedOut("The upstream LLM did not answer in time.")
    if isinstance(exc, openai.APIConnectionError):
        return UpstreamError("Could not reach the upstream LLM.")
    if not isinstance(exc, openai.APIStatusError):
        return UpstreamError(f"The upstream LLM answered unexpectedly: {exc.message}")
    status = exc.status_code
    message = _upstream_message(exc)
    if status in (401, 403):
        log.error("upstream rejected the proxy's credentials (%s): check GLIMPSE_UPSTREAM_API_KEY", status)
        return UpstreamError("The upstream LLM rejected the proxy's credentials.", code="upstream_auth")
    if status == 429:
        return UpstreamRateLimited(f"The upstream LLM is rate limiting: {message}",
                                   retry_after=exc.response.headers.get("retry-after"))
    if status in REJECTED_REQUEST_STATUSES:
        return UpstreamRejectedRequest(message, upstream_status=status, code=_upstream_code(exc))
    return UpstreamError(f"The upstream LLM failed ({status}): {message}")


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _error_object(exc: openai.APIStatusError) -> dict[str, object] | None:
    body = exc.body
    inner = body.get("error", body) if isinstance(body, dict) else None
    return inner if isinstance(inner, dict) else None


def _upstream_message(exc: openai.APIStatusError) -> str:
    message = (_error_object(exc) or {}).get("message")
    return message if isinstance(message, str) else exc.message


def _upstream_code(exc: openai.APIStatusError) -> str | None:
    code = (_error_object(exc) or {}).get("code")
    return code if isinstance(code, str) else None
