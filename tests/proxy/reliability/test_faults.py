"""Each fault against the real proxy, with the fake upstream in a fault mode."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp

from tests.conftest import StartProxy
from tests.fakes.openai_upstream import Behaviour, FakeOpenAI
from tests.helpers import conversation, elevenlabs_body, image_parts, new_session, upload
from tests.processes import start_fake_upstream, start_glimpse
from tests.redis_server import RedisServer


async def test_slow_first_byte_is_a_504_before_any_byte(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                        http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(upstream_first_byte_timeout=0.5)
    upstream.default = Behaviour(first_byte_delay=3)
    started = time.monotonic()
    async with http.post(proxy.v1 + "/chat/completions", json=elevenlabs_body("s", conversation("hi"))) as r:
        assert r.status == 504
        assert json.loads(await r.text())["error"]["type"] == "upstream_timeout"
    assert time.monotonic() - started < 2


async def test_idle_upstream_mid_stream_ends_with_error_and_done(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                                 http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(upstream_read_timeout=0.5)
    upstream.default = Behaviour(words=["a ", "b ", "c"], chunk_delay=2)
    async with http.post(proxy.v1 + "/chat/completions", json=elevenlabs_body("s", conversation("hi"))) as r:
        assert r.status == 200
        events = (await r.read()).decode().strip().split("\n\n")
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[-2].removeprefix("data: "))["error"]["code"] == "stream_interrupted"
    assert len(upstream.chat_requests) == 1  # never retried after bytes reached the caller


async def test_retries_connect_errors_and_5xx_before_the_first_byte(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                                    http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(upstream_max_retries=3)
    upstream.next.extend([Behaviour(status=503), Behaviour(status=500), Behaviour(status=429, retry_after="0")])
    async with http.post(proxy.v1 + "/chat/completions", json=elevenlabs_body("s", conversation("hi"))) as r:
        assert r.status == 200
        body = await r.read()
    assert body.count(b'"content": "picture "') == 1 and body.count(b"data: [DONE]") == 1
    assert len(upstream.chat_requests) == 4


async def test_caller_disconnect_cancels_upstream_within_100ms(proxy, upstream: FakeOpenAI,
                                                               http: aiohttp.ClientSession) -> None:
    upstream.default = Behaviour(words=["w "] * 500, chunk_delay=0.02)
    response = await http.post(proxy.v1 + "/chat/completions", json=elevenlabs_body("s", conversation("Talk")))
    await response.content.readline()
    await asyncio.wait_for(upstream.streams_started.wait(), 5)
    closed = time.monotonic()
    response.connection.transport.abort()  # type: ignore[union-attr]
    await asyncio.wait_for(upstream.disconnected.wait(), 2)
    assert time.monotonic() - closed < 0.1


async def test_sigterm_drains_live_streams_and_refuses_new_ones(tmp_path: Path) -> None:
    fake, fake_url = await asyncio.to_thread(start_fake_upstream, 0.15)
    glimpse, base = await asyncio.to_thread(start_glimpse, tmp_path, upstream_base_url=fake_url,
                                            upstream_api_key="sk-test", shutdown_grace_seconds="10")
    try:
        async with aiohttp.ClientSession() as http:
            live = await http.post(base + "/v1/chat/completions", json=elevenlabs_body("s", conversation("Go")))
            assert live.status == 200
            await live.content.readline()
            glimpse.popen.send_signal(15)
            await asyncio.sleep(0.3)
            async with http.get(base + "/readyz") as r:
                assert r.status == 503 and (await r.json())["checks"]["server"] == "draining"
            async with http.post(base + "/v1/chat/completions", json=elevenlabs_body("s", conversation("x"))) as r:
                assert r.status == 503 and r.headers["Retry-After"] == "1"
            rest = await live.read()  # the live answer still finishes, whole
            assert rest.endswith(b"data: [DONE]\n\n") and b'"finish_reason": "stop"' in rest
        # the one SIGTERM is enough: it exits 0 on its own (stop() would send a second one while it shuts down)
        code = await asyncio.to_thread(glimpse.popen.wait, 15)
        assert code == 0
    finally:
        await asyncio.to_thread(glimpse.stop)
        await asyncio.to_thread(fake.stop)


async def test_redis_killed_and_restarted_mid_run(start_proxy: StartProxy, upstream: FakeOpenAI, tmp_path: Path,
                                                  http: aiohttp.ClientSession) -> None:
    redis = await asyncio.to_thread(lambda: RedisServer(tmp_path).start())
    try:
        proxy = await start_proxy(store_url=redis.url)
        session = await new_session(http, proxy.url)
        await upload(http, proxy.url, session)

        async def turn(text: str) -> list:
            body = elevenlabs_body(session, conversation(text))
            async with http.post(proxy.v1 + "/chat/completions", json=body) as r:
                assert r.status == 200
                assert (await r.read()).endswith(b"data: [DONE]\n\n")
            return image_parts(upstream.last_messages())

        assert len(await turn("before")) == 1
        await asyncio.to_thread(redis.stop)
        assert await turn("while down") == []  # still answers, without images
        async with http.get(proxy.url + "/readyz") as r:
            assert r.status == 503
        await asyncio.to_thread(redis.start)  # same port, empty (no persistence)
        async with http.get(proxy.url + "/readyz") as r:
            assert r.status == 200
        assert (await upload(http, proxy.url, session)).status == 201
        # the new picture only: the one attached before a restart without persistence is gone (README, reliability.md)
        assert len(await turn("after restart")) == 1
    finally:
        await asyncio.to_thread(redis.stop)
