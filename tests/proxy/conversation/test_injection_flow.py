"""Images uploaded for a session reach the upstream in `messages`, by the injection rules of docs/architecture.md."""

from __future__ import annotations

import asyncio
import base64
import io
import json

import aiohttp
import pytest
from PIL import Image

from tests.conftest import Proxy, StartProxy
from tests.fakes.openai_upstream import DEFAULT_WORDS, FakeOpenAI
from tests.helpers import SYSTEM_PROMPT, conversation, elevenlabs_body, image_parts, new_session, parse_sse, upload
from tests.images import jpeg, png
from tests.metrics_scrape import scrape, value


async def chat(http: aiohttp.ClientSession, proxy: Proxy, body: dict) -> bytes:
    async with http.post(proxy.v1 + "/chat/completions", json=body) as response:
        assert response.status == 200, await response.text()
        return await response.read()


def decode_data_url(url: str) -> Image.Image:
    header, _, data = url.partition(",")
    assert header in ("data:image/jpeg;base64", "data:image/png;base64")
    return Image.open(io.BytesIO(base64.b64decode(data)))


async def test_three_message_conversation_with_an_image(proxy: Proxy, upstream: FakeOpenAI,
                                                        http: aiohttp.ClientSession) -> None:
    session = await new_session(http, proxy.url)
    uploaded = await upload(http, proxy.url, session, jpeg(80, 40))
    assert uploaded.status == 201
    messages = conversation("Hello!", "Hi! Show me something.", "What is in my picture?")
    raw = await chat(http, proxy, elevenlabs_body(session, messages))

    sent = upstream.last_messages()
    assert sent[0] == SYSTEM_PROMPT
    assert sent[1]["role"] == "user" and sent[1]["content"][0]["type"] == "text"
    parts = image_parts(sent)
    assert [index for index, _ in parts] == [1]
    image = decode_data_url(parts[0][1]["image_url"]["url"])
    assert image.size == (80, 40)
    assert parts[0][1]["image_url"]["detail"] == "auto"
    assert sent[2:] == messages[1:]  # the caller's messages follow, unchanged and in order

    # the fake's streamed answer reaches the caller chunk for chunk
    payloads = parse_sse(raw)
    words = [json.loads(p)["choices"][0]["delta"].get("content") for p in payloads[1:-2]]
    assert words == DEFAULT_WORDS


async def test_sticky_policy_injects_again_on_later_turns(proxy: Proxy, upstream: FakeOpenAI,
                                                          http: aiohttp.ClientSession) -> None:
    session = await new_session(http, proxy.url)
    await upload(http, proxy.url, session)
    await chat(http, proxy, elevenlabs_body(session, conversation("What is this?")))
    first = image_parts(upstream.last_messages())
    await chat(http, proxy, elevenlabs_body(session, conversation("What is this?", "A bike.", "What colour?")))
    second = image_parts(upstream.last_messages())
    assert len(first) == len(second) == 1
    assert first[0][0] == second[0][0] == 1  # at the same place
    assert first[0][1] == second[0][1]


async def test_once_policy_injects_on_one_turn_only(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                    http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(image_policy="once")
    session = await new_session(http, proxy.url)
    await upload(http, proxy.url, session)
    await chat(http, proxy, elevenlabs_body(session, conversation("What is this?")))
    assert len(image_parts(upstream.last_messages())) == 1
    await chat(http, proxy, elevenlabs_body(session, conversation("What is this?", "A bike.", "What colour?")))
    assert image_parts(upstream.last_messages()) == []


@pytest.mark.parametrize("policy", ["once", "sticky"])
async def test_elevenlabs_retry_of_a_turn_carries_the_same_images(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                                  http: aiohttp.ClientSession, policy: str) -> None:
    """ElevenLabs retries a failed custom-LLM request with the same body: the retry must see the picture."""
    proxy = await start_proxy(image_policy=policy)
    session = await new_session(http, proxy.url)
    await upload(http, proxy.url, session)
    turn = elevenlabs_body(session, conversation("What is this?"))
    await chat(http, proxy, turn)
    first = image_parts(upstream.last_messages())
    await chat(http, proxy, turn)  # the retry
    assert len(first) == 1 and image_parts(upstream.last_messages()) == first
    await chat(http, proxy, elevenlabs_body(session, conversation("What is this?", "A bike.", "Colour?")))
    assert len(image_parts(upstream.last_messages())) == (0 if policy == "once" else 1)


async def test_images_the_caller_sent_pass_through_and_do_not_count(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                                    http: aiohttp.ClientSession) -> None:
    """Image and file parts already in the messages (ElevenLabs' own file input) are forwarded untouched."""
    proxy = await start_proxy(images_per_conversation=1)
    session = await new_session(http, proxy.url)
    own = {"role": "user", "content": [
        {"type": "text", "text": "And this one?"},
        {"type": "image_url", "image_url": {"url": "https://files.example/cat.png", "detail": "low"}},
        {"type": "file", "file": {"file_id": "file-abc123"}}]}
    messages = [*conversation("What is this?"), {"role": "assistant", "content": "A bike."}, own]
    await chat(http, proxy, elevenlabs_body(session, messages))
    assert upstream.last_messages() == messages
    assert (await upload(http, proxy.url, session)).status == 201  # the cap of 1 counts uploads only
    await chat(http, proxy, elevenlabs_body(session, [*messages, {"role": "user", "content": "Now?"}]))
    sent = upstream.last_messages()
    assert sent[4] == own and len(image_parts(sent)) == 2  # after the system prompt and the injected message


async def test_another_session_never_sees_the_image(proxy: Proxy, upstream: FakeOpenAI,
                                                    http: aiohttp.ClientSession) -> None:
    owner, other = await new_session(http, proxy.url), await new_session(http, proxy.url)
    await upload(http, proxy.url, owner)
    await chat(http, proxy, elevenlabs_body(other, conversation("What is this?")))
    assert image_parts(upstream.last_messages()) == []
    await chat(http, proxy, elevenlabs_body(None, conversation("What is this?")))  # no id at all
    assert image_parts(upstream.last_messages()) == []
    await chat(http, proxy, elevenlabs_body(owner, conversation("What is this?")))
    assert len(image_parts(upstream.last_messages())) == 1


@pytest.mark.parametrize("policy", ["once", "sticky"])
async def test_a_session_id_without_its_key_reads_nothing_and_uses_nothing_up(
        start_proxy: StartProxy, upstream: FakeOpenAI, http: aiohttp.ClientSession, policy: str) -> None:
    """A session id is not a read key: whoever learns one (and names it in their own extra body, or sets it as
    their ElevenLabs user id) gets an answer without that conversation's pictures, and the page still gets them."""
    proxy = await start_proxy(image_policy=policy)
    owner, other = await new_session(http, proxy.url), await new_session(http, proxy.url)
    await upload(http, proxy.url, owner)
    forged = [
        elevenlabs_body(owner["session_id"], conversation("What is this?")),  # the id alone
        elevenlabs_body({**owner, "session_key": other["session_key"]}, conversation("What is this?")),
        elevenlabs_body({**owner, "session_key": owner["session_key"][:-1]}, conversation("What is this?")),
        elevenlabs_body(None, conversation("What is this?"), user_id=owner["session_id"]),
        elevenlabs_body(None, conversation("What is this?"),
                        elevenlabs_extra_body={"conversation_id": owner["session_id"], "session_key": 7}),
    ]
    for body in forged:
        await chat(http, proxy, body)
        assert image_parts(upstream.last_messages()) == []
    await chat(http, proxy, elevenlabs_body(owner, conversation("What is this?")))
    assert len(image_parts(upstream.last_messages())) == 1
    assert value(await scrape(http, proxy), "glimpse_unbound_turns_total") == 5


async def test_a_proxy_for_older_pages_reads_by_session_id(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                          http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(require_session_key=False)
    session = await new_session(http, proxy.url)
    await upload(http, proxy.url, session)
    await chat(http, proxy, elevenlabs_body(session["session_id"], conversation("What is this?")))
    assert len(image_parts(upstream.last_messages())) == 1


async def test_several_images_in_upload_order(proxy: Proxy, upstream: FakeOpenAI,
                                              http: aiohttp.ClientSession) -> None:
    session = await new_session(http, proxy.url)
    for width in (30, 40, 50):
        assert (await upload(http, proxy.url, session, jpeg(width, 20))).status == 201
    await chat(http, proxy, elevenlabs_body(session, conversation("Compare them")))
    sent = upstream.last_messages()
    parts = image_parts(sent)
    assert [decode_data_url(p["image_url"]["url"]).size[0] for _, p in parts] == [30, 40, 50]
    assert "3 images" in sent[1]["content"][0]["text"]


async def test_staged_image_waits_for_ready(proxy: Proxy, upstream: FakeOpenAI,
                                            http: aiohttp.ClientSession) -> None:
    session = await new_session(http, proxy.url)
    uploaded = await upload(http, proxy.url, session, ready=False)
    assert (await uploaded.json())["status"] == "staged"
    await chat(http, proxy, elevenlabs_body(session, conversation("Anything?")))
    assert image_parts(upstream.last_messages()) == []
    async with http.post(proxy.url + "/signal_image_ready", json={"session_id": session["session_id"]},
                         headers={"X-Upload-Token": session["upload_token"]}) as response:
        assert response.status == 200 and (await response.json())["pending"] == 1
    await chat(http, proxy, elevenlabs_body(session, conversation("Anything?", "No.", "Now?")))
    assert len(image_parts(upstream.last_messages())) == 1


async def test_pending_image_waits_for_a_user_turn(proxy: Proxy, upstream: FakeOpenAI,
                                                   http: aiohttp.ClientSession) -> None:
    session = await new_session(http, proxy.url)
    await upload(http, proxy.url, session)
    tool_turn = conversation("Where?") + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "where", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Room 3"}]
    await chat(http, proxy, elevenlabs_body(session, tool_turn))
    assert image_parts(upstream.last_messages()) == []
    await chat(http, proxy, elevenlabs_body(session, conversation("Where?", "Room 3.", "And this?")))
    assert len(image_parts(upstream.last_messages())) == 1


async def test_url_delivery_sends_a_signed_fetchable_url(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                        http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(image_delivery="url", image_detail="low")
    session = await new_session(http, proxy.url)
    await upload(http, proxy.url, session, png(20, 20, alpha=True), filename="x.png", content_type="image/png")
    await chat(http, proxy, elevenlabs_body(session, conversation("What is this?")))
    part = image_parts(upstream.last_messages())[0][1]["image_url"]
    assert part["detail"] == "low"
    assert part["url"].startswith(proxy.url + "/v1/images/") and "sig=" in part["url"] and "expires=" in part["url"]
    async with http.get(part["url"]) as response:  # what the upstream would do
        assert response.status == 200 and response.headers["Content-Type"] == "image/png"
        assert Image.open(io.BytesIO(await response.read())).size == (20, 20)


async def test_the_prompt_prefix_stays_the_same_turn_after_turn(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                                 http: aiohttp.ClientSession) -> None:
    """A new turn only appends: the system prompt and the image message are byte-identical to the last turn's (the
    same signed URL, not a fresh signature), so the upstream's prompt cache keeps hitting."""
    proxy = await start_proxy(image_delivery="url")
    session = await new_session(http, proxy.url)
    await upload(http, proxy.url, session)
    await chat(http, proxy, elevenlabs_body(session, conversation("What is this?")))
    first = upstream.last_messages()
    await asyncio.sleep(1.1)  # a signature made now would carry a later expiry
    await chat(http, proxy, elevenlabs_body(session, conversation("What is this?", "A cup.", "Color?")))
    second = upstream.last_messages()
    assert second[:len(first)] == first and len(second) == len(first) + 2


async def test_conversation_id_from_extra_body_conversation_id_and_dynamic_variable(
        proxy: Proxy, upstream: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    session = await new_session(http, proxy.url)
    await upload(http, proxy.url, session)
    sid, key = session["session_id"], session["session_key"]
    body = elevenlabs_body(None, conversation("What is this?"),
                           elevenlabs_extra_body={"conversation_id": sid, "session_key": key})
    await chat(http, proxy, body)
    assert len(image_parts(upstream.last_messages())) == 1
    body = elevenlabs_body(None, conversation("And now?"), elevenlabs_extra_body={
        "dynamic_variables": {"system__conversation_id": sid}, "session_key": key})
    await chat(http, proxy, body)
    assert len(image_parts(upstream.last_messages())) == 1
