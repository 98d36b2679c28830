"""An OTLP/HTTP trace receiver on loopback for tests: `POST /v1/traces` bodies (protobuf, as the SDK's
`OTLPSpanExporter` sends them) decoded with opentelemetry-proto into flat span dicts a test can compare attribute by
attribute, or dump as JSON."""

from __future__ import annotations

import asyncio
import gzip
import time
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tests.fakes.loopback import serve_app


class OtlpReceiver:
    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_post("/v1/traces", self._traces)
        self.runner: web.AppRunner | None = None
        self.endpoint = ""

    async def start(self) -> OtlpReceiver:
        self.runner, port = await serve_app(self.app)
        self.endpoint = f"http://127.0.0.1:{port}"  # OTEL_EXPORTER_OTLP_ENDPOINT: the exporter adds /v1/traces
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def in_trace(self, trace_id: str) -> list[dict[str, Any]]:
        return [span for span in self.spans if span["trace_id"] == trace_id]

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.spans) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(_flat(span, resource) for span in scope_spans.spans)
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")


def _flat(span: Span, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": span.name,
        "kind": Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
        "status": Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_"),
        "status_message": span.status.message,
        "attributes": {kv.key: _value(kv.value) for kv in span.attributes},
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(),
        "service": resource.get("service.name"),
    }


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, kind) if kind else None
