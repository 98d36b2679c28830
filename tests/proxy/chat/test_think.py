"""Reasoning models that write `<think>…</think>` into `content` (GLIMPSE_STRIP_THINK_MODELS): the caller, who speaks
`content`, never gets the reasoning, however the tags are split across chunks; other models' answers pass untouched."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.conftest import Proxy, StartProxy
from tests.fakes.openai_upstream import Behaviour, FakeOpenAI
from tests.helpers import contents, conversation, elevenlabs_body, parse_events, parse_sse, responses_body

THINKING = ["<thi", "nk>The user", " asks about a <b>ike", ". Hmm.</th", "ink>", "\n\n", "It is a ", "red bicycle <3",
            "."]


async def ask(proxy: Proxy, http: aiohttp.ClientSession, model: str, *, stream: bool = True) -> Any:
    body = elevenlabs_body("sess-1", conversation("What is this?"), model=model, stream=stream)
    async with http.post(proxy.v1 + "/chat/completions", json=body) as response:
        assert response.status == 200
        return await response.read() if stream else await response.json()


@pytest.mark.parametrize("model", ["deepseek-r1-distill-qwen-7b", "Qwen/Qwen3-32B", "qwq:32b"])
async def test_a_known_reasoning_models_think_block_is_not_spoken(proxy: Proxy, upstream: FakeOpenAI,
                                                                   http: aiohttp.ClientSession, model: str) -> None:
    upstream.default = Behaviour(words=THINKING)
    payloads = parse_sse(await ask(proxy, http, model))
    assert contents(payloads) == "It is a red bicycle <3."
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"  # every chunk still relayed, in order
    assert all(c["model"] == model for c in chunks)


async def test_every_split_of_the_tags_is_caught(proxy: Proxy, upstream: FakeOpenAI,
                                                 http: aiohttp.ClientSession) -> None:
    text = "<think>a < b, so</think> Yes: a<b. <think>again</think>Done."
    for size in (1, 2, 3, 5, 8):
        upstream.next.append(Behaviour(words=[text[i:i + size] for i in range(0, len(text), size)]))
        assert contents(parse_sse(await ask(proxy, http, "deepseek-r1"))) == "Yes: a<b. Done.", size


async def test_a_trailing_lone_bracket_is_not_lost(proxy: Proxy, upstream: FakeOpenAI,
                                                   http: aiohttp.ClientSession) -> None:
    upstream.default = Behaviour(words=["<think>x</think>", "I love you <"])
    assert contents(parse_sse(await ask(proxy, http, "deepseek-r1"))) == "I love you <"


async def test_a_non_streamed_answer_is_stripped_too(proxy: Proxy, upstream: FakeOpenAI,
                                                     http: aiohttp.ClientSession) -> None:
    upstream.default = Behaviour(words=THINKING)
    answer = await ask(proxy, http, "deepseek-r1", stream=False)
    assert answer["choices"][0]["message"]["content"] == "It is a red bicycle <3."


async def test_other_models_are_relayed_untouched(proxy: Proxy, upstream: FakeOpenAI,
                                                  http: aiohttp.ClientSession) -> None:
    upstream.default = Behaviour(words=THINKING)
    assert contents(parse_sse(await ask(proxy, http, "gpt-4o-mini"))) == "".join(THINKING)


async def test_the_model_list_is_a_setting(start_proxy: StartProxy, upstream: FakeOpenAI,
                                           http: aiohttp.ClientSession) -> None:
    upstream.default = Behaviour(words=THINKING)
    proxy = await start_proxy(strip_think_models="my-*")
    assert contents(parse_sse(await ask(proxy, http, "My-Reasoner"))) == "It is a red bicycle <3."
    assert contents(parse_sse(await ask(proxy, http, "deepseek-r1"))) == "".join(THINKING)


async def test_a_responses_stream_is_stripped_deltas_and_finished_texts(proxy: Proxy, upstream: FakeOpenAI,
                                                                        http: aiohttp.ClientSession) -> None:
    upstream.default = Behaviour(words=THINKING)
    async with http.post(proxy.v1 + "/responses",
                         json=responses_body(None, "What is this?", model="deepseek-r1")) as response:
        assert response.status == 200
        events = parse_events(await response.read())
    answer = "It is a red bicycle <3."
    assert "".join(e["delta"] for name, e in events if name == "response.output_text.delta") == answer
    by_name = {name: event for name, event in events}
    assert by_name["response.output_text.done"]["text"] == answer
    assert by_name["response.content_part.done"]["part"]["text"] == answer
    assert by_name["response.output_item.done"]["item"]["content"][0]["text"] == answer
    assert by_name["response.completed"]["response"]["output"][0]["content"][0]["text"] == answer
    assert [e["sequence_number"] for _, e in events] == list(range(len(events)))  # no event added or lost


async def test_a_non_streamed_response_is_stripped(proxy: Proxy, upstream: FakeOpenAI,
                                                   http: aiohttp.ClientSession) -> None:
    upstream.default = Behaviour(words=THINKING)
    async with http.post(proxy.v1 + "/responses",
                         json=responses_body(None, "What is this?", model="Qwen3-8B", stream=False)) as response:
        assert response.status == 200
        answer = await response.json()
    assert answer["output"][0]["content"][0]["text"] == "It is a red bicycle <3."
