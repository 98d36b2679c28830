"""What every image storage (disk, GCS, S3) must do through the proxy, checked the same way for each."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.conftest import Proxy
from tests.fakes.openai_upstream import FakeOpenAI
from tests.helpers import conversation, elevenlabs_body, image_parts, new_session, upload
from tests.images import noisy_jpeg


async def storage_down_leaves_no_state(http: aiohttp.ClientSession, proxy: Proxy, session: dict[str, Any],
                                       upstream: FakeOpenAI) -> None:
    """With the storage out of reach: an upload is a 503 naming the storage, /readyz fails, a turn is answered
    without the picture, and the conversation holds nothing."""
    response = await upload(http, proxy.url, session)
    assert response.status == 503
    assert "storage" in json.loads(await response.text())["error"]["message"].lower()
    async with http.get(proxy.url + "/readyz") as r:
        assert r.status == 503
    async with http.post(proxy.v1 + "/chat/completions",
                         json=elevenlabs_body(session, conversation("What is this?"))) as r:
        assert r.status == 200
        await r.read()
    assert image_parts(upstream.last_messages()) == []
    assert await proxy.store.take_turn(session["session_id"], attach=True, policy="sticky") == []


async def uploads_against_the_quota(http: aiohttp.ClientSession, proxy: Proxy, stored: Callable[[], int]) -> list[int]:
    """Three conversations each upload a 512x512 noisy JPEG under a quota two of them fit (a proxy started with
    storage_quota_bytes=500_000, images_per_conversation=1); each conversation's second image, refused once written,
    gives its bytes back. The proxy's count matches `stored` (the bytes the storage really holds) after each. Returns
    the three statuses."""
    statuses = []
    for _ in range(3):
        session = await new_session(http, proxy.url)
        statuses.append((await upload(http, proxy.url, session, noisy_jpeg(512, 512))).status)
        if statuses[-1] == 201:
            assert (await upload(http, proxy.url, session)).status == 400
        assert proxy.storage.stored_bytes == stored()
    return statuses


async def url_delivery(http: aiohttp.ClientSession, proxy: Proxy, upstream: FakeOpenAI, url_prefix: str,
                       signature: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """With `url` delivery: the proxy is ready, an upload answers a URL of the storage's own (starting `url_prefix`,
    signed: `signature` in its query) that serves the JPEG, a turn carries a signed URL of the storage, and the
    proxy's own image route serves nothing. Returns the session, the upload's answer and the URL the turn carried."""
    async with http.get(proxy.url + "/readyz") as response:
        assert response.status == 200, await response.text()
    session = await new_session(http, proxy.url)
    response = await upload(http, proxy.url, session)
    assert response.status == 201, await response.text()
    result = await response.json()
    assert result["url"].startswith(url_prefix.format(session_id=session["session_id"]))
    assert f"{signature}=" in result["url"]
    async with http.get(result["url"]) as r:  # the page's thumbnail comes straight from storage
        assert r.status == 200 and (await r.read())[:2] == b"\xff\xd8"
    async with http.post(proxy.v1 + "/chat/completions",
                         json=elevenlabs_body(session, conversation("What is this?"))) as r:
        await r.read()
    turn_url: str = image_parts(upstream.last_messages())[0][1]["image_url"]["url"]
    assert f"{signature}=" in turn_url
    async with http.get(f"{proxy.url}/v1/images/{result['image_id']}?expires=1&sig=x") as r:
        assert r.status == 404  # images in a bucket are never served through the proxy
    return session, result, turn_url


async def inline_delivery(http: aiohttp.ClientSession, proxy: Proxy, upstream: FakeOpenAI) -> None:
    """With `inline` delivery the proxy reads the stored object back: the turn carries it as a data: URL."""
    session = await new_session(http, proxy.url)
    assert (await upload(http, proxy.url, session)).status == 201
    async with http.post(proxy.v1 + "/chat/completions",
                         json=elevenlabs_body(session, conversation("What is this?"))) as r:
        await r.read()
    assert image_parts(upstream.last_messages())[0][1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
