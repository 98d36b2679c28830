"""The proxy relays OpenAI Chat Completions, streamed and not, to and from a real upstream server."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai

from tests.conftest import Proxy
from tests.fakes.openai_upstream import DEFAULT_WORDS, Behaviour, FakeOpenAI
from tests.helpers import contents, conversation, elevenlabs_body, parse_sse


async def test_stream_reaches_caller_chunk_for_chunk(proxy: Proxy, upstream: FakeOpenAI,
                                                     http: aiohttp.ClientSession) -> None:
    body = elevenlabs_body("sess-1", conversation("What is this?"))
    async with http.post(proxy.v1 + "/chat/completions", json=body) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        raw = await response.read()
    payloads = parse_sse(raw)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    # role chunk + one per word + finish chunk; the usage chunk the proxy asked for is not passed on
    assert len(chunks) == 1 + len(DEFAULT_WORDS) + 1
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]] == DEFAULT_WORDS
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert contents(payloads) == "".join(DEFAULT_WORDS)


async def test_chunks_are_flushed_as_they_arrive(proxy: Proxy, upstream: FakeOpenAI,
                                                 http: aiohttp.ClientSession) -> None:
    upstream.default = Behaviour(words=["one ", "two ", "three"], chunk_delay=0.3)
    body = elevenlabs_body("sess-1", conversation("Count"))
    arrivals: list[float] = []
    loop = asyncio.get_running_loop()
    async with http.post(proxy.v1 + "/chat/completions", json=body) as response:
        async for line in response.content:
            if line.startswith(b"data: {"):
                chunk = json.loads(line[6:])
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    arrivals.append(loop.time())
    # five chunks 0.3 s apart upstream arrive spread out, not in one buffered lump at the end
    assert len(arrivals) >= 3
    assert arrivals[-1] - arrivals[0] > 0.45


async def test_openai_client_parses_the_stream(proxy: Proxy, upstream: FakeOpenAI) -> None:
    client = openai.AsyncOpenAI(base_url=proxy.v1, api_key="unused")
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=conversation("Hi"), stream=True)
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert text == "".join(DEFAULT_WORDS)
    await client.close()


async def test_caller_asking_for_usage_gets_it(proxy: Proxy, upstream: FakeOpenAI) -> None:
    client = openai.AsyncOpenAI(base_url=proxy.v1, api_key="unused")
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=conversation("Hi"), stream=True,
                                                  stream_options={"include_usage": True})
    usage = [chunk.usage async for chunk in stream if chunk.usage]
    assert len(usage) == 1 and usage[0].completion_tokens == len(DEFAULT_WORDS)
    await client.close()


async def test_non_stream_completion(proxy: Proxy, upstream: FakeOpenAI) -> None:
    client = openai.AsyncOpenAI(base_url=proxy.v1, api_key="unused")
    completion = await client.chat.completions.create(model="gpt-4o-mini", messages=conversation("Hi"))
    assert completion.choices[0].message.content == "".join(DEFAULT_WORDS)
    assert completion.usage is not None and completion.usage.prompt_tokens == 12
    assert upstream.chat_requests[-1].body.get("stream") in (False, None)
    await client.close()


async def test_user_id_becomes_user_and_non_openai_fields_are_removed(proxy: Proxy, upstream: FakeOpenAI,
                                                                     http: aiohttp.ClientSession) -> None:
    body = elevenlabs_body("sess-1", conversation("Hi"), custom_field={"x": 1})
    body["elevenlabs_extra_body"]["secret_hint"] = "do not forward"
    async with http.post(proxy.v1 + "/chat/completions", json=body) as response:
        await response.read()
    sent = upstream.chat_requests[-1].body
    assert sent["user"] == "el-user-42"
    for removed in ("user_id", "elevenlabs_extra_body", "custom_field"):
        assert removed not in sent
    assert sent["temperature"] == 0.5 and sent["max_tokens"] == 300 and sent["model"] == "gpt-4o-mini"
    assert sent["messages"] == conversation("Hi")  # no images for this session: forwarded unchanged
    headers = {k.lower(): v for k, v in upstream.chat_requests[-1].headers.items()}
    assert headers["authorization"] == "Bearer sk-upstream-test-key"


async def test_tools_and_streamed_tool_calls_pass_through(proxy: Proxy, upstream: FakeOpenAI) -> None:
    tools = [{"type": "function", "function": {
        "name": "get_exhibit", "description": "Look up an exhibit",
        "parameters": {"type": "object", "properties": {"room": {"type": "string"}}, "required": ["room"]}}}]
    arguments = json.dumps({"room": "Impressionists, east wing"})
    upstream.default = Behaviour(tool_call={"name": "get_exhibit", "arguments": arguments})
    client = openai.AsyncOpenAI(base_url=proxy.v1, api_key="unused")
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=conversation("Where am I?"),
                                                  tools=tools, tool_choice="auto", stream=True)
    name, pieces, finish = None, [], None
    async for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                name = name or (call.function.name if call.function else None)
                if call.function and call.function.arguments:
                    pieces.append(call.function.arguments)
            finish = choice.finish_reason or finish
    assert name == "get_exhibit" and "".join(pieces) == arguments and finish == "tool_calls"
    assert len(pieces) > 1  # the deltas arrived as separate pieces, not merged
    sent = upstream.chat_requests[-1].body
    assert sent["tools"] == tools and sent["tool_choice"] == "auto"
    await client.close()


async def test_tool_result_turn_is_forwarded_intact(proxy: Proxy, upstream: FakeOpenAI,
                                                    http: aiohttp.ClientSession) -> None:
    messages = conversation("Where am I?") + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_exhibit", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Room 3: Monet"},
    ]
    async with http.post(proxy.v1 + "/chat/completions", json=elevenlabs_body(None, messages)) as response:
        assert response.status == 200
        await response.read()
    assert upstream.last_messages() == messages


async def test_models_are_proxied(proxy: Proxy, upstream: FakeOpenAI) -> None:
    client = openai.AsyncOpenAI(base_url=proxy.v1, api_key="unused")
    models = [m.id async for m in client.models.list()]
    assert models == upstream.models
    await client.close()


async def test_client_disconnect_cancels_the_upstream(proxy: Proxy, upstream: FakeOpenAI,
                                                      http: aiohttp.ClientSession) -> None:
    upstream.default = Behaviour(words=["word "] * 200, chunk_delay=0.05)
    response = await http.post(proxy.v1 + "/chat/completions", json=elevenlabs_body("s", conversation("Talk")))
    await response.content.readline()
    await asyncio.wait_for(upstream.streams_started.wait(), 5)
    response.close()  # the caller hangs up mid-answer
    await asyncio.wait_for(upstream.disconnected.wait(), 2)
    assert upstream.disconnects == 1
    await asyncio.sleep(0.05)
    assert proxy.metrics.registry.get_sample_value("glimpse_active_streams") == 0
