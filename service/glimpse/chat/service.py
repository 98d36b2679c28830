"""Starting a chat turn, in either API: check the request, inject the conversation's images, open an upstream.

`ChatService.start_completion` (Chat Completions) and `start_response` (Responses API) return a `ChatTurn`
whose upstream has already answered (for a stream: sent its first output), so every failure before the
first token is still a proper error for the caller, never an in-band one — and, while nothing has reached
the caller, a reason to try the next upstream (`upstream/failover.py`): connection errors, 429, 5xx, or no
first token within GLIMPSE_FIRST_TOKEN_TIMEOUT. The turn then hands its events, framed in its API's SSE
dialect, to the HTTP layer and records how the call ended.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..conversation.injection import CHAT_MESSAGES, RESPONSES_INPUT, ImageInjector, InjectionResult
from ..errors import UpstreamError, UpstreamTimedOut
from ..observability.metrics import Metrics
from ..observability.tracing import exception_type
from ..upstream.client import Upstream
from ..upstream.failover import Upstreams
from ..upstream.providers import TurnContext
from ..upstream.span import UpstreamSpan, UpstreamSpans
from ..upstream.stream import UpstreamStream
from .completions import upstream_request, validate_chat_request
from .responses import input_items, upstream_response_request

OpenUpstream = Callable[[dict[str, Any], dict[str, str]], Awaitable[UpstreamStream]]
CHAT, RESPONSES = "chat", "responses"

log = logging.getLogger(__name__)


class StreamInterrupted(UpstreamError):
    """The upstream failed after the first token reached the caller: the HTTP layer says so in-band."""

    outcome = "dropped"


class ChatTurn:
    """One upstream call with its span. Close it when done, whatever happened (`close` is idempotent)."""

    def __init__(self, payload: dict[str, Any], upstream: str, model: str, images: int, span: UpstreamSpan,
                 metrics: Metrics, log_fields: dict[str, Any]) -> None:
        self._payload: dict[str, Any] | None = payload
        self.upstream = upstream  # the name of the upstream answering
        self.model = model
        self.stream = bool(payload.get("stream"))
        self.images = images
        self.first_event: bytes | None = None
        self._span = span
        self._metrics = metrics
        self._log_fields = log_fields
        self._upstream: UpstreamStream | None = None
        self._closed = False

    async def open(self, open_upstream: OpenUpstream, first_byte_timeout: float) -> None:
        try:
            async with asyncio.timeout(first_byte_timeout):
                assert self._payload is not None, "a turn is opened once"
                # the payload is let go once sent: its inline pictures are not held for the whole stream
                payload, self._payload = self._payload, None
                self._upstream = await open_upstream(payload, self._span.headers())
                if self.stream:
                    self.first_event = await self._upstream.first_event()
        except TimeoutError:
            self._span.finish(None, outcome="timeout")
            raise UpstreamTimedOut(f"The upstream LLM sent nothing within {first_byte_timeout:g} s.") from None
        except UpstreamError as exc:
            self._span.finish(None, outcome=exc.outcome, error=exc)
            raise
        except Exception as exc:
            log.warning("upstream failed before its first token: %s", exc)
            self._span.finish(None, outcome="dropped", error=exc)
            raise UpstreamError("The upstream LLM stream failed before its first token.",
                                error_type=exception_type(exc)) from None

    async def read_body(self) -> bytes:
        """The whole JSON answer of a non-streamed turn, as the upstream sent it."""
        assert self._upstream is not None
        try:
            body = await self._upstream.read_json()
        except UpstreamError as exc:
            self._span.finish(self._upstream.state, outcome=exc.outcome, error=exc)
            raise
        self._span.finish(self._upstream.state)
        return body

    def first_token_sent(self, arrived: float) -> None:
        """The caller has the first event: record the time to first token from the request's arrival."""
        ttft = time.perf_counter() - arrived
        self._metrics.ttft.labels(self.model).observe(ttft)
        self._log_fields["ttft_ms"] = round(ttft * 1000, 2)

    @property
    def closing(self) -> bytes:
        """What the caller gets after the last event (`data: [DONE]` for Chat Completions)."""
        assert self._upstream is not None
        return self._upstream.dialect.closing

    def error_event(self, error: StreamInterrupted, error_type: str) -> bytes:
        """The in-band event that tells the caller the stream broke, in the turn's API's terms."""
        assert self._upstream is not None
        return self._upstream.dialect.error_event(error.message, error.code or "stream_interrupted", error_type,
                                                  self._upstream.state)

    def cut_off_event(self, error_type: str) -> bytes:
        """The server is shutting down with this stream still open: the caller is told in-band, as for a broken
        stream, and the call is recorded as `shutdown`."""
        assert self._upstream is not None
        self._span.finish(self._upstream.state, outcome="shutdown")
        return self.error_event(StreamInterrupted("The server is shutting down; the answer was cut short.",
                                                  code="server_shutting_down"), error_type)

    def remaining_events(self) -> AsyncIterator[bytes]:
        """The events after the first, straight from the upstream (the relay's loop is the only layer a chunk
        passes): whatever the iterator raises is the upstream's failure, for `interrupted`; its end, `ended`."""
        assert self._upstream is not None
        return self._upstream.remaining_events()

    def interrupted(self, exc: Exception) -> StreamInterrupted:
        """The upstream failed after the first token: recorded, and told to the caller in-band."""
        assert self._upstream is not None
        log.warning("upstream stream broke after %d chunks: %s", self._upstream.state.chunks, exc)
        self._span.finish(self._upstream.state, outcome=StreamInterrupted.outcome, error=exc)
        return StreamInterrupted("The upstream LLM stream ended unexpectedly.", code="stream_interrupted")

    def ended(self) -> None:
        """The upstream's stream reached its API's end."""
        assert self._upstream is not None
        self._span.finish(self._upstream.state)

    async def close(self) -> None:
        """Release the upstream response; a turn closed before it finished was abandoned by its caller."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._upstream is not None:
                await self._upstream.close()
        finally:
            self._span.end(self._upstream.state if self._upstream is not None else None)


class ChatService:
    def __init__(self, injector: ImageInjector, upstreams: Upstreams, spans: UpstreamSpans, metrics: Metrics, *,
                 default_model: str, max_messages: int, first_byte_timeout: float, first_token_timeout: float,
                 reasoning_effort: str) -> None:
        self._injector = injector
        self._upstreams = upstreams
        self._spans = spans
        self._metrics = metrics
        self._default_model = default_model
        self._max_messages = max_messages
        self._first_byte_timeout = first_byte_timeout
        self._first_token_timeout = first_token_timeout
        self._reasoning_effort = reasoning_effort

    async def start_completion(self, body: dict[str, Any], public_base_url: str,
                               log_fields: dict[str, Any]) -> ChatTurn:
        """A Chat Completions turn whose upstream has answered. `log_fields` gains the model, stream flag, image
        count and the upstream that answered."""
        validate_chat_request(body, self._max_messages)
        injected = await self._injector.apply(body, body["messages"], public_base_url, CHAT_MESSAGES)
        try:
            payload = upstream_request(body, injected.messages, self._default_model)
            return await self._start(CHAT, payload, injected, log_fields)
        finally:
            injected.release()  # the upstream has the request (or it failed): its pictures' bytes are free

    async def start_response(self, body: dict[str, Any], public_base_url: str,
                             log_fields: dict[str, Any]) -> ChatTurn:
        """The same for a Responses API turn."""
        items = input_items(body, self._max_messages)
        injected = await self._injector.apply(body, items, public_base_url, RESPONSES_INPUT)
        try:
            payload = upstream_response_request(body, injected.messages, self._default_model)
            return await self._start(RESPONSES, payload, injected, log_fields)
        finally:
            injected.release()

    async def _start(self, api: str, payload: dict[str, Any], injected: InjectionResult,
                     log_fields: dict[str, Any]) -> ChatTurn:
        """Try the upstreams in order until one answers; the last one may use what is left of the first-byte
        budget, the others get the first-token timeout each."""
        context = TurnContext(injected.conversation_id, self._reasoning_effort)
        deadline = time.monotonic() + self._first_byte_timeout
        candidates = self._upstreams.candidates()
        failure: UpstreamError | None = None
        for index, candidate in enumerate(candidates):
            if not candidate.claim():
                continue  # its half-open trial was taken by another turn meanwhile
            upstream, last = candidate.upstream, index == len(candidates) - 1
            request = await self._request_for(upstream, api, payload, injected, context)
            model = self._metrics.model_label(request["model"])
            turn = ChatTurn(request, upstream.name, model, injected.image_count,
                            self._spans.start(request, model, injected.image_count, upstream,
                                              injected.conversation_id), self._metrics, log_fields)
            log_fields.update(model=model, stream=turn.stream, images=injected.image_count, upstream=upstream.name)
            left = max(0.0, deadline - time.monotonic())
            # only a stream's first token is worth waiting for; a whole non-streamed answer may take long
            timeout = left if last or not turn.stream else min(self._first_token_timeout, left)
            try:
                await turn.open(upstream.open if api == CHAT else upstream.open_response, timeout)
            except UpstreamError as exc:
                await turn.close()
                if not exc.upstreams_fault:
                    raise
                candidate.breaker.failed()
                if last:
                    raise
                failure = exc
                self._metrics.failovers.labels(upstream.name, exc.outcome).inc()
                log.warning("upstream %s failed before its first token (%s): trying the next", upstream.name,
                            exc.outcome)
                continue
            except BaseException:
                await turn.close()
                raise
            candidate.breaker.succeeded()
            return turn
        raise failure or UpstreamError("Every upstream LLM is failing; none was tried.")

    async def models(self) -> bytes:
        """The model list of the first upstream that answers (`GET /v1/models`), as it sent it, each try in a client
        span of its own. Upstreams are tried as for a turn, in order, past open breakers; unlike a turn's, this
        request carries nothing of the caller's, so any failure moves on (a 404: an upstream without the route),
        and only the upstream's faults (unreachable, 429, 5xx) count against its breaker."""
        candidates = self._upstreams.candidates()
        failure: UpstreamError | None = None
        for index, candidate in enumerate(candidates):
            if not candidate.claim():
                continue
            upstream = candidate.upstream
            try:
                with self._spans.http_call("GET", upstream, "/models") as call:
                    call.status, body = await upstream.models(call.headers)
            except UpstreamError as exc:
                if exc.upstreams_fault:
                    candidate.breaker.failed()
                failure = exc
                if index < len(candidates) - 1:
                    log.warning("upstream %s failed to list its models (%s): trying the next", upstream.name,
                                exc.outcome)
                continue
            candidate.breaker.succeeded()
            return body
        raise failure or UpstreamError("Every upstream LLM is failing; none was tried.")

    async def _request_for(self, upstream: Upstream, api: str, payload: dict[str, Any], injected: InjectionResult,
                           context: TurnContext) -> dict[str, Any]:
        """`payload` as this upstream takes it: its own model, images inline where it fetches no URLs, its
        provider's rules."""
        request = dict(payload)
        if upstream.model:
            request["model"] = upstream.model
        if upstream.provider.inline_images_only and injected.image_count:
            request["messages" if api == CHAT else "input"] = await self._injector.inline(injected)
        if api == CHAT:
            return upstream.provider.adapt_chat(request, context)
        return upstream.provider.adapt_response(request, context)
