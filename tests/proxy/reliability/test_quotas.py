"""Quotas and rate limits through the real proxy over HTTP: refusals are 429 (rate, a conversation's bytes) or
507 (the storage's bytes) with an OpenAI-style body, `Retry-After` where waiting helps, nothing spent and
nothing stored; X-Forwarded-For only from a trusted peer; limits shared through Redis and open when it is
down."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from glimpse.conversation.store import StoredImage
from tests.conftest import Proxy, StartProxy
from tests.fakes.elevenlabs_api import AGENT_ID, API_KEY, FakeElevenLabs
from tests.fakes.openai_upstream import FakeOpenAI
from tests.helpers import conversation, elevenlabs_body, new_session, upload
from tests.images import noisy_jpeg
from tests.redis_server import RedisServer
from tests.storage_contract import uploads_against_the_quota


def sample(proxy: Proxy, name: str, **labels: str) -> float:
    return proxy.metrics.registry.get_sample_value(name, labels) or 0.0


async def get_session(http: aiohttp.ClientSession, proxy: Proxy, forwarded_for: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for is not None else {}
    async with http.get(proxy.v1 + "/session", headers=headers) as response:
        await response.read()
        return response.status


async def assert_rate_limited(response: aiohttp.ClientResponse) -> None:
    assert response.status == 429, await response.text()
    assert int(response.headers["Retry-After"]) >= 1
    error = (await response.json())["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded", error
    assert "Try again in" in error["message"]


def stored_files(tmp_path: Path) -> list[Path]:
    root = tmp_path / "images"
    return sorted(root.iterdir()) if root.is_dir() else []


def on_disk(tmp_path: Path) -> int:
    return sum(path.stat().st_size for path in stored_files(tmp_path))


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many uploads reached the decoder."""
    import glimpse.images.uploads as uploads

    calls: list[int] = []
    real: Callable[..., Any] = uploads.normalise_image

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(uploads, "normalise_image", counting)
    return calls


async def test_session_rate_limit_spares_the_elevenlabs_key(start_proxy: StartProxy, elevenlabs: FakeElevenLabs,
                                                            http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(elevenlabs_api_key=API_KEY, elevenlabs_agent_id=AGENT_ID,
                              elevenlabs_base_url=elevenlabs.base_url, session_rate_per_minute=10,
                              session_rate_burst=3)
    for _ in range(3):
        await new_session(http, proxy.url)
    spent = len(elevenlabs.calls)
    assert spent == 3
    for _ in range(5):
        async with http.get(proxy.v1 + "/session") as response:
            await assert_rate_limited(response)
            assert 1 <= int(response.headers["Retry-After"]) <= 6  # 10 a minute: a token every 6 s
    assert len(elevenlabs.calls) == spent  # no signed URL asked for past the limit
    assert sample(proxy, "glimpse_rate_limited_total", route="/v1/session") == 5
    assert sample(proxy, "glimpse_requests_total", route="/v1/session", status="429") == 5


async def test_the_session_limit_with_its_default_burst(start_proxy: StartProxy, http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(session_rate_per_minute=10)  # the product's default (conftest turns limits off)
    statuses = [await get_session(http, proxy) for _ in range(8)]
    assert statuses == [200] * 5 + [429] * 3


async def test_upload_rate_limit(start_proxy: StartProxy, http: aiohttp.ClientSession, tmp_path: Path,
                                 decodes: list[int]) -> None:
    proxy = await start_proxy(upload_rate_per_minute=30, upload_rate_burst=2)
    session = await new_session(http, proxy.url)
    for _ in range(2):
        assert (await upload(http, proxy.url, session)).status == 201
    refused = await upload(http, proxy.url, session)
    await assert_rate_limited(refused)
    refused_alias = await upload(http, proxy.url, session, path="/upload_image_get_url")  # the same bucket
    assert refused_alias.status == 429
    assert len(stored_files(tmp_path)) == 2 and len(decodes) == 2
    assert sample(proxy, "glimpse_rate_limited_total", route="/v1/images") == 1
    assert sample(proxy, "glimpse_rate_limited_total", route="/upload_image_get_url") == 1
    assert (await new_session(http, proxy.url))["session_id"]  # other routes are not limited by it


async def test_chat_rate_limit(start_proxy: StartProxy, upstream: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(chat_rate_per_minute=60, chat_rate_burst=2)
    body = elevenlabs_body("s1", conversation("What is this?"))
    for _ in range(2):
        async with http.post(proxy.v1 + "/chat/completions", json=body) as response:
            assert response.status == 200
            await response.read()
    async with http.post(proxy.v1 + "/chat/completions", json=body) as response:
        await assert_rate_limited(response)
    async with http.post(proxy.v1 + "/responses", json={"input": "hi", "stream": False}) as response:
        await assert_rate_limited(response)  # both custom-LLM routes share one bucket
    assert len(upstream.chat_requests) == 2


async def test_forwarded_for_is_believed_from_a_trusted_peer(start_proxy: StartProxy,
                                                              http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(session_rate_per_minute=10, session_rate_burst=1, trusted_proxies="127.0.0.1/32")
    assert await get_session(http, proxy, "203.0.113.7") == 200
    assert await get_session(http, proxy, "203.0.113.7") == 429
    assert await get_session(http, proxy, "198.51.100.1, 203.0.113.7") == 429  # a spoofed left entry changes nothing
    assert await get_session(http, proxy, "203.0.113.8") == 200  # another caller behind the proxy
    assert await get_session(http, proxy) == 200  # the proxy itself
    assert await get_session(http, proxy, "not an address") == 429  # malformed: the peer, never a 500
    assert await get_session(http, proxy, "[::1]:x, 999.0.0.1") == 429


async def test_forwarded_for_is_ignored_from_an_untrusted_peer(start_proxy: StartProxy,
                                                               http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(session_rate_per_minute=10, session_rate_burst=1, trusted_proxies="10.0.0.0/8")
    assert await get_session(http, proxy, "203.0.113.7") == 200
    assert await get_session(http, proxy, "203.0.113.8") == 429  # a fresh address per call buys nothing
    assert await get_session(http, proxy, "10.1.1.1") == 429


async def test_session_quota_refuses_the_image_that_does_not_fit(start_proxy: StartProxy, http: aiohttp.ClientSession,
                                                                 tmp_path: Path, decodes: list[int]) -> None:
    quota = 400_000
    proxy = await start_proxy(session_storage_quota_bytes=quota)
    session = await new_session(http, proxy.url)
    stored: list[int] = []
    for _ in range(12):
        response = await upload(http, proxy.url, session, noisy_jpeg(512, 512))
        if response.status != 201:
            break
        stored.append((await response.json())["bytes"])
    assert response.status == 429, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == "session_quota_exceeded" and error["type"] == "insufficient_quota", error
    assert "Retry-After" not in response.headers  # waiting frees nothing; a new session does
    assert stored and sum(stored) <= quota
    assert len(stored_files(tmp_path)) == len(stored)  # nothing left of the refused image
    assert await proxy.store.bytes_held(session["session_id"]) == sum(stored)
    assert sample(proxy, "glimpse_quota_refusals_total", scope="session") == 1
    other = await new_session(http, proxy.url)
    assert (await upload(http, proxy.url, other, noisy_jpeg(512, 512))).status == 201  # per conversation

    # A full conversation is refused before its upload is decoded.
    full = await new_session(http, proxy.url)
    await proxy.store.add_image(full["session_id"], StoredImage("f" * 32 + ".jpg", "k", "image/jpeg", 1, 1,
                                                                quota, 0.0), ready=True)
    before = len(decodes)
    assert (await upload(http, proxy.url, full)).status == 429
    assert len(decodes) == before


async def test_storage_quota_is_a_507_measured_from_disk(start_proxy: StartProxy, http: aiohttp.ClientSession,
                                                         tmp_path: Path, decodes: list[int]) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "earlier.jpg").write_bytes(b"x" * 50_000)  # left by an earlier run
    proxy = await start_proxy(storage_quota_bytes=50_000, sweep_interval_seconds=45)
    session = await new_session(http, proxy.url)
    response = await upload(http, proxy.url, session)
    assert response.status == 507, await response.text()
    assert response.headers["Retry-After"] == "45"  # the next sweep may free space
    error = (await response.json())["error"]
    assert error["code"] == "storage_full" and error["type"] == "insufficient_storage", error
    assert decodes == []  # refused before the decode
    assert [path.name for path in stored_files(tmp_path)] == ["earlier.jpg"]
    assert sample(proxy, "glimpse_quota_refusals_total", scope="global") == 1
    assert sample(proxy, "glimpse_stored_image_bytes") == 50_000


async def test_storage_quota_counts_puts_and_deletes(start_proxy: StartProxy, http: aiohttp.ClientSession,
                                                     tmp_path: Path) -> None:
    quota = 500_000  # two of these images
    proxy = await start_proxy(storage_quota_bytes=quota, images_per_conversation=1)
    statuses = await uploads_against_the_quota(http, proxy, lambda: on_disk(tmp_path))
    assert statuses == [201, 201, 507]
    assert on_disk(tmp_path) <= quota
    assert not [path for path in stored_files(tmp_path) if path.name.startswith(".")]  # no partial files


async def test_rate_limits_are_shared_by_replicas_on_one_redis(start_proxy: StartProxy, redis_url: str,
                                                               http: aiohttp.ClientSession) -> None:
    settings = {"store_url": redis_url, "session_rate_per_minute": 10, "session_rate_burst": 3}
    a, b = await start_proxy(**settings), await start_proxy(**settings)
    assert [await get_session(http, a), await get_session(http, b), await get_session(http, a)] == [200] * 3
    assert await get_session(http, b) == 429
    assert await get_session(http, a) == 429


async def test_session_quota_is_shared_by_replicas_on_one_redis(start_proxy: StartProxy, redis_url: str,
                                                                http: aiohttp.ClientSession) -> None:
    settings = {"store_url": redis_url, "session_storage_quota_bytes": 250_000}
    a, b = await start_proxy(**settings), await start_proxy(**settings)
    session = await new_session(http, a.url)
    statuses = [(await upload(http, replica.url, session, noisy_jpeg(512, 512))).status
                for replica in (a, b, a, b, a, b)]
    assert 201 in statuses and statuses[statuses.index(429):] == [429] * (len(statuses) - statuses.index(429))
    assert await a.store.bytes_held(session["session_id"]) <= 250_000


async def test_redis_down_rate_limits_fail_open(start_proxy: StartProxy, tmp_path: Path,
                                                http: aiohttp.ClientSession) -> None:
    redis = await asyncio.to_thread(lambda: RedisServer(tmp_path).start())
    try:
        proxy = await start_proxy(store_url=redis.url, session_rate_per_minute=10, session_rate_burst=2)
        assert [await get_session(http, proxy) for _ in range(3)] == [200, 200, 429]
        await asyncio.to_thread(redis.stop)
        assert [await get_session(http, proxy) for _ in range(5)] == [200] * 5  # never blocked, never a 500
        assert sample(proxy, "glimpse_store_errors_total", op="rate_limit") >= 1
    finally:
        await asyncio.to_thread(redis.stop)
