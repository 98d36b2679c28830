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
                         json=elevenlabs_body(session, conversation("Still there?"))) as response:
        await response.read()
    assert image_parts(upstream.last_messages()) == []


async def test_a_picture_lives_as_long_as_its_conversation_not_its_upload_time(
        start_proxy: StartProxy, upstream: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    """Sticky policy, URL delivery: every turn sends the upstream the picture's URL. The conversation's TTL slides
    with each turn; the file must stay while it does, however long ago it was uploaded, then go with it."""
    proxy = await start_proxy(image_ttl_seconds=2, sweep_interval_seconds=1, image_delivery="url")
    session = await new_session(http, proxy.url)
    assert (await upload(http, proxy.url, session)).status == 201
    root = proxy.storage.root  # type: ignore[attr-defined]
    loop = asyncio.get_running_loop()
    uploaded = loop.time()
    turns = ["What is this?"]
    while loop.time() - uploaded < 4.5:  # more than twice the TTL, one turn every 0.5 s
        async with http.post(proxy.v1 + "/chat/completions",
                             json=elevenlabs_body(session, conversation(*turns))) as response:
            await response.read()
        [(_, part)] = image_parts(upstream.last_messages())
        async with http.get(part["image_url"]["url"]) as fetched:  # as the upstream fetches it
            assert fetched.status == 200, f"the picture was gone {loop.time() - uploaded:.1f} s after its upload"
        turns += ["It is a bike.", "And now?"]
        await asyncio.sleep(0.5)
    assert len(list(root.iterdir())) == 1
    await asyncio.sleep(4.2)  # the conversation's TTL, then a sweep
    assert list(root.iterdir()) == []
