"""Images and conversation state disappear after their TTL."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.conftest import StartProxy
from tests.fakes.openai_upstream import FakeOpenAI
from tests.helpers import conversation, elevenlabs_body, image_parts, new_session, upload


async def test_local_images_and_state_expire(start_proxy: StartProxy, upstream: FakeOpenAI,
                                             http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(image_ttl_seconds=1, sweep_interval_seconds=1)
    session = await new_session(http, proxy.url)
    result = await (await upload(http, proxy.url, session)).json()
    root = proxy.storage.root  # type: ignore[attr-defined]
    assert len(list(root.iterdir())) == 1
    await asyncio.sleep(2.6)
    assert list(root.iterdir()) == []
    async with http.get(result["url"]) as response:
        assert response.status == 404
    async with http.post(proxy.v1 + "/chat/completions",
                         json=elevenlabs_body(session["session_id"], conversation("Still there?"))) as response:
        await response.read()
    assert image_parts(upstream.last_messages()) == []
