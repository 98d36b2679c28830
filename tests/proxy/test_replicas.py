"""Several proxy replicas sharing one real redis-server, as behind an ingress."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tests.conftest import StartProxy
from tests.fakes.openai_upstream import FakeOpenAI
from tests.helpers import conversation, elevenlabs_body, image_parts, new_session, upload
from tests.metrics_scrape import scrape, value
from tests.processes import free_port


async def test_upload_through_one_replica_chat_through_another(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                               redis_url: str, http: aiohttp.ClientSession) -> None:
    a = await start_proxy(store_url=redis_url)
    b = await start_proxy(store_url=redis_url)
    session = await new_session(http, a.url)
    assert (await upload(http, a.url, session)).status == 201
    async with http.post(b.v1 + "/chat/completions",
                         json=elevenlabs_body(session, conversation("What is this?"))) as response:
        assert response.status == 200
        await response.read()
    assert len(image_parts(upstream.last_messages())) == 1
    async with http.post(a.v1 + "/chat/completions",  # sticky: the next turn, on the other replica, has it too
                         json=elevenlabs_body(session, conversation("What?", "A bike.", "Colour?"))) as r:
        await r.read()
    assert len(image_parts(upstream.last_messages())) == 1


async def test_concurrent_turns_on_two_replicas_inject_exactly_once(
        start_proxy: StartProxy, upstream: FakeOpenAI, redis_url: str, http: aiohttp.ClientSession) -> None:
    a = await start_proxy(store_url=redis_url, image_policy="once")
    b = await start_proxy(store_url=redis_url, image_policy="once")
    session = await new_session(http, a.url)
    await upload(http, a.url, session)

    async def turn(base: str, question: str) -> None:
        body = elevenlabs_body(session, conversation(question))
        async with http.post(base + "/v1/chat/completions", json=body) as response:
            assert response.status == 200
            await response.read()

    # 20 different turns race (an identical body would be ElevenLabs' retry of one turn, which gets its images)
    await asyncio.gather(*[turn(proxy.url, f"What is this? ({n})") for n, proxy in enumerate((a, b) * 10)])
    with_image = [r for r in upstream.chat_requests if image_parts(r.body["messages"])]
    assert len(upstream.chat_requests) == 20 and len(with_image) == 1


async def test_redis_down_chat_still_streams_and_readyz_fails(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                              http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(store_url=f"redis://127.0.0.1:{free_port()}/0")
    async with http.get(proxy.url + "/readyz") as response:
        assert response.status == 503
        assert (await response.json())["checks"]["store"].startswith("unavailable")
    session = await new_session(http, proxy.url)
    async with http.post(proxy.v1 + "/chat/completions",
                         json=elevenlabs_body(session, conversation("Hello?"))) as response:
        assert response.status == 200
        assert (await response.read()).endswith(b"data: [DONE]\n\n")
    response = await upload(http, proxy.url, session)
    assert response.status == 503
    assert "conversation store" in json.loads(await response.text())["error"]["message"]
    assert list(proxy.storage.root.iterdir()) == []  # type: ignore[attr-defined]
    samples = await scrape(http, proxy)
    assert value(samples, "glimpse_store_errors_total", op="take_turn") == 1
    assert value(samples, "glimpse_store_errors_total", op="add_image") == 1
