"""Spans as a trace backend receives them: `glimpse serve` as a real process exporting over OTLP/HTTP
(OTEL_EXPORTER_OTLP_ENDPOINT) to a receiver in the test, its spans decoded with opentelemetry-proto and checked
attribute by attribute against the conventions the code cites (semantic-conventions v1.44.0 http-spans.md,
semantic-conventions-genai v0.1.0 client-inference.md). Each call carries its own trace id, which finds its spans.

Set GLIMPSE_SPAN_DUMP to a path to keep the decoded spans as JSON."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import conversation, elevenlabs_body
from tests.otlp_receiver import OtlpReceiver
from tests.processes import free_port, start_fake_upstream, start_glimpse

KEY = "sk-caller-key-for-otlp-test"
TRACE_IDS = (f"{n:032x}" for n in itertools.count(0x4BF92F3577B34DA6A3CE929D0E0E0001))


@pytest.fixture
async def receiver() -> AsyncIterator[OtlpReceiver]:
    receiver = await OtlpReceiver().start()
    yield receiver
    await receiver.stop()


class Drive:
    """One proxy process: each call gets a fresh trace id (a caller's traceparent), kept under its name."""

    def __init__(self, base: str, http: aiohttp.ClientSession) -> None:
        self.base = base
        self.http = http
        self.traces: dict[str, str] = {}

    async def call(self, name: str, method: str, path: str, *, key: str = KEY, body: Any = None) -> int:
        trace_id = self.traces[name] = next(TRACE_IDS)
        headers = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01", "Authorization": f"Bearer {key}"}
        async with self.http.request(method, self.base + path, json=body, headers=headers) as response:
            await response.read()
            return response.status

    async def turn(self, name: str, model: str, *, stream: bool = True, key: str = KEY) -> int:
        body = elevenlabs_body(f"sess-{name}", conversation("What is this?"), stream=stream, model=model)
        return await self.call(name, "POST", "/v1/chat/completions", key=key, body=body)


def only(spans: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [span for span in spans if span["kind"] == kind]
    assert len(found) == 1, spans
    return found[0]


async def test_spans_over_otlp_say_what_failed(receiver: OtlpReceiver, tmp_path: Path,
                                               http: aiohttp.ClientSession) -> None:
    fake, fake_url = start_fake_upstream()
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50",
           "OTEL_SERVICE_NAME": "glimpse-otlp-test"}
    settings = {"custom_llm_key": KEY, "upstream_api_key": "sk-upstream", "upstream_max_retries": "0",
                "upstream_first_byte_timeout": "0.5"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    proxy, base = start_glimpse(tmp_path / "a", env=env, upstream_base_url=fake_url, **settings)
    refused_url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    lonely, lonely_base = start_glimpse(tmp_path / "b", env=env, upstream_base_url=refused_url, **settings)
    try:
        a, b = Drive(base, http), Drive(lonely_base, http)
        assert await a.turn("ok", "gpt-4o-mini") == 200
        assert await a.turn("whole", "gpt-4o-mini", stream=False) == 200
        assert await a.turn("upstream-500", "fault-500") == 502
        assert await a.turn("upstream-401", "fault-401") == 502
        assert await a.turn("caller-401", "gpt-4o-mini", key="wrong") == 401
        assert await a.turn("cut", "fault-drop") == 200
        assert await a.turn("slow", "fault-slow-first-byte") == 504
        assert await a.call("models", "GET", "/v1/models") == 200
        for probe in ("/healthz", "/readyz", "/metrics"):
            assert await a.call(probe, "GET", probe) == 200
        assert await b.turn("refused", "gpt-4o-mini") == 502
    finally:
        for process in (proxy, lonely):
            code, log = process.stop()  # SIGTERM: the batch processor flushes on shutdown
            assert code == 0, log
        fake.stop()
    await receiver.wait_for(17)
    spans = receiver.spans
    if os.environ.get("GLIMPSE_SPAN_DUMP"):
        Path(os.environ["GLIMPSE_SPAN_DUMP"]).write_text(json.dumps(
            {"calls": {**{f"a:{k}": v for k, v in a.traces.items()}, **{f"b:{k}": v for k, v in b.traces.items()}},
             "spans": spans}, indent=1))

    def trace(drive: Drive, name: str) -> list[dict[str, Any]]:
        return receiver.in_trace(drive.traces[name])

    fake_port = int(fake_url.split(":")[2].split("/")[0])
    # a success: the server span unset, with url.* and server.*; the GenAI client span under it
    server, client = only(trace(a, "ok"), "SERVER"), only(trace(a, "ok"), "CLIENT")
    assert server["name"] == "POST /v1/chat/completions" and server["status"] == "UNSET"
    assert server["service"] == "glimpse-otlp-test"
    proxy_port = int(base.rsplit(":", 1)[1])
    assert server["attributes"] == {
        "http.request.method": "POST", "http.route": "/v1/chat/completions", "http.response.status_code": 200,
        "url.path": "/v1/chat/completions", "url.scheme": "http", "server.address": "127.0.0.1",
        "server.port": proxy_port, "network.protocol.version": "1.1"}
    assert client["parent_span_id"] == server["span_id"] and client["status"] == "UNSET"
    assert client["name"] == "chat gpt-4o-mini"
    attributes = client["attributes"]
    assert {k: attributes[k] for k in ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model",
                                       "gen_ai.request.stream", "gen_ai.conversation.id", "server.address",
                                       "server.port", "gen_ai.response.model", "gen_ai.response.finish_reasons")} == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai_compatible",
        "gen_ai.request.model": "gpt-4o-mini", "gen_ai.request.stream": True, "gen_ai.conversation.id": "sess-ok",
        "server.address": "127.0.0.1", "server.port": fake_port, "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.response.finish_reasons": ["stop"]}
    assert attributes["gen_ai.response.id"].startswith("chatcmpl-fake")
    assert attributes["gen_ai.usage.output_tokens"] == 7 and "error.type" not in attributes
    whole = only(trace(a, "whole"), "CLIENT")["attributes"]
    assert whole["gen_ai.request.stream"] is False and whole["gen_ai.response.finish_reasons"] == ["stop"]
    assert whole["gen_ai.response.id"].startswith("chatcmpl-fake")
    assert whole["gen_ai.response.id"] != attributes["gen_ai.response.id"]

    # 500, 401 and a refused connection: three different error.type values on the client span; the server's 502
    # is ERROR, with the error class that made it
    errors = {}
    for drive, name in ((a, "upstream-500"), (a, "upstream-401"), (b, "refused")):
        server, client = only(trace(drive, name), "SERVER"), only(trace(drive, name), "CLIENT")
        assert server["status"] == "ERROR" and server["attributes"]["http.response.status_code"] == 502
        assert server["attributes"]["error.type"] == "glimpse.errors.UpstreamError"
        assert client["status"] == "ERROR" and client["parent_span_id"] == server["span_id"]
        errors[name] = client["attributes"]["error.type"]
    assert errors == {"upstream-500": "500", "upstream-401": "401",
                      "refused": "aiohttp.client_exceptions.ClientConnectorError"}
    assert only(trace(a, "upstream-500"), "CLIENT")["attributes"]["http.response.status_code"] == 500
    assert only(trace(a, "upstream-401"), "CLIENT")["attributes"]["http.response.status_code"] == 401

    # the caller's own 401: no error of the server's (unset, no error.type), and no upstream call
    (server,) = trace(a, "caller-401")
    assert server["status"] == "UNSET" and server["attributes"]["http.response.status_code"] == 401
    assert "error.type" not in server["attributes"]

    # a stream cut after its first token: the 200 is an error all the same, the generation ended in `error`
    server, client = only(trace(a, "cut"), "SERVER"), only(trace(a, "cut"), "CLIENT")
    assert server["status"] == "ERROR" and server["attributes"]["http.response.status_code"] == 200
    assert server["attributes"]["error.type"] == "glimpse.chat.service.StreamInterrupted"
    assert client["status"] == "ERROR"
    assert client["attributes"]["error.type"] == "aiohttp.client_exceptions.ClientPayloadError"  # the chunked body cut
    assert client["attributes"]["gen_ai.response.finish_reasons"] == ["error"]

    # no first byte in time: 504, error.type `timeout` on the call
    server, client = only(trace(a, "slow"), "SERVER"), only(trace(a, "slow"), "CLIENT")
    assert server["status"] == "ERROR" and server["attributes"]["error.type"] == "glimpse.errors.UpstreamTimedOut"
    assert client["attributes"]["error.type"] == "timeout"

    # /v1/models: an HTTP client span, whose traceparent reached the upstream
    server, client = only(trace(a, "models"), "SERVER"), only(trace(a, "models"), "CLIENT")
    assert server["name"] == "GET /v1/models" and client["name"] == "GET"
    assert client["parent_span_id"] == server["span_id"] and client["status"] == "UNSET"
    assert client["attributes"] == {"http.request.method": "GET", "server.address": "127.0.0.1",
                                    "server.port": fake_port, "url.full": fake_url + "/models",
                                    "http.response.status_code": 200}

    # probes and /metrics: no span at all
    for probe in ("/healthz", "/readyz", "/metrics"):
        assert trace(a, probe) == []
    assert not [span for span in spans if span["attributes"].get("http.route") in ("/healthz", "/readyz")]
