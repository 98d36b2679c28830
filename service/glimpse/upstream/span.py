"""One upstream call, observed: a GenAI client span, the upstream duration and token metrics."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from ..observability.metrics import Metrics
from ..observability.tracing import Tracing
from .sse import RelayState

if TYPE_CHECKING:
    from .client import Upstream


class UpstreamSpans:
    """What every upstream call's span needs, fixed for the process: make one span per call with `start`."""

    def __init__(self, tracing: Tracing, metrics: Metrics, image_delivery: str, image_policy: str) -> None:
        self.tracing = tracing
        self.metrics = metrics
        self.image_delivery = image_delivery
        self.image_policy = image_policy

    def start(self, payload: dict[str, Any], model_label: str, images: int, upstream: Upstream) -> UpstreamSpan:
        """A span that is current (its trace context goes to the upstream) until `end`: one per upstream tried."""
        return UpstreamSpan(self, payload, model_label, images, upstream)


class UpstreamSpan:
    def __init__(self, spans: UpstreamSpans, payload: dict[str, Any], model_label: str, images: int,
                 upstream: Upstream) -> None:
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
                "server.address": upstream.server_address,
                "glimpse.upstream": upstream.name,
                "glimpse.stream": bool(payload.get("stream")),
            })
            if images:
                self._span.add_event("glimpse.images_injected", {
                    "glimpse.images.count": images,
                    "glimpse.images.delivery": spans.image_delivery,
                    "glimpse.images.policy": spans.image_policy,
                })

    def headers(self) -> dict[str, str]:
        """Trace context for the upstream request (`traceparent`)."""
        return self._spans.tracing.inject_headers()

    def finish(self, state: RelayState | None, outcome: str = "ok") -> None:
        """Record how the call ended (the first time only): duration, tokens, response model, error."""
        if self.done:
            return
        self.done = True
        metrics = self._spans.metrics
        elapsed = time.perf_counter() - self.started
        metrics.upstream_duration.labels(self.model, outcome, self.upstream).observe(elapsed)
        span = self._span
        if state is not None and state.usage is not None:
            metrics.count_usage(self.model, state.usage.prompt_tokens, state.usage.completion_tokens)
        if span.is_recording():
            if state is not None and state.response_model:
                span.set_attribute("gen_ai.response.model", state.response_model)
            if state is not None and state.usage is not None:
                span.set_attribute("gen_ai.usage.input_tokens", state.usage.prompt_tokens)
                span.set_attribute("gen_ai.usage.output_tokens", state.usage.completion_tokens)
            if outcome != "ok":
                span.set_status(trace.Status(trace.StatusCode.ERROR, outcome))
                span.set_attribute("error.type", outcome)

    def end(self, state: RelayState | None) -> None:
        """Close the span; a call that never finished was abandoned by its caller."""
        self.finish(state, outcome="cancelled")
        if self._scope is not None:
            self._scope.__exit__(None, None, None)
            self._span.end()
