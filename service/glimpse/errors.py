"""Domain errors: why a request cannot be served, in the service's own terms.

Services and pure modules raise these; they know nothing of HTTP. One middleware (`web/errors.py`) maps
each kind to its status and an OpenAI-style body, so that mapping lives in one table.
"""

from __future__ import annotations


class GlimpseError(Exception):
    """A request that cannot be served. `code` and `param` go into the OpenAI-style error body;
    `retry_after` (seconds) tells the caller when trying again makes sense."""

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None,
                 retry_after: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.retry_after = retry_after


class InvalidRequest(GlimpseError):
    """The request itself is wrong: a missing field, a malformed body, an image that is not one."""


class TooLarge(InvalidRequest):
    """A body, an image or a field over its limit."""


class UnsupportedMedia(InvalidRequest):
    """A body or a file of a kind the proxy does not take."""


class RequestTimedOut(InvalidRequest):
    """The request's body did not arrive within its deadline."""


class NotAuthenticated(GlimpseError):
    """No credentials, or wrong ones. `challenge` is the scheme a client should answer with, if any."""

    def __init__(self, message: str, *, code: str | None = None, challenge: str | None = None) -> None:
        super().__init__(message, code=code)
        self.challenge = challenge


class NotPermitted(GlimpseError):
    """Credentials that do not allow this: another session's upload token, an expired image signature."""


class NotFound(GlimpseError):
    """No such route or image."""


class Unavailable(GlimpseError):
    """A dependency (conversation store, image storage, ElevenLabs settings) is missing or down, or the
    server is shutting down."""


class ElevenLabsFailed(GlimpseError):
    """ElevenLabs could not be reached or refused what the proxy asked of it."""


class UpstreamError(GlimpseError):
    """The upstream LLM failed the request (unreachable, refused credentials, 5xx, a broken stream).
    `outcome` is the word metrics and spans record for it; `upstreams_fault`: another upstream may answer instead
    (before the first token), and the upstream's circuit breaker counts it. `upstream_status`: the status the
    upstream answered, if it did; `error_type`: what failed when it did not (the client library's exception class,
    or `timeout`), for the span's `error.type`."""

    outcome = "error"
    upstreams_fault = True
    error_type: str | None = None

    def __init__(self, message: str, *, code: str | None = None, retry_after: str | None = None,
                 upstream_status: int | None = None, error_type: str | None = None) -> None:
        super().__init__(message, code=code, retry_after=retry_after)
        self.upstream_status = upstream_status
        if error_type is not None:
            self.error_type = error_type


class UpstreamTimedOut(UpstreamError):
    """The upstream sent nothing in time."""

    outcome = "timeout"
    error_type = "timeout"


class UpstreamRateLimited(UpstreamError):
    """The upstream is rate limiting the proxy; `retry_after` is what it asked for."""

    outcome = "rate_limited"


class UpstreamLacksApi(UpstreamError):
    """The upstream does not serve the API the caller used (Gemini's endpoint has no Responses API)."""

    outcome = "unsupported"


class UpstreamRejectedRequest(UpstreamError):
    """The upstream refused the request as invalid; `upstream_status` is what it answered (400, 404, 409, 422)."""

    outcome = "rejected"
    upstreams_fault = False  # a refusal of the request itself is the caller's answer

    upstream_status: int

    def __init__(self, message: str, *, upstream_status: int, code: str | None = None) -> None:
        super().__init__(message, code=code, upstream_status=upstream_status)


class RateLimited(GlimpseError):
    """One client called a route more often than its rate allows; `retry_after` says when a call is allowed."""


class SessionQuotaExceeded(GlimpseError):
    """A conversation's images would take more bytes than its quota; waiting does not free any."""


class StorageFull(GlimpseError):
    """The image storage holds its quota of bytes; `retry_after` is when expired images will have been swept."""
