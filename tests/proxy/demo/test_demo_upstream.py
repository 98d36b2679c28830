"""Try it with no keys (#20): with no upstream LLM configured, the built-in demo model answers, through the real
proxy over HTTP, the openai SDK, injection, the relay, metrics and spans, exactly as an upstream does."""

from __future__ import annotations

import io
import json
import logging
import time
import typing
from typing import Any

import aiohttp
import pytest
from openai.types.responses import ResponseStreamEvent
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from PIL import Image

from glimpse.config import DEFAULT_UPSTREAM_BASE_URL
from glimpse.conversation.sessions import DEMO_MODEL_WARNING
from glimpse.observability.tracing import Tracing
from glimpse.resources import DEMO_MODEL, UPSTREAMS
from tests.conftest import Proxy, StartProxy
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.vendor_spec import validator
from tests.helpers import (
    contents,
    conversation,
    elevenlabs_body,
    new_session,
    parse_events,
    parse_sse,
    responses_body,
    upload,
)
from tests.images import jpeg
from tests.metrics_scrape import scrape, value

NO_UPSTREAM = {"upstream_base_url": DEFAULT_UPSTREAM_BASE_URL, "upstream_api_key": ""}
RED_PHOTO = (400, 300, (220, 20, 20))
EVENTS = {typing.get_args(event.model_fields["type"].annotation)[0]: event
          for event in typing.get_args(typing.get_args(ResponseStreamEvent)[0])}


async def demo_proxy(start_proxy: StartProxy, **overrides: Any) -> Proxy:
    return await start_proxy(**NO_UPSTREAM, **overrides)


async def session_with_red_photo(http: aiohttp.ClientSession, proxy: Proxy) -> dict[str, Any]:
    session = await new_session(http, proxy.url)
    width, height, colour = RED_PHOTO
    assert (await upload(http, proxy.url, session, jpeg(width, height, colour))).status == 201
    return session


def png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def says_red_photo(text: str, question: str) -> None:
    assert text.startswith(f'Demo model (no LLM is configured): you asked "{question}".'), text
    assert "I see 1 picture: 400 by 300, landscape," in text and "red" in text, text
    assert "I do not understand them" in text


async def test_a_streamed_chat_turn_is_answered_by_the_demo_model(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                                  http: aiohttp.ClientSession) -> None:
    proxy = await demo_proxy(start_proxy)
    session = await session_with_red_photo(http, proxy)
    assert session["demo_model"] is True and DEMO_MODEL_WARNING in session["warning"]
    before = await scrape(http, proxy)
    async with http.post(proxy.v1 + "/chat/completions",
                         json=elevenlabs_body(session, conversation("What colour is this?"))) as response:
        assert response.status == 200, await response.text()
        assert response.headers["X-Glimpse-Upstream"] == "demo"
        raw = await response.read()
    payloads = parse_sse(raw)  # strict framing, ending with data: [DONE]
    chunk_schema = validator("openai", "CreateChatCompletionStreamResponse")
    for payload in payloads[:-1]:
        chunk_schema.validate(json.loads(payload))
    assert len(payloads) > 20  # word by word
    assert json.loads(payloads[0])["model"] == "glimpse-demo"
    says_red_photo(contents(payloads), "What colour is this?")
    assert not any('"usage"' in p and '"usage":null' not in p for p in payloads)  # the usage chunk asked for is hid

    after = await scrape(http, proxy)
    assert value(after, "glimpse_upstream_duration_seconds_count", model="glimpse-demo", outcome="ok",
                 upstream="demo") - value(before, "glimpse_upstream_duration_seconds_count", model="glimpse-demo",
                                          outcome="ok", upstream="demo") == 1
    assert value(after, "glimpse_time_to_first_token_seconds_count", model="glimpse-demo") == 1
    assert value(after, "glimpse_tokens_total", model="glimpse-demo", kind="completion") > 20
    assert value(after, "glimpse_images_injected_total", policy="sticky") == 1
    assert upstream.requests == []  # the configured-by-default fake was never asked


async def test_a_chat_turn_without_a_picture_asks_for_one(start_proxy: StartProxy,
                                                          http: aiohttp.ClientSession) -> None:
    proxy = await demo_proxy(start_proxy)
    session = await new_session(http, proxy.url)
    async with http.post(proxy.v1 + "/chat/completions",
                         json=elevenlabs_body(session, conversation("Hello, who are you?"))) as response:
        text = contents(parse_sse(await response.read()))
    assert 'you asked "Hello, who are you?"' in text and "Show me a picture and ask again" in text


async def test_non_streamed_chat_and_several_pictures(start_proxy: StartProxy, http: aiohttp.ClientSession) -> None:
    proxy = await demo_proxy(start_proxy)
    session = await session_with_red_photo(http, proxy)
    assert (await upload(http, proxy.url, session, png(300, 400, (0, 0, 255)), filename="b.png",
                         content_type="image/png")).status == 201
    body = elevenlabs_body(session, conversation("Compare them", "Sure.", "Which is blue?"), stream=False)
    async with http.post(proxy.v1 + "/chat/completions", json=body) as response:
        assert response.status == 200 and response.headers["X-Glimpse-Upstream"] == "demo"
        completion = await response.json()
    validator("openai", "CreateChatCompletionResponse").validate(completion)
    text = completion["choices"][0]["message"]["content"]
    assert 'you asked "Which is blue?"' in text and "I see 2 pictures." in text
    assert "Picture 1: 400 by 300, landscape" in text and "Picture 2: 300 by 400, portrait, entirely blue" in text


async def test_a_responses_turn_streamed_and_not(start_proxy: StartProxy, http: aiohttp.ClientSession) -> None:
    proxy = await demo_proxy(start_proxy)
    session = await session_with_red_photo(http, proxy)
    async with http.post(proxy.v1 + "/responses", json=responses_body(session, "What colour is this?")) as response:
        assert response.status == 200 and response.headers["X-Glimpse-Upstream"] == "demo"
        events = parse_events(await response.read())  # strict framing, no [DONE]
    for _, data in events:
        EVENTS[data["type"]].model_validate(data)
    assert events[0][0] == "response.created" and events[-1][0] == "response.completed"
    text = "".join(data["delta"] for kind, data in events if kind == "response.output_text.delta")
    says_red_photo(text, "What colour is this?")
    assert events[-1][1]["response"]["output"][0]["content"][0]["text"] == text

    async with http.post(proxy.v1 + "/responses",
                         json=responses_body(session, "What colour is this?", stream=False)) as response:
        assert response.status == 200
        whole = await response.json()
    says_red_photo(whole["output"][0]["content"][0]["text"], "What colour is this?")
    samples = await scrape(http, proxy)
    assert value(samples, "glimpse_upstream_duration_seconds_count", model="glimpse-demo", outcome="ok",
                 upstream="demo") == 2


async def test_url_delivery_still_reaches_the_demo_model_inline(start_proxy: StartProxy,
                                                                http: aiohttp.ClientSession) -> None:
    proxy = await demo_proxy(start_proxy, image_delivery="url")
    session = await session_with_red_photo(http, proxy)
    async with http.post(proxy.v1 + "/chat/completions",
                         json=elevenlabs_body(session, conversation("What colour is this?"))) as response:
        says_red_photo(contents(parse_sse(await response.read())), "What colour is this?")


async def test_models_span_and_the_demo_models_own_key(start_proxy: StartProxy, http: aiohttp.ClientSession) -> None:
    exporter = InMemorySpanExporter()
    proxy = await demo_proxy(start_proxy, tracing=Tracing.with_processor(SimpleSpanProcessor(exporter)))
    async with http.get(proxy.v1 + "/models") as response:
        assert [model["id"] for model in (await response.json())["data"]] == ["glimpse-demo"]
    session = await session_with_red_photo(http, proxy)
    exporter.clear()
    async with http.post(proxy.v1 + "/chat/completions",
                         json=elevenlabs_body(session, conversation("What colour is this?"))) as response:
        await response.read()
    client = next(s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT)
    attributes = dict(client.attributes or {})
    assert attributes["gen_ai.provider.name"] == "glimpse.demo" and attributes["glimpse.upstream"] == "demo"
    assert attributes["gen_ai.request.model"] == attributes["gen_ai.response.model"] == "glimpse-demo"
    assert attributes["server.address"] == "127.0.0.1"
    # on loopback, and only for the proxy: a call without the key drawn at start is refused
    demo_url = proxy.app[DEMO_MODEL].base_url
    assert demo_url.startswith("http://127.0.0.1:") and proxy.app[UPSTREAMS].primary.name == "demo"
    async with http.get(demo_url + "/models", headers={"Authorization": "Bearer no-key-configured"}) as response:
        assert response.status == 401 and (await response.json())["error"]["code"] == "invalid_api_key"


async def test_start_up_says_so(start_proxy: StartProxy, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="glimpse.resources"):
        await demo_proxy(start_proxy)
    assert any(record.getMessage().startswith("No upstream LLM configured: answering with the built-in demo model")
               and "GLIMPSE_UPSTREAM_API_KEY" in record.getMessage() for record in caplog.records)


async def test_a_configured_upstream_never_gets_the_demo_model(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                               http: aiohttp.ClientSession) -> None:
    openai_proxy = await start_proxy(upstream_base_url=DEFAULT_UPSTREAM_BASE_URL, upstream_api_key="sk-real-key")
    assert DEMO_MODEL not in openai_proxy.app
    primary = openai_proxy.app[UPSTREAMS].primary
    assert (primary.name, primary.provider.name, primary.server_address) == ("default", "openai", "api.openai.com")
    session = await new_session(http, openai_proxy.url)
    assert session["demo_model"] is False and "demo" not in session.get("warning", "")

    proxy = await start_proxy()  # the tests' own fake upstream, with a key
    session = await session_with_red_photo(http, proxy)
    async with http.post(proxy.v1 + "/chat/completions",
                         json=elevenlabs_body(session, conversation("What colour is this?"))) as response:
        assert response.headers["X-Glimpse-Upstream"] == "default"
        assert "Demo model" not in contents(parse_sse(await response.read()))
    assert len(upstream.chat_requests) == 1


async def test_the_demo_model_chosen_explicitly(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(upstream_provider="demo")  # with the fake's URL and a key: demo all the same
    session = await session_with_red_photo(http, proxy)
    assert session["demo_model"] is True
    started = time.perf_counter()
    async with http.post(proxy.v1 + "/chat/completions",
                         json=elevenlabs_body(session, conversation("What colour is this?"))) as response:
        assert response.headers["X-Glimpse-Upstream"] == "demo"
        first = await response.content.readany()
        assert time.perf_counter() - started < 1.0  # the first words come at once
        raw = first + await response.read()
    says_red_photo(contents(parse_sse(raw)), "What colour is this?")
    assert upstream.requests == []


async def test_a_turn_naming_no_model_is_answered_by_the_demo_model(start_proxy: StartProxy,
                                                                   http: aiohttp.ClientSession) -> None:
    """The page's typed turns name no model: the demo model's own applies, as an upstream's fixed model does."""
    proxy = await demo_proxy(start_proxy)
    session = await new_session(http, proxy.url)
    body = elevenlabs_body(session, conversation("Anything?"))
    del body["model"]
    async with http.post(proxy.v1 + "/chat/completions", json=body) as response:
        assert response.status == 200 and "Demo model" in contents(parse_sse(await response.read()))
