"""The fake upstreams refuse and accept as the real services do (`tests/fakes/provider_rules.py` cites each rule),
seen through the real `openai` SDK, the client the proxy itself uses."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes.gemini_upstream import DEFAULT_KEY, FakeGemini, GeminiBehaviour
from tests.fakes.openai_upstream import DEFAULT_WORDS, Behaviour, FakeOpenAI
from tests.images import jpeg

HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]


@pytest.fixture
async def to_openai(upstream: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=upstream.base_url, api_key="sk-test", max_retries=0)
    yield client
    await client.close()


@pytest.fixture
async def to_gemini(gemini: FakeGemini) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=gemini.base_url, api_key=DEFAULT_KEY, max_retries=0)
    yield client
    await client.close()


async def streamed_text(client: openai.AsyncOpenAI, **request: Any) -> str:
    stream = await client.chat.completions.create(stream=True, **{"messages": HI, **request})
    return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])


# OpenAI ------------------------------------------------------------------------------------------------------------

MAX_TOKENS = ("Unsupported parameter: 'max_tokens' is not supported with this model. "
              "Use 'max_completion_tokens' instead.")


async def test_a_reasoning_model_refuses_max_tokens_as_openai_does(to_openai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await to_openai.chat.completions.create(model="gpt-5-mini", messages=HI, max_tokens=300, stream=True)
    error = refused.value
    assert error.status_code == 400 and error.code == "unsupported_parameter" and error.param == "max_tokens"
    assert error.body == {"message": MAX_TOKENS, "type": "invalid_request_error", "param": "max_tokens",
                          "code": "unsupported_parameter"}


async def test_a_reasoning_model_streams_with_max_completion_tokens_and_an_effort(
        to_openai: openai.AsyncOpenAI) -> None:
    text = await streamed_text(to_openai, model="gpt-5-mini", max_completion_tokens=300, reasoning_effort="low",
                               prompt_cache_key="glimpse-abc")
    assert text == "".join(DEFAULT_WORDS)


async def test_a_chat_model_takes_max_tokens_and_any_temperature(to_openai: openai.AsyncOpenAI) -> None:
    for model in ("gpt-4o-mini", "gpt-4.1", "gpt-5-chat-latest"):
        assert await streamed_text(to_openai, model=model, max_tokens=300, temperature=0.5, top_p=0.9,
                                   presence_penalty=0.5, logprobs=True) == "".join(DEFAULT_WORDS)


@pytest.mark.parametrize(("model", "fields", "code", "message"), [
    ("gpt-5", {"temperature": 0.5}, "unsupported_value",
     "Unsupported value: 'temperature' does not support 0.5 with this model. Only the default (1) value is supported."),
    ("o3-mini", {"temperature": 0}, "unsupported_value",
     "Unsupported value: 'temperature' does not support 0 with this model. Only the default (1) value is supported."),
    ("o1", {"max_tokens": 5}, "unsupported_parameter", MAX_TOKENS),
    ("gpt-5-nano-2025-08-07", {"top_p": 0.9}, "unsupported_parameter",
     "Unsupported parameter: 'top_p' is not supported with this model."),
    ("gpt-5-mini", {"presence_penalty": 0.5}, "unsupported_parameter",
     "Unsupported parameter: 'presence_penalty' is not supported with this model."),
    ("gpt-5-mini", {"frequency_penalty": -1}, "unsupported_parameter",
     "Unsupported parameter: 'frequency_penalty' is not supported with this model."),
    ("gpt-5", {"logprobs": True}, "unsupported_parameter",
     "Unsupported parameter: 'logprobs' is not supported with this model."),
    ("gpt-5.1", {"logit_bias": {"1": 5}, "reasoning_effort": "none"}, "unsupported_parameter",
     "Unsupported parameter: 'logit_bias' is not supported with this model."),
    ("o4-mini", {"parallel_tool_calls": False}, "unsupported_parameter",
     "Unsupported parameter: 'parallel_tool_calls' is not supported with this model."),
    ("gpt-5-mini", {"reasoning_effort": "none"}, "unsupported_value",
     "Unsupported value: 'reasoning_effort' does not support 'none' with this model. Supported values are: "
     "'minimal', 'low', 'medium', and 'high'."),
    ("gpt-5.1", {"reasoning_effort": "minimal"}, "unsupported_value",
     "Unsupported value: 'reasoning_effort' does not support 'minimal' with this model. Supported values are: "
     "'none', 'low', 'medium', and 'high'."),
    ("gpt-5.1", {"temperature": 0.2, "reasoning_effort": "low"}, "unsupported_value",
     "Unsupported value: 'temperature' does not support 0.2 with this model. Only the default (1) value is supported."),
    ("o3", {"reasoning_effort": "minimal"}, "unsupported_value",
     "Unsupported value: 'reasoning_effort' does not support 'minimal' with this model. Supported values are: "
     "'low', 'medium', and 'high'."),
])
async def test_reasoning_models_refuse_what_openai_refuses(to_openai: openai.AsyncOpenAI, model: str,
                                                           fields: dict[str, Any], code: str, message: str) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await to_openai.chat.completions.create(model=model, messages=HI, **fields)
    assert (refused.value.code, refused.value.message.split(" - ", 1)[0]) == (code, "Error code: 400")
    assert refused.value.body == {"message": message, "type": "invalid_request_error",
                                  "param": message.split("'")[1], "code": code}


@pytest.mark.parametrize(("model", "fields"), [
    ("gpt-5-mini", {"temperature": 1, "top_p": 1, "presence_penalty": 0, "frequency_penalty": 0}),  # the defaults
    ("gpt-5-mini", {"reasoning_effort": "minimal", "max_completion_tokens": 64}),
    ("gpt-5.1", {"temperature": 0.2, "top_p": 0.5, "logprobs": True}),  # gpt-5.1 defaults to effort "none"
    ("gpt-5.2", {"temperature": 0.2, "reasoning_effort": "none"}),
    ("gpt-5.2", {"reasoning_effort": "xhigh"}),
    ("o4-mini", {"reasoning_effort": "high", "max_completion_tokens": 64}),
    ("gpt-4o", {"parallel_tool_calls": True, "logit_bias": {"1": 5}}),
])
async def test_reasoning_models_take_what_openai_takes(to_openai: openai.AsyncOpenAI, model: str,
                                                       fields: dict[str, Any]) -> None:
    completion = await to_openai.chat.completions.create(model=model, messages=HI, **fields)
    assert completion.choices[0].message.content == "".join(DEFAULT_WORDS)


async def test_a_chat_model_does_not_know_reasoning_effort(to_openai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await to_openai.chat.completions.create(model="gpt-4o-mini", messages=HI, reasoning_effort="low")
    assert refused.value.body == {"message": "Unrecognized request argument supplied: reasoning_effort",
                                  "type": "invalid_request_error", "param": None, "code": None}


# Gemini ------------------------------------------------------------------------------------------------------------

def image_turn(url: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                         {"type": "image_url", "image_url": {"url": url}}]}]


def google_error(error: openai.APIStatusError) -> dict[str, Any]:
    assert isinstance(error.body, list) and len(error.body) == 1  # the compat endpoint wraps it in an array
    body: dict[str, Any] = error.body[0]["error"]
    return body


async def test_gemini_refuses_a_remote_image(to_gemini: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await to_gemini.chat.completions.create(model="gemini-2.5-flash", stream=True,
                                                messages=image_turn("https://example.com/bicycle.jpg"))
    error = google_error(refused.value)
    assert error == {"code": 400, "message": "Request contains an invalid argument.", "status": "INVALID_ARGUMENT"}


async def test_gemini_streams_an_inline_image_as_gemini_streams(gemini: FakeGemini) -> None:
    data_url = "data:image/jpeg;base64," + base64.b64encode(jpeg()).decode()
    body = {"model": "gemini-2.5-flash", "messages": image_turn(data_url), "stream": True,
            "stream_options": {"include_usage": True}}
    async with aiohttp.ClientSession() as http, http.post(
            gemini.base_url + "chat/completions", json=body,
            headers={"Authorization": f"Bearer {DEFAULT_KEY}"}) as response:
        assert response.status == 200 and response.content_type == "text/event-stream"
        raw = await response.read()
    events = raw.decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-2]]
    assert len(chunks) == len(DEFAULT_WORDS)  # no role-only first chunk, no separate usage chunk
    assert all(c["choices"][0]["delta"]["role"] == "assistant" for c in chunks)
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "".join(DEFAULT_WORDS)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and "finish_reason" not in chunks[0]["choices"][0]
    assert "usage" in chunks[-1] and all("usage" not in c for c in chunks[:-1])
    first = chunks[0]
    assert first["model"] == "gemini-2.5-flash" and first["object"] == "chat.completion.chunk"
    assert len(first["id"]) == 23 and not first["id"].startswith("chatcmpl")
    assert "system_fingerprint" not in first and list(first) == sorted(first)
    assert events[0].startswith('data: {"choices":[{"delta":{"content":"The ","role":"assistant"},"index":0}]')


async def test_the_openai_sdk_reads_gemini_streams(to_gemini: openai.AsyncOpenAI) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    text = await streamed_text(to_gemini, model="gemini-2.5-flash", messages=image_turn(data_url), max_tokens=300,
                               temperature=0.5, user="el-user-42", reasoning_effort="low",
                               extra_body={"extra_body": {"google": {"thinking_config": {"include_thoughts": True}}}})
    assert text == "".join(DEFAULT_WORDS)


@pytest.mark.parametrize("fields", [{"store": False}, {"metadata": {"a": "b"}}, {"prompt_cache_key": "glimpse-1"},
                                    {"extra_body": {"google": {}}}])
async def test_gemini_refuses_fields_it_has_no_name_for(to_gemini: openai.AsyncOpenAI, fields: dict[str, Any]) -> None:
    name = next(iter(fields))
    if name == "extra_body":
        name, fields = "google", {"extra_body": fields["extra_body"]}  # the SDK merges extra_body into the body
    with pytest.raises(openai.BadRequestError) as refused:
        await to_gemini.chat.completions.create(model="gemini-2.5-flash", messages=HI, **fields)
    description = f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.'
    assert google_error(refused.value) == {
        "code": 400, "message": description, "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                     "fieldViolations": [{"description": description}]}]}


async def test_gemini_names_every_unknown_field(to_gemini: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await to_gemini.chat.completions.create(model="gemini-2.5-flash", messages=HI, metadata={"a": "b"},
                                                store=True)
    assert google_error(refused.value)["message"].splitlines() == [
        'Invalid JSON payload received. Unknown name "metadata": Cannot find field.',
        'Invalid JSON payload received. Unknown name "store": Cannot find field.']


async def test_gemini_has_no_responses_api(to_gemini: openai.AsyncOpenAI, gemini: FakeGemini) -> None:
    with pytest.raises(openai.NotFoundError):
        await to_gemini.responses.create(model="gemini-2.5-flash", input="Hi")
    assert gemini.requests[-1].path == "/v1beta/openai/responses"


async def test_gemini_checks_the_key(gemini: FakeGemini) -> None:
    wrong = openai.AsyncOpenAI(base_url=gemini.base_url, api_key="AIza-wrong", max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        await wrong.chat.completions.create(model="gemini-2.5-flash", messages=HI)
    await wrong.close()
    error = google_error(refused.value)
    assert error["message"] == "API key not valid. Please pass a valid API key."
    assert error["details"][0]["reason"] == "API_KEY_INVALID"
    async with aiohttp.ClientSession() as http, http.post(gemini.base_url + "chat/completions",
                                                          json={"model": "gemini-2.5-flash", "messages": HI}) as none:
        assert none.status == 403 and json.loads(await none.read())[0]["error"]["status"] == "PERMISSION_DENIED"


async def test_gemini_lists_its_models_and_refuses_others(to_gemini: openai.AsyncOpenAI) -> None:
    models = [m.id async for m in to_gemini.models.list()]
    assert "models/gemini-2.5-flash" in models
    assert await streamed_text(to_gemini, model="models/gemini-2.5-flash") == "".join(DEFAULT_WORDS)
    with pytest.raises(openai.NotFoundError) as refused:
        await to_gemini.chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert google_error(refused.value)["status"] == "NOT_FOUND"


@pytest.mark.parametrize(("status", "error_type", "google_status"), [
    (429, openai.RateLimitError, "RESOURCE_EXHAUSTED"), (503, openai.InternalServerError, "UNAVAILABLE"),
    (500, openai.InternalServerError, "INTERNAL")])
async def test_gemini_fails_with_googles_bodies(gemini: FakeGemini, to_gemini: openai.AsyncOpenAI, status: int,
                                                error_type: type[openai.APIStatusError], google_status: str) -> None:
    gemini.next.append(Behaviour(status=status, retry_after="7"))
    with pytest.raises(error_type) as failed:
        await to_gemini.chat.completions.create(model="gemini-2.5-flash", messages=HI, stream=True)
    error = google_error(failed.value)
    assert (error["code"], error["status"]) == (status, google_status)
    if status == 429:
        assert error["details"][-1] == {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}


async def test_gemini_gives_up_mid_stream_with_a_bare_error(gemini: FakeGemini) -> None:
    gemini.next.append(GeminiBehaviour(error_after=2))
    async with aiohttp.ClientSession() as http, http.post(
            gemini.base_url + "chat/completions", headers={"Authorization": f"Bearer {DEFAULT_KEY}"},
            json={"model": "gemini-2.5-flash", "messages": HI, "stream": True}) as response:
        raw = (await response.read()).decode()
    head, tail = raw.rsplit("\n\n", 1)
    assert len(head.split("\n\n")) == 2 and tail.startswith('[{\n  "error": {\n    "code": 503,')
    assert json.loads(tail)[0]["error"]["status"] == "UNAVAILABLE" and "[DONE]" not in raw


async def test_gemini_drops_and_delays_like_the_upstream(gemini: FakeGemini, to_gemini: openai.AsyncOpenAI) -> None:
    gemini.next.append(Behaviour(drop_after=2))
    with pytest.raises(openai.APIConnectionError):
        await streamed_text(to_gemini, model="gemini-2.5-flash")
    gemini.next.append(Behaviour(tool_call={"name": "look", "arguments": '{"what": "bicycle"}'}))
    stream = await to_gemini.chat.completions.create(model="gemini-2.5-flash", messages=HI, stream=True)
    chunks = [chunk async for chunk in stream]
    assert len(chunks) == 1 and chunks[0].choices[0].finish_reason == "tool_calls"
    call = chunks[0].choices[0].delta.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "look" and call.id.startswith("function-call-")  # type: ignore[union-attr]
    assert len(gemini.chat_requests) == 2
