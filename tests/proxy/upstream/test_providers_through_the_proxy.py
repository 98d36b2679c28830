"""Each provider's rules, end to end: an ElevenLabs-shaped turn through the proxy to fakes that refuse what the real
services refuse (tests/fakes/provider_rules.py) — without the adapters these turns are 400s."""

from __future__ import annotations

import aiohttp

from tests.conftest import StartProxy
from tests.fakes.gemini_upstream import DEFAULT_KEY, FakeGemini
from tests.fakes.openai_upstream import Behaviour, FakeOpenAI
from tests.helpers import contents, conversation, elevenlabs_body, image_parts, new_session, parse_sse, upload


async def test_a_reasoning_model_on_openai_takes_elevenlabs_turns(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                                  http: aiohttp.ClientSession) -> None:
    """ElevenLabs sends max_tokens and temperature every turn; gpt-5-mini answers 400 to both."""
    proxy = await start_proxy(upstream_provider="openai")
    body = elevenlabs_body("sess-r", conversation("Hello?"), model="gpt-5-mini")
    async with http.post(proxy.v1 + "/chat/completions", json=body) as response:
        raw = await response.read()
        assert response.status == 200, raw
    assert contents(parse_sse(raw))
    sent = upstream.chat_requests[-1].body
    assert sent["max_completion_tokens"] == 300 and "max_tokens" not in sent and "temperature" not in sent
    assert sent["reasoning_effort"] == "low" and sent["prompt_cache_key"].startswith("glimpse-")


async def test_a_gemini_fallback_gets_inline_images_and_only_its_fields(
        start_proxy: StartProxy, upstream: FakeOpenAI, gemini: FakeGemini, http: aiohttp.ClientSession) -> None:
    """The primary is down; Gemini takes the turn. Images went to the primary as signed URLs (delivery url), but
    Gemini fetches none: it gets the same images as data: URLs, and no field it refuses (store, prompt_cache_key)."""
    proxy = await start_proxy(image_delivery="url", upstreams=[
        {"name": "openai", "base_url": upstream.base_url, "api_key": "sk-o", "provider": "openai"},
        {"name": "gemini", "base_url": gemini.base_url, "api_key": DEFAULT_KEY, "provider": "gemini",
         "model": "gemini-2.5-flash"}])
    session = await new_session(http, proxy.url)
    await upload(http, proxy.url, session)
    upstream.next.append(Behaviour(status=503))
    body = elevenlabs_body(session, conversation("What is this?"), store=True)
    async with http.post(proxy.v1 + "/chat/completions", json=body) as response:
        raw = await response.read()
        assert response.status == 200, raw
        assert response.headers["X-Glimpse-Upstream"] == "gemini"
    assert contents(parse_sse(raw))
    to_openai = image_parts(upstream.last_messages())[0][1]["image_url"]["url"]
    to_gemini = image_parts(gemini.last_messages())[0][1]["image_url"]["url"]
    assert to_openai.startswith(proxy.url) and to_gemini.startswith("data:image/")
    sent = gemini.chat_requests[-1].body
    assert sent["model"] == "gemini-2.5-flash" and {"store", "prompt_cache_key"}.isdisjoint(sent)


async def test_the_responses_api_skips_gemini_for_an_upstream_that_has_it(
        start_proxy: StartProxy, upstream: FakeOpenAI, gemini: FakeGemini, http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(upstreams=[
        {"name": "gemini", "base_url": gemini.base_url, "api_key": DEFAULT_KEY, "provider": "gemini"},
        {"name": "openai", "base_url": upstream.base_url, "api_key": "sk-o"}])
    body = {"model": "gpt-4o-mini", "input": "Hello?", "stream": True}
    async with http.post(proxy.v1 + "/responses", json=body) as response:
        await response.read()
        assert response.status == 200 and response.headers["X-Glimpse-Upstream"] == "openai"
    assert not gemini.requests  # known to have no Responses API: never called
    alone = await start_proxy(upstreams=[{"name": "gemini", "base_url": gemini.base_url, "api_key": DEFAULT_KEY,
                                          "provider": "gemini"}])
    async with http.post(alone.v1 + "/responses", json=body) as response:
        assert response.status == 501
