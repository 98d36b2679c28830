"""POST /v1/responses: what ElevenLabs calls when the agent's custom LLM `api_type` is `responses`. The same
auth, conversation lookup and injection as Chat Completions, relayed as the Responses API's own SSE."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web

from tests.conftest import Proxy, StartProxy
from tests.fakes.loopback import serve_app
from tests.fakes.openai_upstream import DEFAULT_WORDS, Behaviour, FakeOpenAI
from tests.helpers import END_CALL, SYSTEM_PROMPT, new_session, parse_events, responses_body, upload


def input_images(items: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    return [(index, part) for index, item in enumerate(items) if isinstance(item.get("content"), list)
            for part in item["content"] if part.get("type") == "input_image"]


async def post(http: aiohttp.ClientSession, proxy: Proxy, body: dict[str, Any],
               headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    async with http.post(proxy.v1 + "/responses", json=body, headers=headers) as response:
        return response.status, await response.read()


async def test_stream_with_the_image_injected(proxy: Proxy, upstream: FakeOpenAI,
                                              http: aiohttp.ClientSession) -> None:
    session = await new_session(http, proxy.url)
    await upload(http, proxy.url, session)
    status, raw = await post(http, proxy, responses_body(session, "What am I showing you?"))
    assert status == 200
    sent = upstream.response_requests[-1].body
    assert "elevenlabs_extra_body" not in sent and "user_id" not in sent and sent["user"] == "el-user-42"
    assert sent["tools"] == [END_CALL] and sent["stream"] is True
    images = input_images(sent["input"])
    assert len(images) == 1 and images[0][0] == 1  # right after the system item
    assert images[0][1]["image_url"].startswith("data:image/jpeg;base64,") and images[0][1]["detail"] == "auto"
    assert sent["input"][1]["content"][0]["type"] == "input_text"
    assert sent["input"][0] == SYSTEM_PROMPT and sent["input"][2]["content"] == "What am I showing you?"
    events = parse_events(raw)
    names = [name for name, _ in events]
    assert names[0] == "response.created" and names[-1] == "response.completed"
    assert "".join(e["delta"] for name, e in events if name == "response.output_text.delta") == "".join(DEFAULT_WORDS)
    assert [e["sequence_number"] for _, e in events] == list(range(len(events)))


async def test_the_openai_sdk_reads_the_relayed_stream(proxy: Proxy, upstream: FakeOpenAI) -> None:
    client = openai.AsyncOpenAI(base_url=proxy.v1, api_key="unused")
    stream = await client.responses.create(model="gpt-4o-mini", input="Hi", stream=True)
    text = "".join([event.delta async for event in stream if event.type == "response.output_text.delta"])
    assert text == "".join(DEFAULT_WORDS)
    assert upstream.last_input() == [{"role": "user", "content": "Hi"}]
    await client.close()


async def test_function_calls_pass_through(proxy: Proxy, upstream: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    upstream.default = Behaviour(tool_call={"name": "end_call", "arguments": '{"reason": "the user said goodbye"}'})
    status, raw = await post(http, proxy, responses_body({"session_id": "sess-1", "session_key": "none"}, "Bye!"))
    assert status == 200
    events = parse_events(raw)
    arguments = "".join(e["delta"] for name, e in events if name == "response.function_call_arguments.delta")
    assert json.loads(arguments) == {"reason": "the user said goodbye"}
    done = [e["item"] for name, e in events if name == "response.output_item.done"]
    assert done[0]["type"] == "function_call" and done[0]["name"] == "end_call"


async def test_not_streamed(proxy: Proxy, upstream: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    status, raw = await post(http, proxy, responses_body(None, "Hello", stream=False))
    assert status == 200
    body = json.loads(raw)
    assert body["object"] == "response" and body["status"] == "completed"
    assert body["output"][0]["content"][0]["text"] == "".join(DEFAULT_WORDS)


@pytest.mark.parametrize("policy", ["once", "sticky"])
async def test_policies_and_elevenlabs_retries(start_proxy: StartProxy, upstream: FakeOpenAI,
                                               http: aiohttp.ClientSession, policy: str) -> None:
    proxy = await start_proxy(image_policy=policy)
    session = await new_session(http, proxy.url)
    await upload(http, proxy.url, session)
    turn = responses_body(session, "What is this?")
    await post(http, proxy, turn)
    first = input_images(upstream.last_input())
    await post(http, proxy, turn)  # ElevenLabs' retry of the same turn
    assert len(first) == 1 and input_images(upstream.last_input()) == first
    await post(http, proxy, responses_body(session, "What is this?", "A bike.", "Colour?"))
    assert len(input_images(upstream.last_input())) == (0 if policy == "once" else 1)


async def test_bearer_key_required_when_set(start_proxy: StartProxy, upstream: FakeOpenAI,
                                            http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(custom_llm_key="cllm-secret-key")
    status, raw = await post(http, proxy, responses_body(None, "Hi"))
    assert status == 401 and json.loads(raw)["error"]["type"] == "authentication_error"
    status, _ = await post(http, proxy, responses_body(None, "Hi"), {"Authorization": "Bearer cllm-secret-key"})
    assert status == 200 and len(upstream.response_requests) == 1


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "gpt-4o-mini"}, "input"),
    ({"model": "gpt-4o-mini", "input": []}, "input"),
    ({"model": "gpt-4o-mini", "input": ["text"]}, "input[0]"),
    ({"model": "gpt-4o-mini", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"model": 7, "input": "hi"}, "model"),
])
async def test_bad_requests_are_400_and_not_forwarded(proxy: Proxy, upstream: FakeOpenAI,
                                                      http: aiohttp.ClientSession, body: dict[str, Any],
                                                      param: str) -> None:
    status, raw = await post(http, proxy, body)
    assert status == 400 and json.loads(raw)["error"]["param"] == param
    assert upstream.response_requests == []


async def test_upstream_errors_keep_openais_shape(proxy: Proxy, upstream: FakeOpenAI,
                                                  http: aiohttp.ClientSession) -> None:
    upstream.next.append(Behaviour(status=429, retry_after="3"))
    async with http.post(proxy.v1 + "/responses", json=responses_body(None, "Hi")) as response:
        assert response.status == 429 and response.headers["Retry-After"] == "3"
        error = (await response.json())["error"]
    assert error["type"] == "rate_limit_error" and "rate limiting" in error["message"]


async def test_a_drop_after_the_first_token_is_an_error_event(proxy: Proxy, upstream: FakeOpenAI,
                                                              http: aiohttp.ClientSession) -> None:
    upstream.default = Behaviour(drop_after=2)
    status, raw = await post(http, proxy, responses_body(None, "Hi"))
    assert status == 200
    events = parse_events(raw)
    name, error = events[-1]
    assert name == "error" and error["code"] == "stream_interrupted" and error["param"] is None
    assert error["sequence_number"] == events[-2][1]["sequence_number"] + 1
    assert "response.completed" not in [n for n, _ in events]


async def test_gemini_has_no_responses_api(start_proxy: StartProxy, http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(upstream_base_url="https://generativelanguage.googleapis.com/v1beta/openai/")
    status, raw = await post(http, proxy, responses_body(None, "Hi"))
    error = json.loads(raw)["error"]
    assert status == 501 and "Chat Completions" in error["message"] and "apiType" in error["message"]


async def test_an_upstream_without_the_route_is_named_clearly(start_proxy: StartProxy,
                                                              http: aiohttp.ClientSession) -> None:
    async def completions(request: web.Request) -> web.Response:
        return web.json_response({})

    chat_only = web.Application()  # an OpenAI-compatible server that serves Chat Completions only
    chat_only.router.add_post("/v1/chat/completions", completions)
    runner, port = await serve_app(chat_only)
    try:
        proxy = await start_proxy(upstream_base_url=f"http://127.0.0.1:{port}/v1")
        status, raw = await post(http, proxy, responses_body(None, "Hi"))
    finally:
        await runner.cleanup()
    assert status == 501 and "GLIMPSE_UPSTREAM_BASE_URL" in json.loads(raw)["error"]["message"]


async def test_tokens_and_ttft_are_counted(proxy: Proxy, upstream: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    await post(http, proxy, responses_body(None, "Hi"))
    sample = proxy.metrics.registry.get_sample_value
    assert sample("glimpse_tokens_total", {"model": "gpt-4o-mini", "kind": "completion"}) == len(DEFAULT_WORDS)
    assert (sample("glimpse_tokens_total", {"model": "gpt-4o-mini", "kind": "prompt"}) or 0) > 0
    assert (sample("glimpse_time_to_first_token_seconds_sum", {"model": "gpt-4o-mini"}) or 0) > 0
