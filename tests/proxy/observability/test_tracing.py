"""OpenTelemetry spans with the SDK's in-memory exporter: server span, GenAI client span, traceparent."""

from __future__ import annotations

import aiohttp
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from glimpse.observability.tracing import Tracing
from tests.conftest import Proxy, StartProxy
from tests.fakes.openai_upstream import Behaviour, FakeOpenAI
from tests.helpers import conversation, elevenlabs_body, new_session, responses_body, upload


async def traced_proxy(start_proxy: StartProxy, upstream: FakeOpenAI, tmp_path) -> tuple[Proxy, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing = Tracing.with_processor(SimpleSpanProcessor(exporter))
    return await start_proxy(tracing=tracing), exporter


async def test_spans_and_propagation(start_proxy: StartProxy, upstream: FakeOpenAI, tmp_path,
                                     http: aiohttp.ClientSession) -> None:
    proxy, exporter = await traced_proxy(start_proxy, upstream, tmp_path)
    session = await new_session(http, proxy.url)
    await upload(http, proxy.url, session)
    exporter.clear()
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"}
    async with http.post(proxy.v1 + "/chat/completions", headers=headers,
                         json=elevenlabs_body(session, conversation("What is this?"))) as response:
        await response.read()

    spans = exporter.get_finished_spans()
    server = next(s for s in spans if s.kind == SpanKind.SERVER)
    client = next(s for s in spans if s.kind == SpanKind.CLIENT)
    assert server.name == "POST /v1/chat/completions"
    assert format(server.context.trace_id, "032x") == caller_trace  # joined the caller's trace
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    assert client.context.trace_id == server.context.trace_id
    attributes = dict(client.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    # the current GenAI conventions: gen_ai.provider.name (gen_ai.system is deprecated)
    assert attributes["gen_ai.provider.name"] == "openai_compatible" and "gen_ai.system" not in attributes
    assert attributes["glimpse.upstream"] == "default"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] == 7
    event = next(e for e in client.events if e.name == "glimpse.images_injected")
    assert dict(event.attributes or {}) == {"glimpse.images.count": 1, "glimpse.images.delivery": "inline",
                                            "glimpse.images.policy": "sticky"}
    assert "data:image" not in str([dict(s.attributes or {}) for s in spans])

    received = {k.lower(): v for k, v in upstream.chat_requests[-1].headers.items()}
    _version, trace_id, parent_id, _flags = received["traceparent"].split("-")
    assert trace_id == caller_trace and int(parent_id, 16) == client.context.span_id


async def test_upstream_error_marks_the_client_span(start_proxy: StartProxy, upstream: FakeOpenAI, tmp_path,
                                                    http: aiohttp.ClientSession) -> None:
    proxy, exporter = await traced_proxy(start_proxy, upstream, tmp_path)
    upstream.default = Behaviour(status=500)
    async with http.post(proxy.v1 + "/chat/completions", json=elevenlabs_body(None, conversation("x"))) as r:
        assert r.status == 502
    client = next(s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT)
    assert client.status.status_code == StatusCode.ERROR
    assert dict(client.attributes or {})["error.type"] == "500"
    server = next(s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER)
    assert dict(server.attributes or {})["http.response.status_code"] == 502
    assert server.status.status_code == StatusCode.ERROR  # a 5xx is the server's failure (http-spans.md, Status)
    assert dict(server.attributes or {})["error.type"] == "glimpse.errors.UpstreamError"


async def test_a_callers_mistake_and_a_probe_are_no_errors(start_proxy: StartProxy, upstream: FakeOpenAI, tmp_path,
                                                           http: aiohttp.ClientSession) -> None:
    proxy, exporter = await traced_proxy(start_proxy, upstream, tmp_path)
    async with http.post(proxy.v1 + "/chat/completions", data=b"{not json") as r:
        assert r.status == 400
    for probe in ("/healthz", "/readyz", "/metrics"):
        async with http.get(proxy.url + probe) as r:
            assert r.status == 200
    (server,) = exporter.get_finished_spans()  # the probes made none
    assert server.status.status_code == StatusCode.UNSET
    assert "error.type" not in dict(server.attributes or {})


async def test_a_responses_turn_records_its_id_and_finish(start_proxy: StartProxy, upstream: FakeOpenAI, tmp_path,
                                                         http: aiohttp.ClientSession) -> None:
    proxy, exporter = await traced_proxy(start_proxy, upstream, tmp_path)
    for stream in (True, False):
        async with http.post(proxy.v1 + "/responses", json=responses_body(None, "Hi", stream=stream)) as r:
            assert r.status == 200
            await r.read()
    clients = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert [dict(s.attributes or {})["gen_ai.request.stream"] for s in clients] == [True, False]
    for span in clients:
        attributes = dict(span.attributes or {})
        assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
        assert str(attributes["gen_ai.response.id"]).startswith("resp_")


async def test_signatures_in_the_query_are_redacted(start_proxy: StartProxy, upstream: FakeOpenAI, tmp_path,
                                                   http: aiohttp.ClientSession) -> None:
    proxy, exporter = await traced_proxy(start_proxy, upstream, tmp_path)
    async with http.get(proxy.url + "/serve_image/img_nope?expires=1&sig=s3cr3t") as r:
        assert r.status >= 400
    (server,) = exporter.get_finished_spans()
    attributes = dict(server.attributes or {})
    assert attributes["url.path"] == "/serve_image/img_nope" and attributes["http.route"] == "/serve_image/{image_id}"
    assert attributes["url.query"] == "expires=1&sig=REDACTED"
