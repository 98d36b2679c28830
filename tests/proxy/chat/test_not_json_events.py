"""An upstream `data:` event that is not a JSON object (an HTML error page from a gateway, plain text, a chunk cut
short) is never relayed: an OpenAI client would fail parsing it. The stream ends there as a broken one does —
the in-band error event, then `[DONE]` — or, while nothing has reached the caller, the next upstream answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.conftest import Proxy, StartProxy
from tests.fakes.openai_upstream import Behaviour, FakeOpenAI
from tests.helpers import contents, conversation, elevenlabs_body, parse_sse

JUNK = [b"data: <html><body>502 Bad Gateway</body></html>\n\n", b"data: oops\n\n",
        b'data: {"id":"chatcmpl-1","choices":[{"delta":{"content":"cut\n\n']


@pytest.fixture
async def backup() -> AsyncIterator[FakeOpenAI]:
    fake = await FakeOpenAI().start()
    fake.default = Behaviour(words=["Backup ", "here."])
    yield fake
    await fake.stop()


async def turn(proxy: Proxy, http: aiohttp.ClientSession, **extra: object) -> tuple[int, bytes]:
    async with http.post(proxy.v1 + "/chat/completions",
                         json=elevenlabs_body("sess-1", conversation("What is this?"), **extra)) as response:
        return response.status, await response.read()


@pytest.mark.parametrize("junk", JUNK)
async def test_a_non_json_event_mid_stream_ends_it_in_band(proxy: Proxy, upstream: FakeOpenAI,
                                                           http: aiohttp.ClientSession, junk: bytes) -> None:
    upstream.default = Behaviour(words=["The ", "picture ", "shows ", "a cat."], junk=(2, junk), chunk_delay=0.05)
    status, raw = await turn(proxy, http)
    assert status == 200
    payloads = parse_sse(raw)  # strict framing: every event a data: line, ending with [DONE]
    assert all(json.loads(p) for p in payloads[:-1])  # nothing relayed that a client could not parse
    assert contents(payloads[:-2]) == "The picture "  # what came before the junk, nothing after it
    assert json.loads(payloads[-2])["error"]["code"] == "stream_interrupted"
    assert proxy.metrics.registry.get_sample_value(
        "glimpse_upstream_calls_total", {"upstream": "default", "outcome": "dropped"}) == 1


async def test_a_non_json_first_event_hands_the_turn_to_the_next_upstream(
        start_proxy: StartProxy, upstream: FakeOpenAI, backup: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    upstream.default = Behaviour(junk=(-1, JUNK[0]))  # before the role chunk: nothing reached the caller
    proxy = await start_proxy(upstreams=[{"name": "primary", "base_url": upstream.base_url, "api_key": "sk-p"},
                                         {"name": "backup", "base_url": backup.base_url, "api_key": "sk-b"}])
    status, raw = await turn(proxy, http)
    assert status == 200 and contents(parse_sse(raw)) == "Backup here."


async def test_a_non_json_event_from_the_only_upstream_before_any_output_is_a_502(
        proxy: Proxy, upstream: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    upstream.default = Behaviour(junk=(-1, JUNK[1]))
    status, raw = await turn(proxy, http)
    assert status == 502 and json.loads(raw)["error"]["type"]


async def test_a_reasoning_model_stream_refuses_it_too(proxy: Proxy, upstream: FakeOpenAI,
                                                       http: aiohttp.ClientSession) -> None:
    upstream.default = Behaviour(words=["<think>x</think>", "Hi", " there."], junk=(2, JUNK[0]), chunk_delay=0.05)
    status, raw = await turn(proxy, http, model="deepseek-r1")
    assert status == 200
    payloads = parse_sse(raw)
    assert contents(payloads[:-2]) == "Hi" and json.loads(payloads[-2])["error"]["code"] == "stream_interrupted"
