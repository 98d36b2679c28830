"""Memory of turns against a real `glimpse serve` (sticky policy, inline delivery): the pictures built into upstream
requests stay within their budget, and the data: URL cache lets go of conversations that expired.

Measured on the code before the budget (issue 30): 20 concurrent 8-picture turns peaked at 548 MiB with the small
pod's settings below (derived limit 228 MiB) and at 897 MiB on the defaults (derived limit then 496 MiB; 688 with the
turns' budget, 770 with the upload bodies' too);
80 expired conversations left the cache's 64 MiB resident. The assertions are on bytes and counts, the time bounds
generous: the machine may be loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import json
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from glimpse.conversation.payload_memory import PAYLOAD_COPIES
from glimpse.sizing import DecodeBudget, MiB, TurnMemoryBudget, memory_limit_mib
from tests.helpers import conversation, elevenlabs_body, new_session, upload
from tests.processes import start_glimpse
from tests.proxy.reliability.test_memory import peak, reset_peak, rss

pytestmark = pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")

CONVERSATIONS = 20
PICTURES = 8  # GLIMPSE_IMAGES_PER_CONVERSATION's default
# A small pod: decodes (32 MiB + 2 uploads of 2 MiB), 24 MiB of turn payloads, an 8 MiB data: URL cache.
DECODES = DecodeBudget(memory_bytes=32 * MiB, concurrency=1, queue=1, max_upload_bytes=2 * MiB)
TURNS = TurnMemoryBudget(payload_bytes=24 * MiB, data_url_cache_bytes=8 * MiB)
LIMIT = memory_limit_mib(DECODES, turns=TURNS) * MiB  # 96 + 36 + 32 + 64 = 228 MiB
SMALL_POD = {"image_decode_memory_bytes": str(DECODES.memory_bytes), "image_decode_concurrency": "1",
            "image_decode_queue": "1", "image_max_bytes": str(DECODES.max_upload_bytes),
            "turn_payload_memory_bytes": str(TURNS.payload_bytes),
            "image_data_url_cache_bytes": str(TURNS.data_url_cache_bytes),
            "image_decode_wait_seconds": "60", "turn_payload_wait_seconds": "120", "log_level": "WARNING"}
# The defaults but for the waits: the turns may take long to get their share on a loaded machine, not 503.
DEFAULTS = {"image_decode_wait_seconds": "60", "turn_payload_wait_seconds": "120", "log_level": "WARNING"}
# settings, the derived limit they give, the pictures' size (the default case: 2.4 MB uploads, 1.3 MB re-encoded)
CASES = {"small-pod": (SMALL_POD, LIMIT, (1600, 1200)),
         "defaults": (DEFAULTS, memory_limit_mib(DecodeBudget(), turns=TurnMemoryBudget()) * MiB, (2048, 1536))}
CHUNK = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o-mini",
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": "I see them."}, "finish_reason": None}]}
LAST = {**CHUNK, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}


@functools.cache
def noisy_photo(width: int = 1600, height: int = 1200) -> bytes:
    """Noise, so it does not compress away: at 1600x1200 about 820 KB once the proxy has re-encoded it (1.1 MB as a
    data: URL)."""
    noise = Image.frombytes("L", (width, height), os.urandom(width * height)).point(lambda v: v * 96 // 256)
    rgb = Image.merge("RGB", (noise, noise.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                              noise.transpose(Image.Transpose.FLIP_TOP_BOTTOM)))
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=95)
    return out.getvalue()


class SlowUpstream:
    """An LLM that reads the whole request, takes `think` seconds, then streams one sentence. It records, for each
    request, how many bytes it was and a digest of its picture message (what the provider's prompt cache keys on)."""

    def __init__(self, think: float = 0.3) -> None:
        self.think = think
        self.requests: list[tuple[int, int, str]] = []  # (body bytes, pictures, digest of the picture message)
        self.app = web.Application(client_max_size=256 * MiB)
        self.app.router.add_post("/v1/chat/completions", self._chat)
        self.runner = web.AppRunner(self.app, access_log=None)
        self.url = ""

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/v1"

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        messages = json.loads(raw)["messages"]
        pictured = [m for m in messages if isinstance(m.get("content"), list)]
        parts = [p for m in pictured for p in m["content"] if p.get("type") == "image_url"]
        digest = hashlib.sha256(json.dumps(pictured).encode()).hexdigest()
        self.requests.append((len(raw), len(parts), digest))
        del raw, messages, pictured, parts
        await asyncio.sleep(self.think)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for chunk in (CHUNK, LAST):
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response


@contextlib.asynccontextmanager
async def slow_upstream() -> AsyncIterator[SlowUpstream]:
    upstream = SlowUpstream()
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.runner.cleanup()


@pytest.fixture(scope="module")
def photo() -> bytes:
    data = noisy_photo()
    assert len(data) < DECODES.max_upload_bytes
    return data


async def metric(http: aiohttp.ClientSession, base: str, name: str) -> float:
    async with http.get(base + "/metrics") as response:
        text = await response.text()
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


async def picture_conversations(http: aiohttp.ClientSession, base: str, photo: bytes, count: int,
                                pictures: int) -> list[dict[str, Any]]:
    """`count` sessions with `pictures` uploads each, two uploads at a time (the decodes' concurrency + queue)."""
    sessions = [await new_session(http, base) for _ in range(count)]
    gate = asyncio.Semaphore(2)

    async def one(session: dict[str, Any]) -> int:
        async with gate:
            return (await upload(http, base, session, photo)).status

    statuses = await asyncio.gather(*(one(session) for session in sessions for _ in range(pictures)))
    assert statuses == [201] * (count * pictures)
    return sessions


async def turn(http: aiohttp.ClientSession, base: str, session: dict[str, Any], *said: str) -> tuple[int, str]:
    async with http.post(base + "/v1/chat/completions",
                         json=elevenlabs_body(session, conversation(*said))) as response:
        return response.status, await response.text()


@pytest.mark.parametrize("case", CASES)
async def test_concurrent_picture_turns_stay_under_the_derived_limit(tmp_path: Path, case: str) -> None:
    settings, limit, size = CASES[case]
    photo = noisy_photo(*size)
    async with slow_upstream() as upstream:
        process, base = await asyncio.to_thread(start_glimpse, tmp_path, upstream_base_url=upstream.url,
                                                upstream_api_key="sk-test", **settings)
        pid = process.popen.pid
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
                sessions = await picture_conversations(http, base, photo, CONVERSATIONS, PICTURES)
                await asyncio.sleep(0.5)
                baseline = rss(pid)
                reset_peak(pid)
                start = time.monotonic()
                answers = await asyncio.gather(*(turn(http, base, session, "What do you see?")
                                                 for session in sessions))
                seconds = time.monotonic() - start
                top = peak(pid)
                assert [status for status, _ in answers] == [200] * CONVERSATIONS, answers[0][1][:500]
                assert all("I see them." in text for _, text in answers)
                body_bytes = sum(size for size, _, _ in upstream.requests)
                assert [pictures for _, pictures, _ in upstream.requests] == [PICTURES] * CONVERSATIONS
                # What the old code held at once: every turn's request built together (data: URLs, body, socket
                # buffer: measured 3.0 times the bodies), past the limit (897 MiB measured against 770 on the defaults).
                assert baseline + PAYLOAD_COPIES * body_bytes > limit
                print(f"\n{CONVERSATIONS} turns x {PICTURES} pictures, {body_bytes / CONVERSATIONS / MiB:.1f} MiB "
                      f"per request, in {seconds:.1f}s: baseline {baseline / MiB:.0f} MiB, peak {top / MiB:.0f} MiB, "
                      f"derived limit {limit / MiB:.0f} MiB")
                assert top < limit
                assert await metric(http, base, "glimpse_turn_payload_bytes") == 0

                # The same conversation's next turns send the same picture bytes: the prompt cache still hits.
                for said in (("What do you see?", "I see them.", "And now?"),
                             ("What do you see?", "I see them.", "And now?", "Fine.", "Again?")):
                    assert (await turn(http, base, sessions[0], *said))[0] == 200
                # (every conversation has the same picture: one digest for all of them)
                assert len({digest for _, _, digest in upstream.requests}) == 1
        finally:
            code, log = await asyncio.to_thread(process.stop)
            assert code == 0, log[-3000:]


@pytest.mark.parametrize("store", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def test_expired_conversations_leave_no_pictures_in_memory(tmp_path: Path, photo: bytes, store: str,
                                                                 request: pytest.FixtureRequest) -> None:
    count, ttl = 80, 20
    store_url = "memory://" if store == "memory" else request.getfixturevalue("redis_url")
    settings = {**SMALL_POD, "image_data_url_cache_bytes": str(64 * MiB), "image_ttl_seconds": str(ttl),
                "sweep_interval_seconds": "1", "store_url": store_url}
    async with slow_upstream() as upstream:
        upstream.think = 0
        process, base = await asyncio.to_thread(start_glimpse, tmp_path, upstream_base_url=upstream.url,
                                                upstream_api_key="sk-test", **settings)
        pid = process.popen.pid
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
                warm = await picture_conversations(http, base, photo, 1, 1)
                assert (await turn(http, base, warm[0], "Hello"))[0] == 200
                await asyncio.sleep(0.5)
                baseline = rss(pid)
                sessions = await picture_conversations(http, base, photo, count, 1)
                answers = await asyncio.gather(*(turn(http, base, session, "What is this?") for session in sessions))
                assert [status for status, _ in answers] == [200] * count
                cached = await metric(http, base, "glimpse_data_url_cache_bytes")
                held = rss(pid)
                assert cached > 32 * MiB  # most of the 80 pictures (1.1 MB each as data: URLs) are cached
                deadline = time.monotonic() + ttl + 60
                while time.monotonic() < deadline:
                    files = [path for path in (tmp_path / "data" / "images").rglob("*") if path.is_file()] \
                        if (tmp_path / "data" / "images").exists() else []
                    if await metric(http, base, "glimpse_data_url_cache_bytes") == 0 and not files:
                        break
                    await asyncio.sleep(1)
                await asyncio.sleep(1)
                after = rss(pid)
                print(f"\n{count} conversations ({store}): baseline {baseline / MiB:.0f} MiB, with the cache full "
                      f"{held / MiB:.0f} MiB (cache {cached / MiB:.0f} MiB), after expiry {after / MiB:.0f} MiB")
                assert await metric(http, base, "glimpse_data_url_cache_bytes") == 0
                assert after < baseline + 24 * MiB  # the old code kept +71 MiB
        finally:
            code, log = await asyncio.to_thread(process.stop)
            assert code == 0, log[-3000:]
