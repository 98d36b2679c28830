"""Hostile bytes in headers, query values and the upstream's own stream: a clear error, never a 500, and
nothing stored for a request that is refused."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from glimpse.config import ConfigError, Settings
from tests.conftest import Proxy, StartProxy
from tests.fakes.loopback import serve_app
from tests.helpers import conversation, elevenlabs_body, new_session, parse_sse
from tests.images import jpeg, png
from tests.processes import free_port


async def raw_request(url: str, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes as they are (clients refuse to send non-UTF-8 header values) and read the answer."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head + b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    status = int(raw.split(b" ", 2)[1])
    return status, raw.partition(b"\r\n\r\n")[2]


def multipart(fields: dict[str, str], image: bytes) -> tuple[bytes, bytes]:
    boundary = b"glimpse-test-boundary"
    parts = b""
    for name, value in fields.items():
        parts += b"--" + boundary + b'\r\nContent-Disposition: form-data; name="' + name.encode() + b'"\r\n\r\n'
        parts += value.encode() + b"\r\n"
    parts += (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
              b"Content-Type: image/jpeg\r\n\r\n" + image + b"\r\n--" + boundary + b"--\r\n")
    return b"multipart/form-data; boundary=" + boundary, parts


@pytest.mark.parametrize(("header", "status"), [(b"Authorization: Bearer \xff\xfe\xfa", 401),
                                                (b"Authorization: \xc3\x28", 401)])
async def test_non_utf8_bearer_is_401(start_proxy: StartProxy, header: bytes, status: int) -> None:
    proxy = await start_proxy(custom_llm_key="cllm-secret-key")
    body = json.dumps(elevenlabs_body(None, conversation("hi"))).encode()
    got, answer = await raw_request(proxy.url, b"POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\n" + header +
                                    b"\r\nContent-Type: application/json\r\n", body)
    assert got == status and json.loads(answer)["error"]["type"] == "authentication_error"


async def test_non_utf8_upload_token_is_403(proxy: Proxy, http: aiohttp.ClientSession) -> None:
    session = await new_session(http, proxy.url)
    content_type, body = multipart({"session_id": session["session_id"]}, jpeg())
    status, answer = await raw_request(proxy.url, b"POST /v1/images HTTP/1.1\r\nHost: a\r\n"
                                       b"X-Upload-Token: 1.\xff\xfe\r\nContent-Type: " + content_type + b"\r\n", body)
    assert status == 403 and json.loads(answer)["error"]["code"] == "invalid_upload_token"


async def test_a_host_that_is_no_host_is_400_and_stores_nothing(proxy: Proxy, http: aiohttp.ClientSession) -> None:
    session = await new_session(http, proxy.url)
    content_type, body = multipart({"session_id": session["session_id"]}, jpeg())
    status, answer = await raw_request(proxy.url, b"POST /v1/images HTTP/1.1\r\nHost: ex\xffample.com\r\n"
                                       b"X-Upload-Token: " + session["upload_token"].encode() + b"\r\n"
                                       b"Content-Type: " + content_type + b"\r\n", body)
    assert status == 400 and json.loads(answer)["error"]["param"] == "Host"
    root = proxy.storage.root  # type: ignore[attr-defined]
    assert not root.exists() or list(root.iterdir()) == []
    assert await proxy.store.take_turn(session["session_id"], attach=True, policy="sticky") == []


@pytest.mark.parametrize("expires", ["9" * 5000, "1" * 30, "12345678901234567890123"])
async def test_absurd_expiry_numbers_are_refused_not_a_500(proxy: Proxy, http: aiohttp.ClientSession,
                                                           expires: str) -> None:
    session = await new_session(http, proxy.url)
    async with http.get(f"{proxy.v1}/images/{'0' * 32}.jpg", params={"expires": expires, "sig": "x"}) as response:
        assert response.status == 403
    async with http.post(proxy.v1 + "/images/ready", json={"session_id": session["session_id"]},
                         headers={"X-Upload-Token": f"{expires}.signature"}) as response:
        assert response.status == 403


def test_a_short_signing_secret_is_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(env={"GLIMPSE_SIGNING_SECRET": "short"})
    assert "GLIMPSE_SIGNING_SECRET" in str(info.value) and "\n" not in str(info.value)
    assert "short" not in str(info.value).replace("too short", "")


async def raw_upstream(events: list[bytes], content_type: str = "text/event-stream",
                       delay: float = 0.0) -> tuple[web.AppRunner, str]:
    """An OpenAI-compatible upstream that sends exactly these bytes as its answer."""

    async def completions(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        for event in events:
            await response.write(event)
            if delay:
                await asyncio.sleep(delay)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner, port = await serve_app(app)
    return runner, f"http://127.0.0.1:{port}/v1"


def chunk(text: str) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}


async def test_multi_line_data_is_joined_and_reframed_by_the_sse_rules(start_proxy: StartProxy,
                                                                       http: aiohttp.ClientSession) -> None:
    pretty = json.dumps(chunk("hello"), indent=1).encode()  # JSON over several lines: one data: field per line
    event = b"".join(b"data: " + line + b"\n" for line in pretty.split(b"\n")) + b"\n"
    runner, url = await raw_upstream([event, b"data: [DONE]\n\n"])
    try:
        proxy = await start_proxy(upstream_base_url=url, upstream_stream_usage=False)
        async with http.post(proxy.v1 + "/chat/completions", json=elevenlabs_body(None, conversation("hi"))) as r:
            raw = await r.read()
    finally:
        await runner.cleanup()
    first = raw.split(b"\n\n")[0]
    assert all(line.startswith(b"data: ") for line in first.split(b"\n")), first
    joined = b"\n".join(line.removeprefix(b"data: ") for line in first.split(b"\n"))
    assert json.loads(joined) == chunk("hello")
    assert raw.endswith(b"data: [DONE]\n\n")


async def test_an_event_with_no_end_is_cut_at_the_cap_in_linear_time(start_proxy: StartProxy,
                                                                      http: aiohttp.ClientSession) -> None:
    # 16 MB in 64 KiB pieces with no blank line: once parsed quadratically (seconds of CPU per MB)
    piece = b"data: " + b"x" * (64 * 1024 - 6)
    runner, url = await raw_upstream([b"data: " + json.dumps(chunk("a")).encode() + b"\n\n"] + [piece] * 256)
    try:
        proxy = await start_proxy(upstream_base_url=url, upstream_stream_usage=False)
        started = time.process_time()
        async with http.post(proxy.v1 + "/chat/completions", json=elevenlabs_body(None, conversation("hi"))) as r:
            assert r.status == 200
            raw = await r.read()
        cpu = time.process_time() - started
    finally:
        await runner.cleanup()
    payloads = parse_sse(raw)
    assert json.loads(payloads[-2])["error"]["code"] == "stream_interrupted"
    assert cpu < 2.0, f"{cpu:.1f} s of CPU for one oversized event"


async def test_a_200_that_is_not_json_is_a_502(start_proxy: StartProxy, http: aiohttp.ClientSession) -> None:
    runner, url = await raw_upstream([b"<html>gateway says hi</html>"], content_type="application/json")
    try:
        proxy = await start_proxy(upstream_base_url=url)
        body = elevenlabs_body(None, conversation("hi"), stream=False)
        async with http.post(proxy.v1 + "/chat/completions", json=body) as response:
            assert response.status == 502
            assert (await response.json())["error"]["type"] == "upstream_error"
    finally:
        await runner.cleanup()


async def test_a_form_of_many_parts_is_refused_at_the_part_past_the_limit(
        proxy: Proxy, http: aiohttp.ClientSession) -> None:
    """50,000 fields (the attack's shape): a 400 naming the limit, not a form read to its end; two files: a 400."""
    session = await new_session(http, proxy.url)
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("session_id", session["session_id"])
    for index in range(50_000):
        form.add_field(f"f{index}", "x")
    async with http.post(proxy.v1 + "/images", data=form,
                         headers={"X-Upload-Token": session["upload_token"]}) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "too_many_parts"
    form = aiohttp.FormData()
    form.add_field("session_id", session["session_id"])
    for _ in range(2):
        form.add_field("file", png(8, 8), filename="a.png", content_type="image/png")
    async with http.post(proxy.v1 + "/images", data=form,
                         headers={"X-Upload-Token": session["upload_token"]}) as response:
        assert response.status == 400 and (await response.json())["error"]["param"] == "file"


async def test_metrics_on_their_own_port_are_not_on_the_api_port(start_proxy: StartProxy,
                                                                 http: aiohttp.ClientSession) -> None:
    """The Ingress routes to the API's port only: with GLIMPSE_METRICS_PORT, /metrics is not published through it."""
    metrics_port = free_port()
    proxy = await start_proxy(metrics_port=metrics_port)
    async with http.get(proxy.url + "/healthz") as response:
        assert response.status == 200
    async with http.get(proxy.url + "/metrics") as response:
        assert response.status == 404 and (await response.json())["error"]["code"] == "not_found"
    async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
        assert response.status == 200
        assert 'glimpse_requests_total{route="/healthz",status="200"} 1.0' in await response.text()
