"""One upstream call, observed: a GenAI client span, upstream duration and token metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from opentelemetry import trace

from .errors import ApiError
from .services import Services
from .upstream import RelayState

T = TypeVar("T")


def provider_name(base_url: str) -> str:
    host = urlsplit(base_url).hostname or ""
    if host.endswith("openai.com"):
        return "openai"
    if host.endswith("googleapis.com"):
        return "gcp.gemini"
    return "openai_compatible"


class UpstreamSpan:
    def __init__(self, services: Services, payload: dict[str, Any], images: int) -> None:
        self.services = services
        self.model = services.metrics.model_label(payload.get("model"))
        self.payload = payload
        self.images = images
        self.started = 0.0
        self.done = False
        self._span: trace.Span = trace.INVALID_SPAN
        self._scope: Any = None

    def __enter__(self) -> UpstreamSpan:
        self.started = time.perf_counter()
        tracer = self.services.tracing.tracer
        self._span = tracer.start_span(f"chat {self.payload.get('model')}", kind=trace.SpanKind.CLIENT)
        self._scope = trace.use_span(self._span, end_on_exit=False)
        self._scope.__enter__()
        if self._span.is_recording():
            settings = self.services.settings
            self._span.set_attributes({
                "gen_ai.operation.name": "chat",
                "gen_ai.system": provider_name(settings.upstream_base_url),
                "gen_ai.request.model": str(self.payload.get("model")),
                "server.address": urlsplit(settings.upstream_base_url).hostname or "",
                "glimpse.stream": bool(self.payload.get("stream")),
            })
            if self.images:
                self._span.add_event("glimpse.images_injected", {
                    "glimpse.images.count": self.images,
                    "glimpse.images.delivery": settings.image_delivery,
                    "glimpse.images.policy": settings.image_policy,
                })
        return self

    def headers(self) -> dict[str, str]:
        return self.services.tracing.inject_headers()

    async def open(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except ApiError as exc:
            self.finish(None, outcome=f"http_{exc.status}")
            raise

    def finish(self, state: RelayState | None, outcome: str = "ok") -> None:
        if self.done:
            return
        self.done = True
        metrics = self.services.metrics
        metrics.upstream_duration.labels(self.model, outcome).observe(time.perf_counter() - self.started)
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

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.done:
            self.finish(None, outcome="cancelled" if exc_type is not None else "ok")
        self._scope.__exit__(exc_type, exc, tb)
        self._span.end()
