"""The turn's hot path to the upstream (`glimpse/upstream/http.py`) over real HTTP: one keep-alive connection for
turn after turn, the body as the proxy serialised it, abandoned streams closed, error bodies read only so far,
the SDK's retry rules, an unreachable upstream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from glimpse.resources import UPSTREAMS
from tests.conftest import Proxy, StartProxy
from tests.fakes.loopback import serve_app
from tests.fakes.openai_upstream import DEFAULT_WORDS, Behaviour, FakeOpenAI
from tests.helpers import contents, conversation, elevenlabs_body, parse_sse

TERMINATOR_LAG = 0.05  # seconds between an upstream's `[DONE]` and the end of its chunked body
PIECE = 16 * 1024  # a slow error body's write size


async def turn(proxy: Proxy, http: aiohttp.ClientSession, text: str = "hi") -> tuple[int, bytes]:
    async with http.post(proxy.v1 + "/chat/completions", json=elevenlabs_body("s", conversation(text))) as r:
        return r.status, await r.read()


@contextlib.asynccontextmanager
async def upstream_answering(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    """A one-route upstream on loopback that answers every chat request with `handler`; yields its base URL."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner, port = await serve_app(app)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


def spy_on_payloads(proxy: Proxy, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The payloads the proxy hands its hot path (what it means to send), in order."""
    sent: list[dict[str, Any]] = []
    hot_path = proxy.app[UPSTREAMS].all[0].upstream.http
    post = hot_path.post

    async def recording(path: str, payload: dict[str, Any], extra_headers: dict[str, str] | None = None) -> Any:
        sent.append(payload)
        return await post(path, payload, extra_headers)

    monkeypatch.setattr(hot_path, "post", recording)
    return sent


async def test_turns_reuse_one_keep_alive_connection_and_send_the_exact_body(
        proxy: Proxy, upstream: FakeOpenAI, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep-alive: ten streamed turns, each read to `[DONE]`, go over one upstream connection, each body sent
    byte for byte as the proxy serialised it, with the JSON type and the configured key."""
    sent = spy_on_payloads(proxy, monkeypatch)
    for index in range(10):
        status, raw = await turn(proxy, http, f"turn {index}")
        assert status == 200 and contents(parse_sse(raw)) == "".join(DEFAULT_WORDS)
    received = upstream.chat_requests
    assert len(received) == len(sent) == 10
    assert len({r.peer for r in received}) == 1, [r.peer for r in received]
    for index, (request, payload) in enumerate(zip(received, sent, strict=True)):
        assert request.raw == orjson.dumps(payload)
        assert json.loads(request.raw) == {
            "model": "gpt-4o-mini", "messages": conversation(f"turn {index}"), "stream": True, "temperature": 0.5,
            "max_tokens": 300, "user": "el-user-42", "stream_options": {"include_usage": True}}
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["Authorization"] == "Bearer sk-upstream-test-key"


async def test_a_stream_whose_last_bytes_lag_still_gives_back_its_connection(
        start_proxy: StartProxy, http: aiohttp.ClientSession) -> None:
    """Keep-alive after `[DONE]`: when the chunked terminator comes a moment after `[DONE]`, the proxy waits for it
    (`finish`) and the connection still serves the next turn."""
    peers: list[Any] = []

    async def lagging_end(request: web.Request) -> web.StreamResponse:
        await request.read()
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o-mini",
                 "choices": [{"index": 0, "delta": {"content": "hello"}, "logprobs": None, "finish_reason": None}]}
        await response.write(b"data: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n")
        await asyncio.sleep(TERMINATOR_LAG)
        await response.write_eof()
        return response

    async with upstream_answering(lagging_end) as base_url:
        proxy = await start_proxy(upstream_base_url=base_url)
        for _ in range(3):
            status, raw = await turn(proxy, http)
            # one caller connection's turns are served in order: the next starts once this one's handler
            # (and its wait for the terminator) is done
            assert status == 200 and contents(parse_sse(raw)) == "hello"
    assert len(peers) == 3 and len(set(peers)) == 1, peers


async def test_an_abandoned_stream_does_not_go_back_to_the_pool(proxy: Proxy, upstream: FakeOpenAI,
                                                                http: aiohttp.ClientSession) -> None:
    """A stream its caller hung up on is closed, not pooled: the next turn opens a new connection and succeeds."""
    upstream.next.append(Behaviour(words=["w "] * 100, chunk_delay=0.02))
    response = await http.post(proxy.v1 + "/chat/completions", json=elevenlabs_body("s", conversation("Talk")))
    assert response.status == 200
    await response.content.readline()
    assert response.connection is not None and response.connection.transport is not None
    response.connection.transport.abort()
    await asyncio.wait_for(upstream.disconnected.wait(), 2)  # the proxy hung up on the upstream too
    status, raw = await turn(proxy, http)
    assert status == 200 and contents(parse_sse(raw)) == "".join(DEFAULT_WORDS)
    first, second = upstream.chat_requests
    assert first.peer != second.peer


async def test_a_huge_error_body_is_read_only_so_far(start_proxy: StartProxy, http: aiohttp.ClientSession) -> None:
    """An upstream 500 with 5 MB of text answers the caller at once, a 502 whose message is cut short: the
    proxy reads the first 64 KiB, not the whole body (sent slowly here, 3 s for all of it)."""
    async def huge_failure(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=500, headers={"Content-Type": "text/plain"})
        response.content_length = 5 * 1024 * 1024
        await response.prepare(request)
        for _ in range(response.content_length // PIECE):
            await response.write(b"x" * PIECE)
            await asyncio.sleep(0.01)
        await response.write_eof()
        return response

    async with upstream_answering(huge_failure) as base_url:
        proxy = await start_proxy(upstream_base_url=base_url, upstream_max_retries=0)
        started = time.monotonic()
        async with http.post(proxy.v1 + "/chat/completions", json=elevenlabs_body("s", conversation("hi"))) as r:
            assert r.status == 502
            error = (await r.json())["error"]
        assert time.monotonic() - started < 1
    assert error["type"] == "upstream_error" and error["code"] == "bad_gateway"
    assert error["message"].startswith("The upstream LLM failed (500): Error code: 500 - xxx")
    assert len(error["message"]) <= 600


async def test_a_429_is_retried_after_the_servers_retry_after_ms(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                                 http: aiohttp.ClientSession,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`retry-after-ms: 150` on a 429: one retry 0.15 s later (not the 0.375 s+ backoff); its answer streams."""
    error = upstream._error

    def with_retry_after_ms(behaviour: Behaviour) -> web.Response:
        response = error(behaviour)
        response.headers["retry-after-ms"] = "150"
        return response

    monkeypatch.setattr(upstream, "_error", with_retry_after_ms)
    proxy = await start_proxy(upstream_max_retries=1)
    upstream.next.append(Behaviour(status=429))
    status, raw = await turn(proxy, http)
    assert status == 200 and contents(parse_sse(raw)) == "".join(DEFAULT_WORDS)
    first, second = upstream.chat_requests
    assert 0.15 <= second.at - first.at < 0.35


async def test_a_refused_connection_is_could_not_reach(start_proxy: StartProxy, http: aiohttp.ClientSession) -> None:
    """An upstream that refuses the connection: the caller gets the proxy's 502 "Could not reach", not a 500."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    proxy = await start_proxy(upstream_base_url=f"http://127.0.0.1:{closed_port}/v1")
    started = time.monotonic()
    async with http.post(proxy.v1 + "/chat/completions", json=elevenlabs_body("s", conversation("hi"))) as r:
        assert r.status == 502
        error = (await r.json())["error"]
    assert error == {"message": "Could not reach the upstream LLM.", "type": "upstream_error", "code": "bad_gateway",
                     "param": None}
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(("headers", "told"), [({"retry-after-ms": "2500"}, "3"), ({"retry-after": "7"}, "7"),
                                               ({"retry-after": "x" * 5000}, None), ({"retry-after": "99999"}, None)])
async def test_a_429s_message_and_delay_reach_the_caller_bounded(start_proxy: StartProxy, http: aiohttp.ClientSession,
                                                                 headers: dict[str, str], told: str | None) -> None:
    """An OpenAI error object's message is cut to 500 characters like any other; the caller's `Retry-After` is the
    upstream's delay (retry-after-ms too) in whole seconds, and none when it is unreadable or over two minutes."""
    async def rate_limited(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"error": {"message": "slow down " * 6000, "type": "requests",
                                            "code": "rate_limit_exceeded", "param": None}}, status=429,
                                 headers=headers)

    async with upstream_answering(rate_limited) as base_url:
        proxy = await start_proxy(upstream_base_url=base_url, upstream_max_retries=0)
        async with http.post(proxy.v1 + "/chat/completions", json=elevenlabs_body("s", conversation("hi"))) as r:
            assert r.status == 429
            assert r.headers.get("Retry-After") == told
            message = (await r.json())["error"]["message"]
    assert message.startswith("The upstream LLM is rate limiting: slow down slow down")
    assert len(message) <= len("The upstream LLM is rate limiting: ") + 501



async def test_an_idle_connection_is_kept_only_for_the_keepalive_time(
        start_proxy: StartProxy, upstream: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    """GLIMPSE_UPSTREAM_KEEPALIVE_SECONDS: turns closer than it share a connection; a turn after it opens a new one
    (before an upstream's own idle close can race it)."""
    proxy = await start_proxy(upstream_keepalive_seconds=0.3)
    for pause in (0, 0, 0.8):
        await asyncio.sleep(pause)
        status, _ = await turn(proxy, http)
        assert status == 200
    first, second, third = (request.peer for request in upstream.chat_requests)
    assert first == second != third


async def test_a_non_streamed_answer_that_breaks_off_is_a_502(start_proxy: StartProxy,
                                                              http: aiohttp.ClientSession) -> None:
    """A JSON answer cut short by the upstream is the upstream's failure (502), not the proxy's (500)."""
    async def cut_short(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 1000
        await response.prepare(request)
        await response.write(b'{"id": "chatcmpl-1", "object": ')
        assert request.transport is not None
        request.transport.close()
        return response

    async with upstream_answering(cut_short) as base_url:
        proxy = await start_proxy(upstream_base_url=base_url, upstream_max_retries=0)
        body = {**elevenlabs_body("s", conversation("hi")), "stream": False}
        async with http.post(proxy.v1 + "/chat/completions", json=body) as r:
            assert r.status == 502
            assert (await r.json())["error"]["message"] == "The upstream LLM's answer broke off."


async def test_the_sdks_environment_is_honoured(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch) -> None:
    """OPENAI_ORG_ID and OPENAI_PROJECT_ID become the headers the SDK sends; NO_PROXY keeps a local upstream direct
    even with HTTP_PROXY set (as httpx under the SDK did)."""
    monkeypatch.setenv("OPENAI_ORG_ID", "org-glimpse")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-glimpse")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    proxy = await start_proxy()
    status, _ = await turn(proxy, http)
    assert status == 200
    headers = upstream.chat_requests[-1].headers
    assert (headers["OpenAI-Organization"], headers["OpenAI-Project"]) == ("org-glimpse", "proj-glimpse")


@pytest.mark.parametrize(("env", "proxy"), [
    ({"HTTPS_PROXY": "http://egress:3128"}, "http://egress:3128"),
    ({"https_proxy": "http://egress:3128", "NO_PROXY": "openai.com"}, None),
    ({"ALL_PROXY": "http://egress:3128"}, "http://egress:3128"),
    ({"HTTP_PROXY": "http://egress:3128"}, None),  # an https URL takes HTTPS_PROXY only
    ({"HTTPS_PROXY": "http://egress:3128", "NO_PROXY": "*"}, None),
])
def test_the_proxy_is_the_one_the_environment_names(env: dict[str, str], proxy: str | None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY / ALL_PROXY for an https upstream, unless NO_PROXY names its host or a parent domain."""
    from glimpse.upstream.http import _proxy_for

    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert _proxy_for("https://api.openai.com/v1") == proxy
