"""Chat turn limits against a real `glimpse serve` on loopback (issue 30): ElevenLabs, showing the custom-LLM key,
is never limited per address but per conversation, and the turns in flight are capped; callers without the key are
still limited per address."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import conversation, elevenlabs_body
from tests.processes import start_fake_upstream, start_glimpse

KEY = "custom-llm-key-for-the-turn-limit-tests"
KEYED = {"Authorization": f"Bearer {KEY}"}
# The product's defaults (tests/processes.py turns rate limits off unless a test sets them)
CHAT_RATE = {"chat_rate_per_minute": "600", "chat_rate_burst": "100"}
CONVERSATION_RATE = {"conversation_rate_per_minute": "60", "conversation_rate_burst": "20"}


@contextlib.asynccontextmanager
async def glimpse(workdir: Path, chunk_delay: float = 0.0, **settings: str) -> AsyncIterator[str]:
    fake, fake_url = await asyncio.to_thread(start_fake_upstream, chunk_delay)
    try:
        process, base = await asyncio.to_thread(start_glimpse, workdir, upstream_base_url=fake_url,
                                                upstream_api_key="sk-test", **settings)
        try:
            yield base
        finally:
            code, log = await asyncio.to_thread(process.stop)
            assert code == 0, log[-3000:]
    finally:
        await asyncio.to_thread(fake.stop)


async def turn(http: aiohttp.ClientSession, base: str, conversation_id: str,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A turn as ElevenLabs sends it: its conversation's id as the `system__conversation_id` dynamic variable, the
    same `user_id` for every conversation (elevenlabs_body's)."""
    body = elevenlabs_body(None, conversation("Hello?"),
                           dynamic_variables={"system__conversation_id": conversation_id})
    async with http.post(base + "/v1/chat/completions", headers=headers, json=body) as response:
        return response.status, dict(response.headers), await response.read()


async def turns(base: str, conversation_ids: list[str], *, in_flight: int,
                headers: dict[str, str] | None = None) -> list[tuple[int, dict[str, str], bytes]]:
    """One turn per id, `in_flight` at a time, from 127.0.0.1."""
    gate = asyncio.Semaphore(in_flight)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight),
                                     timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def one(conversation_id: str) -> tuple[int, dict[str, str], bytes]:
            async with gate:
                return await turn(http, base, conversation_id, headers)

        return await asyncio.gather(*(one(conversation_id) for conversation_id in conversation_ids))


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Where the buckets are: in the process (memory store), or in Redis (shared by replicas)."""
    return "memory://" if request.param == "memory" else str(request.getfixturevalue("redis_url"))


def error_of(body: bytes) -> dict[str, Any]:
    return dict(json.loads(body)["error"])


async def test_keyed_turns_from_one_address_are_never_limited_per_address(tmp_path: Path, store_url: str) -> None:
    """ElevenLabs' egress address, 600 turns of 600 conversations at 50 in flight: on main 498 of them were 429."""
    async with glimpse(tmp_path, custom_llm_key=KEY, store_url=store_url, **CHAT_RATE, **CONVERSATION_RATE) as base:
        started = time.monotonic()
        answers = await turns(base, [f"el-conversation-{n}" for n in range(600)], in_flight=50, headers=KEYED)
        elapsed = time.monotonic() - started
        statuses = [status for status, _, _ in answers]
        assert statuses.count(200) == 600, {status: statuses.count(status) for status in set(statuses)}
        assert all(body.endswith(b"data: [DONE]\n\n") for _, _, body in answers)
        assert elapsed < 120, elapsed

        # without the key the per-address limit still applies: its bucket (burst 100) runs dry past 100 at once
        unkeyed = await turns(base, [f"anonymous-{n}" for n in range(130)], in_flight=50,
                              headers={"Authorization": "Bearer not-the-key"})
        unkeyed_statuses = [status for status, _, _ in unkeyed]
        assert set(unkeyed_statuses) == {401, 429}, unkeyed_statuses
        refused = next(body for status, _, body in unkeyed if status == 429)
        assert "from your address" in error_of(refused)["message"]


async def test_one_conversation_past_its_rate_gets_429_and_the_others_go_on(tmp_path: Path, store_url: str) -> None:
    async with glimpse(tmp_path, custom_llm_key=KEY, store_url=store_url, **CHAT_RATE, **CONVERSATION_RATE) as base:
        started = time.monotonic()
        answers = await turns(base, ["chatty"] * 40, in_flight=1, headers=KEYED)
        elapsed = time.monotonic() - started
        statuses = [status for status, _, _ in answers]
        # the burst (20), and one a second refilled while the 40 were asked
        assert 20 <= statuses.count(200) <= 20 + int(elapsed) + 1, (statuses, elapsed)
        assert statuses[:20] == [200] * 20 and statuses.count(429) >= 40 - 20 - int(elapsed) - 1, statuses
        _, headers, body = next(answer for answer in answers if answer[0] == 429)
        assert int(headers["Retry-After"]) >= 1
        error = error_of(body)
        assert error["code"] == "rate_limit_exceeded" and "in this conversation" in error["message"], error
        # the same address, another conversation: served
        quiet = await turns(base, ["quiet"], in_flight=1, headers=KEYED)
        assert quiet[0][0] == 200


async def test_conversations_sharing_a_user_id_or_claiming_a_session_id_are_limited_apart(tmp_path: Path) -> None:
    """The review's S3: the bucket was keyed on the page's session id, else `user_id` (the same for every
    conversation of a user): one chatty conversation emptied the bucket of the others, and anyone could claim a
    victim's session id. It is ElevenLabs' conversation id now."""
    async with glimpse(tmp_path, custom_llm_key=KEY, **CHAT_RATE, **CONVERSATION_RATE) as base:
        chatty = await turns(base, ["chatty"] * 25, in_flight=1, headers=KEYED)
        assert [status for status, _, _ in chatty].count(429) >= 4
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            # another conversation of the same user (elevenlabs_body's user_id), naming the chatty one's session id
            for _ in range(5):
                body = elevenlabs_body("chatty", conversation("Hello?"),
                                       dynamic_variables={"system__conversation_id": "another-one"})
                assert body["user_id"] == "el-user-42"
                async with http.post(base + "/v1/chat/completions", headers=KEYED, json=body) as response:
                    assert response.status == 200, await response.text()
            # turns naming no conversation but the shared user_id: no bucket (the cap in flight still applies)
            for _ in range(25):
                async with http.post(base + "/v1/chat/completions", headers=KEYED,
                                     json=elevenlabs_body(None, conversation("Hello?"))) as response:
                    assert response.status == 200, await response.text()


async def test_turns_past_the_cap_in_flight_get_503_with_retry_after(tmp_path: Path) -> None:
    """Slow streams (20 chunks 0.1 s apart) hold their places; 20 turns at once against a cap of 5."""
    async with glimpse(tmp_path, chunk_delay=0.1, custom_llm_key=KEY, chat_max_turns_in_flight="5") as base:
        answers = await turns(base, [f"busy-{n}" for n in range(20)], in_flight=20, headers=KEYED)
        statuses = [status for status, _, _ in answers]
        assert statuses.count(200) >= 5 and statuses.count(503) >= 10, statuses
        assert set(statuses) == {200, 503}, statuses
        _, headers, body = next(answer for answer in answers if answer[0] == 503)
        assert headers["Retry-After"] == "1"
        assert error_of(body)["code"] == "turns_busy"
        # the places are given back: later turns are served
        later = await turns(base, [f"later-{n}" for n in range(5)], in_flight=5, headers=KEYED)
        assert [status for status, _, _ in later] == [200] * 5


@pytest.mark.parametrize("keyed_deployment", [False, True])
async def test_turns_without_the_key_are_limited_per_address(tmp_path: Path, keyed_deployment: bool) -> None:
    """A deployment without a custom-LLM key, or a caller not showing it: the per-address limit, whatever the
    conversation (a fresh conversation per turn buys nothing)."""
    key = {"custom_llm_key": KEY} if keyed_deployment else {}
    async with glimpse(tmp_path, chat_rate_per_minute="60", chat_rate_burst="5", **CONVERSATION_RATE, **key) as base:
        started = time.monotonic()
        answers = await turns(base, [f"fresh-{n}" for n in range(10)], in_flight=10)
        elapsed = time.monotonic() - started
        statuses = [status for status, _, _ in answers]
        passed = statuses.count(401 if keyed_deployment else 200)
        assert set(statuses) == {401 if keyed_deployment else 200, 429}, statuses
        assert 5 <= passed <= 5 + int(elapsed) + 1, (statuses, elapsed)
        # the key, shown: not limited per address
        if keyed_deployment:
            keyed = await turns(base, [f"keyed-{n}" for n in range(10)], in_flight=1, headers=KEYED)
            assert [status for status, _, _ in keyed] == [200] * 10
