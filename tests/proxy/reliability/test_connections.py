"""Connection hygiene against a real `glimpse serve` with 256 file descriptors: slowloris heads, idle sockets past
the connection cap, a stalled upload, and a long SSE stream that none of these timeouts may cut; and, with 4,096,
one address holding thousands of idle sockets while another is served (the cap per address)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import resource
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from glimpse.config import Settings
from glimpse.limits.client_ip import parse_networks
from glimpse.observability.metrics import Metrics
from glimpse.resources import METRICS, SETTINGS
from glimpse.server import start_server
from glimpse.web.connections import (
    DEFAULT_CAP,
    FD_RESERVE,
    HEALTH_RESERVE,
    Connections,
    Limits,
    connection_cap,
    per_address_cap,
)
from tests.fakes.openai_upstream import FakeOpenAI
from tests.helpers import conversation, elevenlabs_body, new_session
from tests.images import jpeg
from tests.processes import Process, start_fake_upstream, start_glimpse

MAX_OPEN_FILES = 256
MAX_CONNECTIONS = 150
HEADER_TIMEOUT = 1.5
KEEPALIVE_TIMEOUT = 2.5
BODY_TIMEOUT = 1.0
# every test here calls from 127.0.0.1: no cap per address but the whole cap, unless a test is about it
LIMITS = {"max_connections": str(MAX_CONNECTIONS), "max_connections_per_address": str(MAX_CONNECTIONS),
          "header_timeout_seconds": str(HEADER_TIMEOUT),
          "keepalive_timeout_seconds": str(KEEPALIVE_TIMEOUT), "body_timeout_seconds": str(BODY_TIMEOUT)}
NEVER = 6.0  # longer than any timeout above: a socket still open by then was never timed out


@contextlib.asynccontextmanager
async def glimpse(workdir: Path, upstream_url: str = "http://127.0.0.1:9/v1") -> AsyncIterator[tuple[Process, str]]:
    process, base = await asyncio.to_thread(start_glimpse, workdir, max_open_files=MAX_OPEN_FILES,
                                            upstream_base_url=upstream_url, upstream_api_key="sk-test", **LIMITS)
    try:
        yield process, base
    finally:
        code, log = await asyncio.to_thread(process.stop)
        assert "Too many open files" not in log, log[-3000:]
        assert code == 0, log[-3000:]


class Sockets:
    """Raw client connections to the proxy, every one of them closed at the end."""

    def __init__(self, base: str) -> None:
        self.port = urlsplit(base).port
        self.writers: list[asyncio.StreamWriter] = []

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writers.append(writer)
        return reader, writer

    async def __aenter__(self) -> Sockets:
        return self

    async def __aexit__(self, *_: object) -> None:
        for writer in self.writers:
            writer.transport.abort()


async def read_until_closed(reader: asyncio.StreamReader, timeout: float = NEVER) -> bytes:
    """Everything the proxy sends until it closes the connection; TimeoutError if it never does."""
    received = b""
    async with asyncio.timeout(timeout):
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                received += chunk
    return received


async def first_bytes(reader: asyncio.StreamReader, wait: float) -> bytes | None:
    """What the proxy sends within `wait` seconds (until it closes); None if it sends nothing and keeps the
    connection open."""
    try:
        return await read_until_closed(reader, wait)
    except TimeoutError:
        return None


async def poll_health(base: str, stop: asyncio.Event) -> list[int]:
    """/healthz every 0.2 s on a new connection each time (as the kubelet does), until `stop`."""
    statuses = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True),
                                     timeout=aiohttp.ClientTimeout(total=2)) as http:
        while not stop.is_set():
            try:
                async with http.get(base + "/healthz") as response:
                    statuses.append(response.status)
            except (aiohttp.ClientError, TimeoutError):
                statuses.append(0)
            await asyncio.sleep(0.2)
    return statuses


def open_files(process: Process) -> int:
    return len(os.listdir(f"/proc/{process.popen.pid}/fd"))


def refused_total(exposition: str, reason: str) -> float:
    found = re.search(rf'^glimpse_connections_refused_total\{{reason="{reason}"\}} (\S+)$', exposition, re.MULTILINE)
    return float(found[1]) if found else 0.0


def stored_images(workdir: Path) -> list[Path]:
    images = workdir / "data" / "images"
    return [path for path in images.rglob("*") if path.is_file()] if images.exists() else []


def multipart_upload(session: dict[str, str]) -> tuple[bytes, bytes]:
    """The head and body of `POST /v1/images` for one picture, as raw bytes."""
    boundary = "glimpse-test-boundary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="session_id"\r\n\r\n{session["session_id"]}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n").encode() + jpeg(640, 480) + f"\r\n--{boundary}--\r\n".encode()
    head = (f"POST /v1/images HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Upload-Token: {session['upload_token']}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    return head, body


async def test_slowloris_heads_are_closed_at_the_header_deadline_while_healthz_answers(tmp_path: Path) -> None:
    async with glimpse(tmp_path) as (_, base), Sockets(base) as sockets:

        async def slowloris() -> tuple[float, bytes]:
            reader, writer = await sockets.connect()
            started = time.monotonic()

            async def trickle() -> None:
                # A head that never ends, one byte at a time: progress must not move the deadline.
                head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4000
                with contextlib.suppress(ConnectionError):
                    for byte in head:
                        writer.write(bytes([byte]))
                        await asyncio.sleep(0.2)

            sender = asyncio.create_task(trickle())
            try:
                received = await read_until_closed(reader)
            finally:
                sender.cancel()
            return time.monotonic() - started, received

        stop = asyncio.Event()
        health = asyncio.create_task(poll_health(base, stop))
        try:
            results = await asyncio.gather(*(slowloris() for _ in range(30)))
        finally:
            stop.set()
            statuses = await health
    for elapsed, received in results:
        assert HEADER_TIMEOUT - 0.1 < elapsed < HEADER_TIMEOUT + 0.8, elapsed
        assert received == b"" or received.startswith(b"HTTP/1.1 408 "), received
    assert len(statuses) >= 4 and set(statuses) == {200}, statuses


async def test_connections_past_the_cap_get_a_503_and_the_descriptors_hold(tmp_path: Path,
                                                                           upstream: FakeOpenAI) -> None:
    async with glimpse(tmp_path, upstream.base_url) as (process, base), Sockets(base) as sockets:

        async def closed_at(reader: asyncio.StreamReader) -> float:
            assert await read_until_closed(reader) == b""
            return time.monotonic()

        # idle sockets fill the cap
        held = []
        for _ in range(MAX_CONNECTIONS):
            reader, _ = await sockets.connect()
            held.append((asyncio.create_task(closed_at(reader)), time.monotonic()))
        await asyncio.sleep(0.2)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            # the kubelet's probe still gets through (a few places are kept for it); any other request is refused
            async with http.get(base + "/healthz") as response:
                assert response.status == 200
            async with http.get(base + "/v1/models") as response:
                assert response.status == 503 and response.headers["Retry-After"] == "1"
                assert (await response.json())["error"]["code"] == "too_many_connections"

        # past the cap and those few places, a new connection gets a 503 at once and is closed
        more = [(await sockets.connect())[0] for _ in range(400 - MAX_CONNECTIONS)]
        answers = await asyncio.gather(*(first_bytes(reader, 0.5) for reader in more))
        refused = [answer for answer in answers if answer is not None]
        assert len(refused) >= len(more) - HEALTH_RESERVE, len(refused)
        assert open_files(process) < MAX_OPEN_FILES - 16
        head, _, body = refused[0].partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), refused[0]
        assert b"\r\nRetry-After: " in head and b"\r\nConnection: close" in head
        error = json.loads(body)["error"]
        assert error["code"] == "too_many_connections" and error["type"] == "server_error"
        assert all(answer == refused[0] for answer in refused)

        # a socket that sends no request is closed at the header deadline, counted from its opening
        for task, at in held:
            assert HEADER_TIMEOUT - 0.1 < await task - at < HEADER_TIMEOUT + 0.8

        async with aiohttp.ClientSession() as http:
            # a connection idle after its answer is closed at the keep-alive timeout
            reader, writer = await sockets.connect()
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answered = await reader.readuntil(b'{"status":"ok"}')
            assert answered.startswith(b"HTTP/1.1 200 OK\r\n")
            idle_since = time.monotonic()
            assert await read_until_closed(reader) == b""
            assert KEEPALIVE_TIMEOUT - 0.2 < time.monotonic() - idle_since < KEEPALIVE_TIMEOUT + 0.8

            # and the proxy still does its work
            session = await new_session(http, base)
            form = aiohttp.FormData()
            form.add_field("session_id", session["session_id"])
            form.add_field("file", jpeg(), filename="photo.jpg", content_type="image/jpeg")
            async with http.post(base + "/v1/images", data=form,
                                 headers={"X-Upload-Token": session["upload_token"]}) as response:
                assert response.status == 201, await response.text()
            async with http.post(base + "/v1/chat/completions",
                                 json=elevenlabs_body(session, conversation("What is this?"))) as response:
                assert response.status == 200
                assert (await response.read()).endswith(b"data: [DONE]\n\n")
            async with http.get(base + "/metrics") as response:
                exposition = await response.text()
        assert open_files(process) < 64
    assert refused_total(exposition, "too_many_connections") >= len(refused)
    assert refused_total(exposition, "no_request") >= MAX_CONNECTIONS
    assert re.search(r"^glimpse_open_connections \d", exposition, re.MULTILINE)


async def test_a_stalled_upload_is_closed_after_the_body_timeout_and_nothing_is_stored(tmp_path: Path) -> None:
    async with glimpse(tmp_path) as (_, base), Sockets(base) as sockets:
        async with aiohttp.ClientSession() as http:
            session = await new_session(http, base)
        head, body = multipart_upload(session)

        reader, writer = await sockets.connect()
        writer.write(head + body[: len(body) // 2])
        stalled = time.monotonic()
        received = await read_until_closed(reader)
        assert BODY_TIMEOUT - 0.1 < time.monotonic() - stalled < BODY_TIMEOUT + 0.8
        assert received == b"" or received.startswith(b"HTTP/1.1 408 "), received
        assert stored_images(tmp_path) == []

        # a slow but steady upload (pauses shorter than the timeout, longer than it in total) still works
        reader, writer = await sockets.connect()
        writer.write(head)
        started = time.monotonic()
        for index in range(5):
            writer.write(body[index * len(body) // 5: (index + 1) * len(body) // 5])
            await asyncio.sleep(BODY_TIMEOUT * 0.6)
        status_line = await reader.readline()
        assert status_line.startswith(b"HTTP/1.1 201 "), status_line
        assert time.monotonic() - started > BODY_TIMEOUT * 2
        assert len(stored_images(tmp_path)) == 1


async def test_a_long_sse_stream_outlasts_every_connection_timeout(tmp_path: Path) -> None:
    fake, fake_url = await asyncio.to_thread(start_fake_upstream, 0.6)
    try:
        async with glimpse(tmp_path, fake_url) as (_, base), aiohttp.ClientSession() as http:
            started = time.monotonic()
            async with http.post(base + "/v1/chat/completions",
                                 json=elevenlabs_body("s", conversation("Tell me slowly"))) as response:
                assert response.status == 200
                streamed = await response.read()
            elapsed = time.monotonic() - started
    finally:
        await asyncio.to_thread(fake.stop)
    assert streamed.endswith(b"data: [DONE]\n\n") and b'"finish_reason": "stop"' in streamed
    assert elapsed > KEEPALIVE_TIMEOUT + 1, elapsed  # longer than each timeout, by a margin


@contextlib.asynccontextmanager
async def guarded(handler: Callable[[web.Request], Awaitable[web.Response]], **limits: str) -> AsyncIterator[int]:
    """A bare app with one route, `POST /`, behind the connection guard in this process; yields its port."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[SETTINGS] = Settings.load(env={f"GLIMPSE_{name.upper()}": value for name, value in limits.items()})
    app[METRICS] = Metrics()
    app.router.add_post("/", handler)
    runner, port = await start_server(app, "127.0.0.1", 0)
    try:
        yield port
    finally:
        await runner.cleanup()


async def test_a_body_the_app_has_not_read_yet_outlasts_the_body_timeout() -> None:
    """A handler that reads the body late: aiohttp stops reading the socket once its buffer is full, and the caller,
    who cannot send, is not the slow one. The body arrives whole after several body timeouts. (The timeout is a whole
    second: caller and proxy share this process's event loop, and a pause of the whole process, a garbage collection
    late in the suite, counts against the caller while the body flows.)"""
    body = bytes(4 * 1024 * 1024)  # well past what aiohttp buffers before it pauses the socket

    async def late_reader(request: web.Request) -> web.Response:
        await asyncio.sleep(3 * BODY_TIMEOUT)
        return web.json_response({"read": len(await request.read())})

    async with guarded(late_reader, body_timeout_seconds=str(BODY_TIMEOUT)) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
            received = await read_until_closed(reader)
        finally:
            writer.transport.abort()
    assert received.startswith(b"HTTP/1.1 200 "), received[:200]
    assert json.loads(received.partition(b"\r\n\r\n")[2]) == {"read": len(body)}


async def test_the_keepalive_timeout_reaches_every_connection() -> None:
    """The runner's protocol options (`app.protocol_options`) are those the guard's connections get."""

    async def answer(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async with guarded(answer, keepalive_timeout_seconds="0.5", header_timeout_seconds="5") as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
            answered = time.monotonic()
            received = await read_until_closed(reader)
        finally:
            writer.transport.abort()
    assert received.startswith(b"HTTP/1.1 200 ") and received.endswith(b"ok"), received
    assert 0.4 < time.monotonic() - answered < 2.0  # the keep-alive timeout, not the header timeout's 5 s


def test_the_cap_stays_below_the_descriptor_limit(caplog: pytest.LogCaptureFixture) -> None:
    assert connection_cap(0, 256) == (256 - FD_RESERVE) // 2  # each stream may hold an upstream connection too
    assert connection_cap(0, 1_048_576) == DEFAULT_CAP  # a container's million descriptors: memory bounds it
    assert connection_cap(MAX_CONNECTIONS, 256) == MAX_CONNECTIONS
    with caplog.at_level(logging.WARNING, logger="glimpse.web.connections"):
        assert connection_cap(5000, 256) == 256 - FD_RESERVE
    assert [record.getMessage() for record in caplog.records] == [
        f"GLIMPSE_MAX_CONNECTIONS=5000 leaves too few of the 256 file descriptors RLIMIT_NOFILE allows: using "
        f"{256 - FD_RESERVE}"]



async def answer_ok(request: web.BaseRequest) -> web.Response:
    return web.Response(text="ok")


class Peer:
    """A transport as far as the per-address cap reads it."""

    def __init__(self, host: str) -> None:
        self.host = host

    def get_extra_info(self, name: str) -> object:
        return (self.host, 40000) if name == "peername" else None


async def test_the_cap_per_address() -> None:
    assert per_address_cap(0, 10_000) == 256 and per_address_cap(0, 3) == 1  # a sixteenth, at most 256, at least 1
    assert per_address_cap(0, 1000) == 62 and per_address_cap(0, 4096) == 256 and per_address_cap(0, 4112) == 256
    assert per_address_cap(50, 10_000) == 50 and per_address_cap(500, 100) == 100  # never above the whole cap
    settings = Settings.load(env={"GLIMPSE_MAX_CONNECTIONS": "400", "GLIMPSE_TRUSTED_PROXIES": "10.0.0.0/8"})
    limits = Limits.from_settings(settings)
    assert (limits.max_connections, limits.address_cap) == (400, 25)
    assert limits.trusted_proxies == parse_networks(["10.0.0.0/8"])

    metrics = Metrics()
    connections = Connections(web.Server(answer_ok), Limits(400, 10, 10, 2, parse_networks(["10.0.0.0/8"])),
                              metrics, asyncio.get_running_loop(), {})
    admit = connections.admit
    assert admit(Peer("198.51.100.7"), False) == (True, "198.51.100.7")
    assert admit(Peer("::ffff:198.51.100.7"), False) == (True, "198.51.100.7")
    assert admit(Peer("198.51.100.7"), False) == (False, None)
    assert admit(Peer("198.51.100.7"), True) == (True, None)  # a probe's reserved place
    # one host's IPv6 addresses share a /64
    assert admit(Peer("2001:db8::1"), False) == (True, "2001:db8::/64")
    assert admit(Peer("2001:db8::2"), False) == (True, "2001:db8::/64")
    assert admit(Peer("2001:db8::3"), False)[0] is False
    # the ingress in front is not capped here: it limits its own callers
    assert all(admit(Peer("10.1.2.3"), False) == (True, None) for _ in range(10))
    connections.released("198.51.100.7")
    assert admit(Peer("198.51.100.7"), False) == (True, "198.51.100.7")
    assert metrics.registry.get_sample_value("glimpse_connections_refused_total",
                                             {"reason": "too_many_from_address"}) == 2

HELD_FROM_ONE_ADDRESS = 2_000
ADDRESS_TEST_OPEN_FILES = 4096  # the proxy's; this process raises its own soft limit above the sockets it opens
ADDRESS_TEST_CAP = 1000  # total; a sixteenth of it per address by default


async def test_one_address_holding_thousands_of_idle_connections_leaves_room_for_another(
        tmp_path: Path, upstream: FakeOpenAI) -> None:
    """2,000 idle sockets from 127.0.0.1, twice the proxy's whole cap: on main every place was taken and a new caller
    got 503; with the per-address cap 127.0.0.1 holds a sixteenth of the cap and 127.0.0.2 is served."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = HELD_FROM_ONE_ADDRESS + 512
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"RLIMIT_NOFILE's hard limit {hard} is below the {needed} descriptors this test opens")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    process, base = await asyncio.to_thread(
        start_glimpse, tmp_path, max_open_files=ADDRESS_TEST_OPEN_FILES, upstream_base_url=upstream.base_url,
        upstream_api_key="sk-test", max_connections=str(ADDRESS_TEST_CAP), header_timeout_seconds="60",
        keepalive_timeout_seconds="75")
    port = urlsplit(base).port
    writers: list[asyncio.StreamWriter] = []
    try:
        readers = []
        for _ in range(HELD_FROM_ONE_ADDRESS):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            readers.append(reader)
            writers.append(writer)
        answers = await asyncio.gather(*(first_bytes(reader, 3.0) for reader in readers))
        refused = [answer for answer in answers if answer is not None]
        held = len(answers) - len(refused)
        assert held == ADDRESS_TEST_CAP // 16, held
        assert all(answer.startswith(b"HTTP/1.1 503 ") and b"too_many_connections" in answer
                   for answer in refused if answer), refused[:3]

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0)),
                                         timeout=aiohttp.ClientTimeout(total=30)) as http:
            async with http.post(base + "/v1/chat/completions",
                                 json=elevenlabs_body("another-caller", conversation("Am I served?"))) as response:
                assert response.status == 200, await response.text()
                assert (await response.read()).endswith(b"data: [DONE]\n\n")
            async with http.get(base + "/metrics") as response:
                exposition = await response.text()
        assert refused_total(exposition, "too_many_from_address") >= len(refused)
        assert open_files(process) < ADDRESS_TEST_OPEN_FILES // 2
    finally:
        for writer in writers:
            writer.transport.abort()
        code, log = await asyncio.to_thread(process.stop)
        assert "Too many open files" not in log, log[-3000:]
        assert code == 0, log[-3000:]
