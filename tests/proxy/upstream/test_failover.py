"""Several upstreams, in order: a turn moves to the next one on a connection error, 429, 5xx or no first token
within GLIMPSE_FIRST_TOKEN_TIMEOUT, while nothing has reached the caller; never after. A circuit breaker skips an
upstream that keeps failing. The answer names the upstream that served it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import Proxy, StartProxy
from tests.fakes.openai_upstream import DEFAULT_WORDS, Behaviour, FakeOpenAI
from tests.helpers import contents, conversation, elevenlabs_body, parse_sse

CLOSED_PORT = "http://127.0.0.1:9/v1"  # nothing listens there: connection refused


@pytest.fixture
async def backup() -> AsyncIterator[FakeOpenAI]:
    fake = await FakeOpenAI().start()
    fake.default = Behaviour(words=["Backup ", "here", "."])
    yield fake
    await fake.stop()


def upstreams(*entries: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"name": name, "base_url": url, "api_key": f"sk-{name}"} for name, url in entries]


async def turn(proxy: Proxy, http: aiohttp.ClientSession, **body: Any) -> tuple[int, dict[str, str], bytes]:
    request = {**elevenlabs_body("sess-1", conversation("What is this?")), **body}
    started = time.monotonic()
    async with http.post(proxy.v1 + "/chat/completions", json=request) as response:
        raw = await response.read()
        headers = dict(response.headers)
    headers["elapsed"] = f"{time.monotonic() - started:.3f}"
    return response.status, headers, raw


def failovers(proxy: Proxy, upstream: str, outcome: str) -> float:
    return proxy.metrics.registry.get_sample_value(
        "glimpse_upstream_failovers_total", {"upstream": upstream, "outcome": outcome}) or 0.0


@pytest.mark.parametrize(("fault", "outcome"), [(Behaviour(status=503), "error"),
                                                (Behaviour(status=429, retry_after="0"), "rate_limited"),
                                                (Behaviour(status=401), "error")])
async def test_a_failing_primary_hands_the_turn_to_the_next(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                           backup: FakeOpenAI, http: aiohttp.ClientSession,
                                                           fault: Behaviour, outcome: str) -> None:
    proxy = await start_proxy(upstreams=upstreams(("primary", upstream.base_url), ("backup", backup.base_url)))
    upstream.next.append(fault)
    status, headers, raw = await turn(proxy, http)
    assert status == 200 and headers["X-Glimpse-Upstream"] == "backup"
    assert contents(parse_sse(raw)) == "Backup here."
    assert len(upstream.chat_requests) == 1 and len(backup.chat_requests) == 1  # no SDK retry before failing over
    assert backup.chat_requests[0].headers["Authorization"] == "Bearer sk-backup"
    assert failovers(proxy, "primary", outcome) == 1


async def test_an_unreachable_primary_costs_no_silence(start_proxy: StartProxy, backup: FakeOpenAI,
                                                       http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(upstreams=upstreams(("primary", CLOSED_PORT), ("backup", backup.base_url)))
    status, headers, _raw = await turn(proxy, http)
    assert status == 200 and headers["X-Glimpse-Upstream"] == "backup"
    assert float(headers["elapsed"]) < 1.0


async def test_no_first_token_in_time_moves_on(start_proxy: StartProxy, upstream: FakeOpenAI, backup: FakeOpenAI,
                                               http: aiohttp.ClientSession) -> None:
    """The primary would answer after 2 s: after the 0.3 s first-token timeout the backup answers instead."""
    proxy = await start_proxy(upstreams=upstreams(("primary", upstream.base_url), ("backup", backup.base_url)),
                              first_token_timeout=0.3)
    upstream.next.append(Behaviour(first_byte_delay=2.0))
    status, headers, raw = await turn(proxy, http)
    assert status == 200 and headers["X-Glimpse-Upstream"] == "backup"
    assert contents(parse_sse(raw)) == "Backup here."
    assert 0.3 <= float(headers["elapsed"]) < 1.5
    assert failovers(proxy, "primary", "timeout") == 1


async def test_the_last_upstream_gets_the_whole_first_byte_budget(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                                  http: aiohttp.ClientSession) -> None:
    """With nothing to fail over to, a slow first token is waited for (up to GLIMPSE_UPSTREAM_FIRST_BYTE_TIMEOUT)."""
    proxy = await start_proxy(first_token_timeout=0.2)
    upstream.next.append(Behaviour(first_byte_delay=0.6))
    status, headers, raw = await turn(proxy, http)
    assert status == 200 and contents(parse_sse(raw)) == "".join(DEFAULT_WORDS)
    assert headers["X-Glimpse-Upstream"] == "default"


async def test_a_refused_request_is_the_callers_not_a_reason_to_fail_over(
        start_proxy: StartProxy, upstream: FakeOpenAI, backup: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(upstreams=upstreams(("primary", upstream.base_url), ("backup", backup.base_url)))
    upstream.next.append(Behaviour(status=400))
    status, _, _raw = await turn(proxy, http)
    assert status == 400 and not backup.chat_requests


async def test_a_stream_broken_after_its_first_token_is_never_replayed_elsewhere(
        start_proxy: StartProxy, upstream: FakeOpenAI, backup: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(upstreams=upstreams(("primary", upstream.base_url), ("backup", backup.base_url)))
    upstream.next.append(Behaviour(drop_after=2))
    status, headers, raw = await turn(proxy, http)
    payloads = parse_sse(raw)
    assert status == 200 and headers["X-Glimpse-Upstream"] == "primary"
    assert "stream_interrupted" in payloads[-2] and payloads[-1] == "[DONE]"
    assert not backup.chat_requests


async def test_every_upstream_failing_is_one_clear_error(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                         http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(upstreams=upstreams(("primary", CLOSED_PORT), ("backup", upstream.base_url)))
    upstream.next.append(Behaviour(status=503))
    status, _, raw = await turn(proxy, http)
    assert status == 502 and b"upstream" in raw.lower()


async def test_the_breaker_skips_a_primary_that_keeps_failing_then_tries_it_again(
        start_proxy: StartProxy, upstream: FakeOpenAI, backup: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(upstreams=upstreams(("primary", upstream.base_url), ("backup", backup.base_url)),
                              upstream_breaker_failures=2, upstream_breaker_cooldown_seconds=0.5)
    upstream.next.extend([Behaviour(status=500), Behaviour(status=500)])
    for _ in range(4):
        status, headers, _ = await turn(proxy, http)
        assert status == 200 and headers["X-Glimpse-Upstream"] == "backup"
    assert len(upstream.chat_requests) == 2  # open after two failures: the next two turns went straight on
    await asyncio.sleep(0.6)
    status, headers, _ = await turn(proxy, http)
    assert status == 200 and headers["X-Glimpse-Upstream"] == "primary"  # half-open, tried, closed again
    status, headers, _ = await turn(proxy, http)
    assert headers["X-Glimpse-Upstream"] == "primary"


async def test_a_turn_the_primary_answers_does_not_use_up_the_backups_trial(
        start_proxy: StartProxy, upstream: FakeOpenAI, backup: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    """Both breakers opened; after the cool-down the primary answers a turn without reaching the backup. The
    backup's half-open trial is still there for the next turn the primary fails."""
    proxy = await start_proxy(upstreams=upstreams(("primary", upstream.base_url), ("backup", backup.base_url)),
                              upstream_breaker_failures=1, upstream_breaker_cooldown_seconds=0.3)
    upstream.next.append(Behaviour(status=503))
    backup.next.append(Behaviour(status=503))
    status, _, _ = await turn(proxy, http)
    assert status == 502
    await asyncio.sleep(0.35)
    status, headers, _ = await turn(proxy, http)
    assert status == 200 and headers["X-Glimpse-Upstream"] == "primary"
    upstream.next.append(Behaviour(status=503))
    status, headers, _ = await turn(proxy, http)
    assert status == 200 and headers["X-Glimpse-Upstream"] == "backup"


async def models(proxy: Proxy, http: aiohttp.ClientSession) -> tuple[int, dict[str, Any]]:
    async with http.get(proxy.v1 + "/models") as response:
        return response.status, await response.json()


async def test_the_model_list_fails_over_to_a_healthy_backup(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                             backup: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    """`GET /v1/models` walks the upstreams as a turn does: a primary that is down or answers 5xx costs the caller
    nothing while the backup is healthy."""
    backup.models = ["backup-model"]
    down = await start_proxy(upstreams=upstreams(("primary", CLOSED_PORT), ("backup", backup.base_url)))
    for _ in range(3):
        status, body = await models(down, http)
        assert status == 200 and [m["id"] for m in body["data"]] == ["backup-model"]
    upstream.models_status = 503
    failing = await start_proxy(upstreams=upstreams(("primary", upstream.base_url), ("backup", backup.base_url)))
    status, body = await models(failing, http)
    assert status == 200 and [m["id"] for m in body["data"]] == ["backup-model"]
    assert len([r for r in upstream.requests if r.path.endswith("/models")]) == 1  # no retry before failing over
    upstream.models_status = 404  # an upstream without the route: the request is nothing of the caller's
    status, body = await models(failing, http)
    assert status == 200 and [m["id"] for m in body["data"]] == ["backup-model"]


async def test_the_model_list_is_the_primarys_while_it_answers(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                               backup: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(upstreams=upstreams(("primary", upstream.base_url), ("backup", backup.base_url)))
    status, body = await models(proxy, http)
    assert status == 200 and [m["id"] for m in body["data"]] == ["gpt-4o-mini", "gpt-4o"]
    assert not [r for r in backup.requests if r.path.endswith("/models")]


async def test_the_model_list_fails_when_every_upstream_does(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                             backup: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    upstream.models_status = backup.models_status = 503
    proxy = await start_proxy(upstreams=upstreams(("primary", upstream.base_url), ("backup", backup.base_url)))
    status, body = await models(proxy, http)
    assert status == 502 and "503" in body["error"]["message"]
