"""One upstream call, observed: a client span, the upstream duration and call metrics, the tokens used.

A turn's call is a GenAI inference span, as open-telemetry/semantic-conventions-genai v0.1.0
`docs/gen-ai/client-inference.md` (Development) defines it: kind CLIENT, named `{gen_ai.operation.name}
{gen_ai.request.model}`, ERROR with an `error.type` when the call failed (semantic-conventions v1.44.0
`docs/general/recording-errors.md`), unset when its caller went away. `/models` is a plain HTTP client span
(semantic-conventions v1.44.0 `docs/http/http-spans.md`, "HTTP client span"). The GenAI attributes are written as
strings: the semconv package keeps them in its private `_incubating` module, deprecated there since they moved.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_FULL

from ..errors import UpstreamError
from ..observability.metrics import Metrics
from ..observability.tracing import Tracing, exception_type
from .sse import RelayState

if TYPE_CHECKING:
    from .client import Upstream

UNSET_OUTCOMES = frozenset({"ok", "cancelled"})  # a caller that went away is no failure of the call
BROKEN_OFF_OUTCOMES = frozenset({"dropped", "shutdown"})  # finish reason `error` (client-inference.md note [18])


def upstream_error_type(error: BaseException) -> str:
    """`error.type` of a failed upstream call: what the client library raised (`timeout` for no answer in time),
    else the status the upstream answered, else the error's class."""
    if isinstance(error, UpstreamError):
        if error.error_type:
            return error.error_type
        if error.upstream_status is not None:
            return str(error.upstream_status)
    return exception_type(error)


@dataclass
class HttpCall:
    """An HTTP call's span as its caller sees it: the headers to send (`traceparent`), the status to record."""

    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None


class UpstreamSpans:
    """What every upstream call's span needs, fixed for the process: make one span per call with `start`."""

    def __init__(self, tracing: Tracing, metrics: Metrics, image_delivery: str, image_policy: str) -> None:
        self.tracing = tracing
        self.metrics = metrics
        self.image_delivery = image_delivery
        self.image_policy = image_policy

    def start(self, payload: dict[str, Any], model_label: str, images: int, upstream: Upstream,
              conversation_id: str | None = None) -> UpstreamSpan:
        """A span that is current (its trace context goes to the upstream) until `end`: one per upstream tried."""
        return UpstreamSpan(self, payload, model_label, images, upstream, conversation_id)

    @contextlib.contextmanager
    def http_call(self, method: str, upstream: Upstream, path: str) -> Iterator[HttpCall]:
        """A CLIENT span around one plain HTTP call to `upstream` (named `{method}`: there is no URL template)."""
        if not self.tracing.enabled:
            yield HttpCall()
            return
        with self.tracing.tracer.start_as_current_span(method, kind=trace.SpanKind.CLIENT, record_exception=False,
                                                       set_status_on_exception=False) as span:
            span.set_attributes({HTTP_REQUEST_METHOD: method, SERVER_ADDRESS: upstream.server_address,
                                 SERVER_PORT: upstream.server_port, URL_FULL: upstream.url(path)})
            call = HttpCall(self.tracing.inject_headers())
            try:
                yield call
            except Exception as error:
                _record_error(span, error)
                raise
            if call.status is not None:
                span.set_attribute(HTTP_RESPONSE_STATUS_CODE, call.status)


class UpstreamSpan:
    def __init__(self, spans: UpstreamSpans, payload: dict[str, Any], model_label: str, images: int,
                 upstream: Upstream, conversation_id: str | None) -> None:
        self._spans = spans
        self.model = model_label
        self.upstream = upstream.name
        self.done = False
        self.started = time.perf_counter()
        if not spans.tracing.enabled:  # no span, not even a no-op one (it would cost a context switch)
            self._span: trace.Span = trace.INVALID_SPAN
            self._scope: AbstractContextManager[trace.Span] | None = None
            return
        self._span = spans.tracing.tracer.start_span(f"chat {payload.get('model')}", kind=trace.SpanKind.CLIENT)
        self._scope = trace.use_span(self._span, end_on_exit=False)
        self._scope.__enter__()
        if self._span.is_recording():
            self._span.set_attributes({
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": upstream.provider.otel_name,
                "gen_ai.request.model": str(payload.get("model")),
                "gen_ai.request.stream": bool(payload.get("stream")),
                SERVER_ADDRESS: upstream.server_address,
                SERVER_PORT: upstream.server_port,
                "glimpse.upstream": upstream.name,
            })
            if conversation_id:
                self._span.set_attribute("gen_ai.conversation.id", conversation_id)
            if images:
                self._span.add_event("glimpse.images_injected", {
                    "glimpse.images.count": images,
                    "glimpse.images.delivery": spans.image_delivery,
                    "glimpse.images.policy": spans.image_policy,
                })

    def headers(self) -> dict[str, str]:
        """Trace context for the upstream request (`traceparent`)."""
        return self._spans.tracing.inject_headers()

    def finish(self, state: RelayState | None, outcome: str = "ok", error: BaseException | None = None) -> None:
        """Record how the call ended (the first time only): duration, tokens, the response's model, id and finish
        reasons; for a failure, `error.type` (from `error`, else the outcome word, e.g. `timeout`)."""
        if self.done:
            return
        self.done = True
        metrics = self._spans.metrics
        elapsed = time.perf_counter() - self.started
        metrics.upstream_duration.labels(self.model, outcome, self.upstream).observe(elapsed)
        metrics.upstream_calls.labels(self.upstream, outcome).inc()
        if state is not None and state.usage is not None:
            metrics.count_usage(self.model, state.usage.prompt_tokens, state.usage.completion_tokens)
        span = self._span
        if not span.is_recording():
            return
        attributes: dict[str, Any] = {}
        if state is not None:
            if state.response_model:
                attributes["gen_ai.response.model"] = state.response_model
            if state.response_id:
                attributes["gen_ai.response.id"] = state.response_id
            finish_reasons = ("error",) if outcome in BROKEN_OFF_OUTCOMES else state.finish_reasons
            if finish_reasons:
                attributes["gen_ai.response.finish_reasons"] = finish_reasons
            if state.usage is not None:
                attributes["gen_ai.usage.input_tokens"] = state.usage.prompt_tokens
                attributes["gen_ai.usage.output_tokens"] = state.usage.completion_tokens
        span.set_attributes(attributes)
        if error is not None:
            _record_error(span, error)
        elif outcome not in UNSET_OUTCOMES:
            span.set_attribute(ERROR_TYPE, outcome)
            span.set_status(trace.StatusCode.ERROR)

    def end(self, state: RelayState | None) -> None:
        """Close the span; a call that never finished was abandoned by its caller."""
        self.finish(state, outcome="cancelled")
        if self._scope is not None:
            self._scope.__exit__(None, None, None)
            self._span.end()


def _record_error(span: trace.Span, error: BaseException) -> None:
    """ERROR with `error.type`; the upstream's status when it answered one (then it says all: no description)."""
    status = error.upstream_status if isinstance(error, UpstreamError) else None
    if status is not None:
        span.set_attribute(HTTP_RESPONSE_STATUS_CODE, status)
    span.set_attribute(ERROR_TYPE, upstream_error_type(error))
    span.set_status(trace.StatusCode.ERROR, None if status is not None else str(error) or None)
