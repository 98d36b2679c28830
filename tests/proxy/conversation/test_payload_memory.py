"""The turns' payload memory (`conversation/payload_memory.py`): reserved before a request with inline pictures is
built, waited for briefly, refused with a 503 past the wait, never more than the budget held."""

from __future__ import annotations

import asyncio
import base64

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter

from glimpse.conversation.injection import _DataUrlCache
from glimpse.conversation.payload_memory import PAYLOAD_COPIES, TurnPayloadMemory, data_url_bytes, payload_bytes
from glimpse.conversation.store import StoredImage
from glimpse.errors import Unavailable
from glimpse.resources import INJECTOR
from tests.conftest import StartProxy
from tests.fakes.gemini_upstream import DEFAULT_KEY as GEMINI_KEY
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import Behaviour, FakeOpenAI
from tests.helpers import conversation, elevenlabs_body, image_parts, new_session, upload
from tests.images import jpeg


def image(size: int, key: str = "k") -> StoredImage:
    return StoredImage(image_id=key, key=key, content_type="image/jpeg", width=1, height=1, size=size, created_at=0)


def memory(budget: int, wait: float = 0.2) -> tuple[TurnPayloadMemory, Counter]:
    refused = Counter("refused", "", registry=CollectorRegistry())
    return TurnPayloadMemory(budget, wait, refused), refused


def test_a_data_url_is_as_long_as_its_estimate() -> None:
    for size in (0, 1, 2, 3, 1000, 2_400_000):
        url = f"data:image/jpeg;base64,{base64.b64encode(bytes(size)).decode()}"
        assert data_url_bytes(image(size)) == len(url)
    assert PAYLOAD_COPIES == 3  # the URLs, the serialised body, the socket buffer's copy
    assert payload_bytes([image(3), image(6)]) == 3 * (2 * len("data:image/jpeg;base64,") + 4 + 8)


async def test_reservations_within_the_budget_are_immediate_and_given_back_once() -> None:
    gate, _ = memory(100)
    first, second = await gate.reserve(60), await gate.reserve(40)
    assert gate.reserved_bytes == 100
    first.release()
    first.release()
    assert gate.reserved_bytes == 40
    second.release()
    assert gate.reserved_bytes == 0
    assert (await gate.reserve(0)).nbytes == 0 and gate.reserved_bytes == 0


async def test_a_turn_past_the_budget_waits_its_turn_then_runs() -> None:
    gate, refused = memory(100, wait=5)
    held = await gate.reserve(80)
    waiting = asyncio.ensure_future(gate.reserve(50))
    later = asyncio.ensure_future(gate.reserve(10))  # fits, but comes after: first come, first served
    await asyncio.sleep(0.05)
    assert not waiting.done() and not later.done() and gate.reserved_bytes == 80
    held.release()
    granted = await waiting
    assert (await later).nbytes == 10 and granted.nbytes == 50 and gate.reserved_bytes == 60
    assert refused._value.get() == 0


async def test_a_turn_that_waits_too_long_gets_a_503_and_leaves_the_queue() -> None:
    gate, refused = memory(100, wait=0.1)
    held = await gate.reserve(100)
    with pytest.raises(Unavailable) as raised:
        await gate.reserve(1)
    assert raised.value.code == "turn_memory_busy" and raised.value.retry_after == "1"
    assert refused._value.get() == 1
    held.release()
    assert gate.reserved_bytes == 0
    assert (await gate.reserve(100)).nbytes == 100  # nobody left waiting ahead of it


async def test_a_cancelled_waiter_holds_nothing() -> None:
    gate, _ = memory(100, wait=5)
    held = await gate.reserve(100)
    waiting = asyncio.ensure_future(gate.reserve(30))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    held.release()
    assert gate.reserved_bytes == 0


async def test_a_turn_larger_than_the_budget_runs_alone() -> None:
    gate, _ = memory(100, wait=5)
    big = await gate.reserve(10_000)
    assert big.nbytes == 100 and gate.reserved_bytes == 100
    small = asyncio.ensure_future(gate.reserve(1))
    await asyncio.sleep(0.01)
    assert not small.done()
    big.release()
    assert (await small).nbytes == 1


def test_the_data_url_cache_keeps_only_live_pictures_and_counts_its_bytes() -> None:
    cache = _DataUrlCache(max_bytes=1000)
    cache.put("a", "x" * 100)
    cache.put("b", "y" * 200)
    assert cache.bytes == 300
    cache.keep_only({"b", "gone"})
    assert cache.get("a") is None and cache.get("b") == "y" * 200 and cache.bytes == 200
    cache.keep_only(set())
    assert cache.bytes == 0


async def test_a_turn_without_payload_memory_is_a_503_and_a_turn_gives_its_memory_back(
        start_proxy: StartProxy, upstream: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(turn_payload_memory_bytes=1024 * 1024, turn_payload_wait_seconds=0.2)
    payload_memory = proxy.app[INJECTOR].payload_memory
    session = await new_session(http, proxy.url)
    assert (await upload(http, proxy.url, session, jpeg(80, 40))).status == 201
    body = elevenlabs_body(session, conversation("What is this?"))

    held = await payload_memory.reserve(payload_memory.budget_bytes)  # other turns hold it all
    async with http.post(proxy.v1 + "/chat/completions", json=body) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert (await response.json())["error"]["code"] == "turn_memory_busy"
    assert len(upstream.chat_requests) == 0
    held.release()

    async with http.post(proxy.v1 + "/chat/completions", json=body) as response:
        assert response.status == 200
        await response.read()
    assert image_parts(upstream.last_messages())
    assert payload_memory.reserved_bytes == 0  # given back once the upstream answered


async def test_a_gemini_fallback_reserves_its_inline_pictures_too(
        start_proxy: StartProxy, upstream: FakeOpenAI, gemini: FakeGemini, http: aiohttp.ClientSession) -> None:
    """URL delivery reserves nothing for the primary; Gemini fetches no URL, so the turn reserves before its
    data: URLs are built for it, and a turn that cannot is a 503, not an unbounded allocation."""
    proxy = await start_proxy(image_delivery="url", turn_payload_memory_bytes=1024 * 1024,
                              turn_payload_wait_seconds=0.2, upstreams=[
        {"name": "openai", "base_url": upstream.base_url, "api_key": "sk-o", "provider": "openai"},
        {"name": "gemini", "base_url": gemini.base_url, "api_key": GEMINI_KEY, "provider": "gemini",
         "model": "gemini-2.5-flash"}])
    payload_memory = proxy.app[INJECTOR].payload_memory
    session = await new_session(http, proxy.url)
    assert (await upload(http, proxy.url, session, jpeg(80, 40))).status == 201
    body = elevenlabs_body(session, conversation("What is this?"))

    async with http.post(proxy.v1 + "/chat/completions", json=body) as response:  # the primary fetches URLs
        assert response.status == 200 and response.headers["X-Glimpse-Upstream"] == "openai"
        await response.read()
    held = await payload_memory.reserve(payload_memory.budget_bytes)
    async with http.post(proxy.v1 + "/chat/completions", json=body) as response:
        assert response.status == 200  # no inline pictures: no payload memory needed
        await response.read()

    upstream.next.append(Behaviour(status=503))
    async with http.post(proxy.v1 + "/chat/completions", json=body) as response:
        assert response.status == 503
        assert (await response.json())["error"]["code"] == "turn_memory_busy"
    assert not gemini.requests
    held.release()
    upstream.next.append(Behaviour(status=503))
    async with http.post(proxy.v1 + "/chat/completions", json=body) as response:
        assert response.status == 200 and response.headers["X-Glimpse-Upstream"] == "gemini"
        await response.read()
    assert image_parts(gemini.last_messages())[0][1]["image_url"]["url"].startswith("data:image/")
    assert payload_memory.reserved_bytes == 0
