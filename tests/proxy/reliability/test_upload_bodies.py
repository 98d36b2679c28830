"""Upload bodies against a real `glimpse serve` (issue 30): an upload is checked before its file is read, its whole
body has a deadline, the bodies being read share a budget, and the picture cap is met before the decode.

Raw sockets on loopback, so that a body can be left unfinished or trickled. Measured before (main at 8ed7ff1): the
49 trickled bogus-token uploads got no answer in 30 s while the proxy held their files (peak RSS 600+ MiB, over the
496 MiB it derived); the trickled upload got no 408; the third upload over the budget was stored (201); of 30
concurrent uploads to one conversation, many got 503 `images_busy`. After: see each test's numbers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from glimpse.sizing import DecodeBudget, memory_limit_mib
from tests.helpers import new_session, upload
from tests.images import jpeg
from tests.processes import Process, start_glimpse

MiB = 1024 * 1024
BOUNDARY = "glimpse-upload-bodies"

pytestmark = pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def form_before_file(session_id: str) -> bytes:
    return (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="session_id"\r\n\r\n{session_id}\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n").encode()


FORM_END = f"\r\n--{BOUNDARY}--\r\n".encode()


def request_head(port_base: str, length: int, token: str | None) -> bytes:
    token_header = f"X-Upload-Token: {token}\r\n" if token else ""
    return (f"POST /v1/images HTTP/1.1\r\nHost: {port_base}\r\n{token_header}"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {length}\r\n\r\n").encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split(" ", 2)[1]), headers, body


class HeldUpload:
    """One upload on its own connection, whose body is sent as the test says."""

    def __init__(self, base: str, session_id: str, token: str | None, file_bytes: int) -> None:
        self.address = base.removeprefix("http://")
        self.before = form_before_file(session_id)
        self.length = len(self.before) + file_bytes + len(FORM_END)
        self.token = token
        self.sent = 0
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter
        self.response: asyncio.Task[tuple[int, dict[str, str], bytes]]

    async def open(self, lead: int = 0) -> None:
        """Send the head, the fields before the file and `lead` bytes of the file (aiohttp's multipart reader
        looks a boundary's length past a part for its end)."""
        host, port = self.address.split(":")
        self.reader, self.writer = await asyncio.open_connection(host, int(port))
        self.response = asyncio.create_task(read_response(self.reader))
        self.writer.write(request_head(self.address, self.length, self.token) + self.before + b"\xff" * lead)
        self.sent = len(self.before) + lead
        await self.writer.drain()

    async def send(self, data: bytes) -> bool:
        """Send `data` unless the answer came first; whether it was sent whole."""
        if self.response.done():
            return False
        self.writer.write(data)
        drain = asyncio.ensure_future(self.writer.drain())
        await asyncio.wait({drain, self.response}, return_when=asyncio.FIRST_COMPLETED)
        if not drain.done():
            drain.cancel()
            return False
        if drain.exception() is not None:
            return False
        self.sent += len(data)
        return True

    def close(self) -> None:
        self.response.cancel()
        self.writer.close()


@pytest.fixture
def glimpse(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Process, str]]:
    settings: dict[str, str] = getattr(request, "param", {})
    process, base = start_glimpse(tmp_path, log_level="WARNING", **settings)
    yield process, base
    process.stop()


async def test_trickled_uploads_without_a_valid_token_are_refused_before_their_files(
        glimpse: tuple[Process, str]) -> None:
    """The issue's attack: 49 uploads of ~10 MiB from one address, their files sent fast but for a last byte
    trickled, half with the token `1.bogus` and half with none. Each is refused (403, 401) while most of its file is
    still unsent, and the proxy's peak RSS stays far under the limit it derives for its pod. Measured after: all 49
    refused within ~1 s, peak ~95 MiB (derived limit 578 MiB, 770 with the turns' budget); before: no answer in 30 s,
    peak past the limit."""
    process, base = glimpse
    limit = memory_limit_mib(DecodeBudget()) * MiB
    file_bytes = 10 * MiB - 64 * 1024
    chunk = b"\xff" * (256 * 1024)
    uploads = [HeldUpload(base, f"attacker-{index}", "1.bogus" if index % 2 else None, file_bytes)
               for index in range(49)]

    async def attack(held: HeldUpload) -> None:
        await held.open()
        left = file_bytes - 1
        while left > 0 and await held.send(chunk[:min(left, len(chunk))]):
            left -= min(left, len(chunk))
        deadline = time.monotonic() + 30
        while not held.response.done() and time.monotonic() < deadline:  # the last byte, never sent
            await asyncio.sleep(1)

    try:
        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(attack(held) for held in uploads)), 90)
        seconds = time.monotonic() - started
        top = peak_rss(process.popen.pid)
        answered = [held for held in uploads if held.response.done()]
        sent = max(held.sent for held in uploads)
        print(f"\n{len(answered)} of 49 trickled uploads answered ({seconds:.1f}s); most bytes sent {sent / MiB:.1f} "
              f"MiB; peak RSS {top / MiB:.0f} MiB (derived limit {limit / MiB:.0f} MiB)")
        assert len(answered) == len(uploads)  # each answered with the end of its body never sent
        answers = [held.response.result() for held in uploads]
    finally:
        for held in uploads:
            held.close()
    for index, (status, _, body) in enumerate(answers):
        error = orjson.loads(body)["error"]
        assert (status, error["code"]) == ((403, "invalid_upload_token") if index % 2 else
                                           (401, "missing_upload_token"))
    assert all(held.sent < held.length for held in uploads)
    assert top < limit
    assert top < 200 * MiB  # no file was buffered: 49 of them would be ~490 MiB


@pytest.mark.parametrize("glimpse", [{"upload_deadline_seconds": "3"}], indirect=True)
async def test_a_trickled_upload_meets_its_deadline(glimpse: tuple[Process, str]) -> None:
    """A byte every half second keeps the idle timeout (30 s) from firing; the whole-body deadline answers 408."""
    _, base = glimpse
    async with aiohttp.ClientSession() as http:
        session = await new_session(http, base)
    held = HeldUpload(base, session["session_id"], session["upload_token"], 64 * 1024)
    await held.open(lead=4096)
    started = time.monotonic()
    try:
        while time.monotonic() - started < 15 and await held.send(b"\xff"):
            await asyncio.sleep(0.5)
        status, _, body = await asyncio.wait_for(held.response, 5)
    finally:
        held.close()
    seconds = time.monotonic() - started
    error = orjson.loads(body)["error"]
    print(f"\ntrickled upload: {status} {error['code']} after {seconds:.1f}s")
    assert (status, error["type"], error["code"]) == (408, "invalid_request_error", "upload_timeout")
    assert "3 seconds" in error["message"]
    assert 2.5 < seconds < 10


IMAGE_MAX = 1 * MiB
ONE_BODY = IMAGE_MAX + 256 * 1024


@pytest.mark.parametrize("glimpse", [{"image_max_bytes": str(IMAGE_MAX),
                                      "upload_body_budget_bytes": str(2 * ONE_BODY)}], indirect=True)
async def test_uploads_past_the_body_budget_get_503_with_retry_after(glimpse: tuple[Process, str]) -> None:
    """Two uploads declaring the largest body take the whole budget while their files are unsent: a third is
    refused at once with 503 and Retry-After; once one of them is gone, the next upload is stored."""
    _, base = glimpse
    async with aiohttp.ClientSession() as http:
        sessions = [await new_session(http, base) for _ in range(3)]
        held = [HeldUpload(base, s["session_id"], s["upload_token"], ONE_BODY - len(form_before_file(s["session_id"]))
                           - len(FORM_END)) for s in sessions[:2]]
        try:
            for one in held:
                await one.open(lead=4096)
            assert all(one.length == ONE_BODY for one in held)
            for _ in range(20):  # until both are checked and reserved (a loaded machine may take a moment)
                refused = await upload(http, base, await new_session(http, base), jpeg(64, 64))
                if refused.status != 201:
                    break
                await asyncio.sleep(0.25)
            body = await refused.json()
            print(f"\nthird upload over the budget: {refused.status} {body['error']['code']} "
                  f"Retry-After {refused.headers.get('Retry-After')}")
            assert (refused.status, body["error"]["code"]) == (503, "uploads_busy")
            assert refused.headers["Retry-After"] == "2"
            async with http.get(base + "/metrics") as response:
                metrics = await response.text()
            values = dict(line.rsplit(" ", 1) for line in metrics.splitlines() if line.startswith("glimpse_upload_bod"))
            assert float(values["glimpse_upload_body_bytes"]) == 2 * ONE_BODY
            assert float(values["glimpse_upload_bodies_refused_total"]) == 1
        finally:
            held[0].close()
        await asyncio.sleep(0.5)  # its reservation is given back when the proxy sees the connection gone
        try:
            stored = await upload(http, base, sessions[2], jpeg(64, 64))
            assert stored.status == 201, await stored.text()
        finally:
            held[1].close()


async def test_concurrent_uploads_past_the_picture_cap_get_400_naming_it(glimpse: tuple[Process, str]) -> None:
    """30 uploads to one conversation at once (the cap is 8): 8 stored, 22 refused with 400 naming the cap before
    any decode, none with 503 `images_busy`."""
    _, base = glimpse
    picture = jpeg(1600, 1200)
    async with aiohttp.ClientSession() as http:
        session = await new_session(http, base)
        responses = await asyncio.gather(*(upload(http, base, session, picture) for _ in range(30)))
        answers = [(response.status, (await response.json()).get("error", {})) for response in responses]
    statuses = sorted(status for status, _ in answers)
    print(f"\n30 uploads over the cap of 8: {statuses}")
    assert statuses == [201] * 8 + [400] * 22
    for status, error in answers:
        if status == 400:
            assert error["code"] == "too_many_images" and "8 images" in error["message"]


async def test_a_large_form_to_ready_or_delete_is_refused_unread(glimpse: tuple[Process, str]) -> None:
    """`POST /v1/images/ready` and `DELETE /v1/images/{id}` take a few fields: a form declaring 8 MiB is refused with
    413 before a byte of it is read (before: aiohttp read it whole, up to an upload's 10.25 MiB, then checked the
    token)."""
    _, base = glimpse
    host, port = base.removeprefix("http://").split(":")
    for method, path in (("POST", "/v1/images/ready"), ("DELETE", "/v1/images/a.jpg")):
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write((f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nX-Upload-Token: 1.bogus\r\n"
                          f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                          f"Content-Length: {8 * MiB}\r\n\r\n").encode() + form_before_file("attacker"))
            await writer.drain()
            status, _, _ = await asyncio.wait_for(read_response(reader), 5)
        finally:
            writer.close()
        assert status == 413, path


CHAT_BODY = 4 * MiB  # GLIMPSE_CHAT_MAX_BODY_BYTES' default
DEFAULT_BODY_BUDGET = 8 * (10 * MiB + 256 * 1024)  # GLIMPSE_UPLOAD_BODY_BUDGET_BYTES' default: 20 chat bodies


class HeldChat(HeldUpload):
    """A chat request on its own connection, its body JSON of CHAT_BODY bytes, sent but for its last byte."""

    def __init__(self, base: str) -> None:  # not the upload's: no form, a chat request's head
        self.address = base.removeprefix("http://")
        self.length = CHAT_BODY
        self.sent = 0

    async def open(self, lead: int = 0) -> None:
        host, port = self.address.split(":")
        self.reader, self.writer = await asyncio.open_connection(host, int(port))
        self.response = asyncio.create_task(read_response(self.reader))
        self.writer.write(f"POST /v1/chat/completions HTTP/1.1\r\nHost: {self.address}\r\nContent-Type: "
                          f"application/json\r\nContent-Length: {self.length}\r\n\r\n".encode())
        await self.writer.drain()


@pytest.mark.parametrize("glimpse", [{"chat_body_deadline_seconds": "3"}], indirect=True)
async def test_slow_chat_bodies_on_an_open_deployment_share_the_body_budget_and_meet_a_deadline(
        glimpse: tuple[Process, str]) -> None:
    """The review's M1: with no custom-LLM key anyone may send chat turns, whose bodies (up to 4 MiB) had no budget
    and no whole-body deadline. 200 of them from one address, sent fast but for a last byte: 20 fit the body budget
    (82 MiB), the rest are refused at once with 503 `request_bodies_busy` and Retry-After, the 20 get 408 at their
    deadline; peak RSS stays under the derived limit. Before: none answered, the bodies held until the idle timeout
    (800 MiB sent)."""
    process, base = glimpse
    limit = memory_limit_mib(DecodeBudget()) * MiB
    chats = [HeldChat(base) for _ in range(200)]
    chunk = b" " * (256 * 1024)

    async def attack(held: HeldChat) -> None:
        await held.open()
        left = CHAT_BODY - 1
        while left > 0 and await held.send(chunk[:min(left, len(chunk))]):
            left -= min(left, len(chunk))
        deadline = time.monotonic() + 12
        while not held.response.done() and time.monotonic() < deadline:  # the last byte, never sent
            await asyncio.sleep(0.25)

    try:
        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(attack(held) for held in chats)), 20)
        seconds = time.monotonic() - started
        top = peak_rss(process.popen.pid)
        answered = [held for held in chats if held.response.done()]
        assert len(answered) == len(chats), f"{len(answered)} of {len(chats)} answered in {seconds:.1f}s"
        answers = [held.response.result() for held in chats]
    finally:
        for held in chats:
            held.close()
    codes = [(status, orjson.loads(body)["error"]["code"]) for status, _, body in answers]
    print(f"\n200 slow chat bodies: {codes.count((503, 'request_bodies_busy'))} refused 503, "
          f"{codes.count((408, 'request_body_timeout'))} 408 ({seconds:.1f}s); peak RSS {top / MiB:.0f} MiB "
          f"(derived limit {limit / MiB:.0f} MiB)")
    held_at_once = DEFAULT_BODY_BUDGET // CHAT_BODY
    assert codes.count((408, "request_body_timeout")) == held_at_once, codes
    assert codes.count((503, "request_bodies_busy")) == len(chats) - held_at_once, codes
    assert all(headers.get("retry-after") == "2" for status, headers, _ in answers if status == 503)
    assert top < limit
    async with aiohttp.ClientSession() as http, http.get(base + "/metrics") as response:
        metrics = await response.text()
    values = dict(line.rsplit(" ", 1) for line in metrics.splitlines() if line.startswith("glimpse_upload_bod"))
    assert float(values["glimpse_upload_body_bytes"]) == 0  # every reservation given back
    assert float(values["glimpse_upload_bodies_refused_total"]) == 0  # uploads only


async def chunked_chat(base: str) -> HeldChat:
    """A chat request with a chunked body (no Content-Length), its first chunk sent and the rest never."""
    held = HeldChat(base)
    host, port = held.address.split(":")
    held.reader, held.writer = await asyncio.open_connection(host, int(port))
    held.response = asyncio.create_task(read_response(held.reader))
    held.writer.write(f"POST /v1/chat/completions HTTP/1.1\r\nHost: {held.address}\r\nContent-Type: "
                      "application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n".encode())
    await held.writer.drain()
    return held


@pytest.mark.parametrize("glimpse", [{"image_max_bytes": str(IMAGE_MAX), "chat_max_body_bytes": str(MiB),
                                      "upload_body_budget_bytes": str(2 * ONE_BODY)}], indirect=True)
async def test_a_chunked_chat_body_reserves_the_largest_and_a_declared_one_its_length(
        glimpse: tuple[Process, str]) -> None:
    """Budget 2.5 MiB, chat bodies at most 1 MiB: two chunked bodies hold 2 MiB, a third is refused 503
    `request_bodies_busy`; a body declaring 1,000 bytes still fits (and is answered: 400, not JSON)."""
    _, base = glimpse
    held = [await chunked_chat(base) for _ in range(2)]
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(20):  # until both are reserved
                async with http.get(base + "/metrics") as response:
                    values = dict(line.rsplit(" ", 1) for line in (await response.text()).splitlines()
                                  if line.startswith("glimpse_upload_body_bytes "))
                if float(values["glimpse_upload_body_bytes"]) == 2 * MiB:
                    break
                await asyncio.sleep(0.25)
            third = await chunked_chat(base)
            try:
                status, headers, body = await asyncio.wait_for(third.response, 5)
            finally:
                third.close()
            assert (status, orjson.loads(body)["error"]["code"]) == (503, "request_bodies_busy")
            assert headers["retry-after"] == "2"
            async with http.post(base + "/v1/chat/completions", data=b"x" * 1000,
                                 headers={"Content-Type": "application/json"}) as response:
                assert response.status == 400, await response.text()
    finally:
        for one in held:
            one.close()
