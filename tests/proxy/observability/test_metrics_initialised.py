"""Every labelled series a dashboard or an alert reads exists at 0 from the start, so `rate()` sees the first errors;
the upstream calls, failovers and breakers counted per upstream; streams that no scrape can miss."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import glimpse.errors
from glimpse.chat.service import StreamInterrupted
from glimpse.observability.metrics import (
    CONNECTION_REFUSALS,
    DECODE_REFUSALS,
    FAILOVER_OUTCOMES,
    STORE_OPS,
    UPLOAD_OUTCOMES,
    UPSTREAM_OUTCOMES,
    StreamClock,
)
from glimpse.sizing import DecodeBudget, MiB, memory_limit_bytes, memory_limit_mib
from glimpse.web.errors import ANSWERED_STATUSES
from tests.conftest import Proxy, StartProxy
from tests.fakes.openai_upstream import Behaviour, FakeOpenAI
from tests.helpers import conversation, elevenlabs_body
from tests.metrics_scrape import scrape, value

API_ROUTES = ("/v1/chat/completions", "/v1/responses", "/v1/images", "/v1/session", "/upload_image_get_url",
              "/signal_image_ready", "/serve_image/{image_id}", "/v1/models")


@pytest.fixture
async def backup() -> AsyncIterator[FakeOpenAI]:
    fake = await FakeOpenAI().start()
    yield fake
    await fake.stop()


def two_upstreams(primary: FakeOpenAI, backup: FakeOpenAI) -> dict[str, Any]:
    return {"upstreams": [{"name": "primary", "base_url": primary.base_url, "api_key": "sk-primary"},
                          {"name": "backup", "base_url": backup.base_url, "api_key": "sk-backup", "model": "gpt-4o"}],
            "upstream_breaker_failures": 100}


async def test_a_fresh_proxy_shows_every_known_series_at_zero(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                             backup: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(**two_upstreams(upstream, backup), upload_rate_per_minute=30)
    samples = await scrape(http, proxy)

    for route in API_ROUTES:
        for status in map(str, ANSWERED_STATUSES):
            assert value(samples, "glimpse_requests_total", route=route, status=status) == 0
        assert value(samples, "glimpse_request_duration_seconds_count", route=route) == 0
    for probe in ("/healthz", "/readyz"):  # not in any ratio: they appear when first called
        assert ("glimpse_requests_total", (("route", probe), ("status", "200"))) not in samples
    for name in ("primary", "backup"):
        for outcome in UPSTREAM_OUTCOMES:
            assert value(samples, "glimpse_upstream_calls_total", upstream=name, outcome=outcome) == 0
        for outcome in FAILOVER_OUTCOMES:
            assert value(samples, "glimpse_upstream_failovers_total", upstream=name, outcome=outcome) == 0
        assert value(samples, "glimpse_upstream_breaker_open", upstream=name) == 0
    for op in STORE_OPS:
        assert value(samples, "glimpse_store_errors_total", op=op) == 0
    for outcome in UPLOAD_OUTCOMES:
        assert value(samples, "glimpse_images_uploaded_total", outcome=outcome) == 0
    for scope in ("session", "global"):
        assert value(samples, "glimpse_quota_refusals_total", scope=scope) == 0
    for reason in CONNECTION_REFUSALS:
        assert value(samples, "glimpse_connections_refused_total", reason=reason) == 0
    for reason in DECODE_REFUSALS:
        assert value(samples, "glimpse_image_decodes_refused_total", reason=reason) == 0
    assert value(samples, "glimpse_images_injected_total", policy="sticky") == 0
    for route in ("/v1/images", "/upload_image_get_url"):  # the upload limit is on, the others are off
        assert value(samples, "glimpse_rate_limited_total", route=route) == 0
    assert ("glimpse_rate_limited_total", (("route", "/v1/session"),)) not in samples
    # the backup's fixed model is known at start; a model callers name is not
    assert value(samples, "glimpse_time_to_first_token_seconds_count", model="gpt-4o") == 0
    assert value(samples, "glimpse_tokens_total", model="gpt-4o", kind="completion") == 0
    assert value(samples, "glimpse_upstream_duration_seconds_count", model="gpt-4o", outcome="ok",
                 upstream="backup") == 0
    assert value(samples, "glimpse_stream_seconds_total") == 0
    assert value(samples, "glimpse_memory_limit_bytes") > 0
    assert value(samples, "glimpse_process_resident_memory_bytes") > 0


def test_every_upstream_outcome_is_initialised() -> None:
    errors = [glimpse.errors.UpstreamError, StreamInterrupted,
              *(kind for kind in vars(glimpse.errors).values()
                if isinstance(kind, type) and issubclass(kind, glimpse.errors.UpstreamError))]
    outcomes = {kind.outcome for kind in errors} | {"ok", "cancelled", "shutdown"}  # the calls' own endings
    assert outcomes == set(UPSTREAM_OUTCOMES)
    assert {kind.outcome for kind in errors if kind.upstreams_fault} - {"dropped"} == set(FAILOVER_OUTCOMES)


def test_the_memory_limit_is_the_cgroups_else_the_derived_one(tmp_path) -> None:
    budget = DecodeBudget()
    cgroup = tmp_path / "memory.max"
    cgroup.write_text("max\n")
    assert memory_limit_bytes(budget, cgroup) == memory_limit_mib(budget) * MiB
    cgroup.write_text("536870912\n")
    assert memory_limit_bytes(budget, cgroup) == 536870912
    assert memory_limit_bytes(budget, tmp_path / "none") == memory_limit_mib(budget) * MiB


def test_stream_seconds_count_open_streams_up_to_now() -> None:
    now = [100.0]
    clock = StreamClock(lambda: now[0])
    first = clock.started()
    now[0] = 101.0
    second = clock.started()
    now[0] = 103.0
    assert clock.seconds() == 3.0 + 2.0  # both open, counted up to now
    clock.ended(first)
    now[0] = 104.0
    assert clock.seconds() == 3.0 + 3.0
    clock.ended(second)
    now[0] = 110.0
    assert clock.seconds() == 3.0 + 3.0  # nothing open: it stops growing


async def turn(proxy: Proxy, http: aiohttp.ClientSession) -> tuple[int, str]:
    async with http.post(proxy.v1 + "/chat/completions",
                         json=elevenlabs_body("sess-1", conversation("What is this?"))) as response:
        await response.read()
        return response.status, response.headers.get("X-Glimpse-Upstream", "")


async def test_a_502_a_504_and_a_failover_over_http_count_where_an_alert_reads_them(
        start_proxy: StartProxy, upstream: FakeOpenAI, backup: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(**two_upstreams(upstream, backup), first_token_timeout=0.2,
                              upstream_first_byte_timeout=0.6)
    before = await scrape(http, proxy)

    upstream.next.append(Behaviour(status=500))  # the primary fails, the backup answers
    assert await turn(proxy, http) == (200, "backup")
    upstream.next.append(Behaviour(status=500))  # both fail: 502
    backup.next.append(Behaviour(status=503))
    assert (await turn(proxy, http))[0] == 502
    upstream.next.append(Behaviour(first_byte_delay=2.0))  # neither answers in time: 504
    backup.next.append(Behaviour(first_byte_delay=2.0))
    assert (await turn(proxy, http))[0] == 504
    after = await scrape(http, proxy)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/v1/chat/completions"
    assert delta("glimpse_requests_total", route=route, status="200") == 1
    assert delta("glimpse_requests_total", route=route, status="502") == 1
    assert delta("glimpse_requests_total", route=route, status="504") == 1
    assert delta("glimpse_upstream_failovers_total", upstream="primary", outcome="error") == 2
    assert delta("glimpse_upstream_failovers_total", upstream="primary", outcome="timeout") == 1
    assert delta("glimpse_upstream_failovers_total", upstream="backup", outcome="error") == 0  # the last one
    assert delta("glimpse_upstream_calls_total", upstream="primary", outcome="error") == 2
    assert delta("glimpse_upstream_calls_total", upstream="primary", outcome="timeout") == 1
    assert delta("glimpse_upstream_calls_total", upstream="backup", outcome="ok") == 1
    assert delta("glimpse_upstream_calls_total", upstream="backup", outcome="error") == 1
    assert delta("glimpse_upstream_calls_total", upstream="backup", outcome="timeout") == 1
    assert delta("glimpse_stream_seconds_total") > 0  # the answered turn streamed


async def test_a_breaker_that_opens_shows_as_1(start_proxy: StartProxy, upstream: FakeOpenAI, backup: FakeOpenAI,
                                              http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(**{**two_upstreams(upstream, backup), "upstream_breaker_failures": 1,
                                 "upstream_breaker_cooldown_seconds": 60})
    upstream.next.append(Behaviour(status=500))
    assert await turn(proxy, http) == (200, "backup")
    samples = await scrape(http, proxy)
    assert value(samples, "glimpse_upstream_breaker_open", upstream="primary") == 1
    assert value(samples, "glimpse_upstream_breaker_open", upstream="backup") == 0


async def test_stream_seconds_grow_while_a_stream_is_open(proxy: Proxy, upstream: FakeOpenAI,
                                                         http: aiohttp.ClientSession) -> None:
    upstream.default = Behaviour(chunk_delay=0.15)  # 7 words: about 1 s of streaming
    task = asyncio.create_task(turn(proxy, http))
    await asyncio.wait_for(upstream.streams_started.wait(), 5)
    await asyncio.sleep(0.3)
    during = await scrape(http, proxy)
    await asyncio.sleep(0.3)
    later = await scrape(http, proxy)
    assert not task.done()
    assert value(during, "glimpse_active_streams") == 1
    assert 0.2 < value(during, "glimpse_stream_seconds_total") < value(later, "glimpse_stream_seconds_total")
    assert await task == (200, "default")
    done = await scrape(http, proxy)
    assert value(done, "glimpse_stream_seconds_total") >= value(later, "glimpse_stream_seconds_total") + 0.2
    assert value(done, "glimpse_active_streams") == 0
