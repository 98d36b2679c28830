"""OpenTelemetry tracing: a server span per request and a GenAI client span per upstream call.

Configured by the standard `OTEL_*` variables. Spans are exported over OTLP only when
`OTEL_EXPORTER_OTLP_ENDPOINT` (or the traces-specific variable) is set; otherwise tracing costs a
no-op tracer. W3C trace context is propagated to the upstream in `traceparent`.

The spans follow OpenTelemetry's semantic conventions: HTTP server and client spans as open-telemetry/
semantic-conventions v1.44.0 `docs/http/http-spans.md` (Stable; the schema of opentelemetry-semantic-conventions
0.66b2, `Schemas.V1_44_0`) says, and the GenAI inference span as open-telemetry/semantic-conventions-genai v0.1.0
`docs/gen-ai/client-inference.md` (Development) says. `web/observe.py` makes the server span, `upstream/span.py`
the client spans.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from .. import __version__

log = logging.getLogger(__name__)


class Tracing:
    def __init__(self, provider: trace.TracerProvider | None = None) -> None:
        self.provider = provider or trace.NoOpTracerProvider()
        self.tracer = self.provider.get_tracer("glimpse", __version__)
        self.enabled = not isinstance(self.provider, trace.NoOpTracerProvider)

    @classmethod
    def with_processor(cls, processor: SpanProcessor) -> Tracing:
        provider = TracerProvider(resource=_resource())
        provider.add_span_processor(processor)
        return cls(provider)

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Tracing:
        env = os.environ if env is None else env
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if env.get("OTEL_SDK_DISABLED", "").lower() == "true" or not endpoint:
            return cls()
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but the OTLP exporter is not installed "
                        "(pip install 'glimpse[otlp]'); tracing is off")
            return cls()
        return cls.with_processor(BatchSpanProcessor(OTLPSpanExporter()))

    def inject_headers(self) -> dict[str, str]:
        if not self.enabled:
            return {}
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier

    def extract(self, headers: Mapping[str, str]) -> object:
        return propagate.extract(headers) if self.enabled else None

    def shutdown(self) -> None:
        shutdown = getattr(self.provider, "shutdown", None)
        if shutdown is not None:
            shutdown()


def exception_type(exc: BaseException) -> str:
    """`error.type` for an exception: its fully-qualified class name (http-spans.md, `error.type` note)."""
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _resource() -> Resource:
    return Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "glimpse"),
                            "service.version": __version__})
