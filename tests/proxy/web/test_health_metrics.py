"""Probes and Prometheus metrics, scraped over HTTP and parsed with prometheus_client's parser."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from glimpse.app import create_app
from glimpse.config import ConfigError, Settings
from tests.conftest import Proxy, StartProxy
from tests.fakes.openai_upstream import DEFAULT_WORDS, FakeOpenAI
from tests.helpers import conversation, elevenlabs_body, new_session, upload
from tests.metrics_scrape import scrape, value


async def test_probes(proxy: Proxy, http: aiohttp.ClientSession) -> None:
    async with http.get(proxy.url + "/healthz") as response:
        assert response.status == 200
    async with http.get(proxy.url + "/readyz") as response:
        assert response.status == 200
        assert (await response.json())["checks"] == {"store": "ok", "storage": "ok"}


async def test_metrics_move_by_the_right_amounts(proxy: Proxy, upstream: FakeOpenAI,
                                                 http: aiohttp.ClientSession) -> None:
    before = await scrape(http, proxy)
    session = await new_session(http, proxy.url)
    await upload(http, proxy.url, session)
    await upload(http, proxy.url, session, b"not an image")
    async with http.post(proxy.v1 + "/chat/completions",
                         json=elevenlabs_body(session, conversation("What is this?"))) as response:
        await response.read()
    after = await scrape(http, proxy)

    def delta(name: str, **labels: str) -> float:
        # a model the caller names has no series before its first turn; everything else is there from the start
        return value(after, name, **labels) - value(before, name, absent=0.0 if "model" in labels else None, **labels)

    route = "/v1/chat/completions"
    assert delta("glimpse_requests_total", route=route, status="200") == 1
    assert delta("glimpse_time_to_first_token_seconds_count", model="gpt-4o-mini") == 1
    assert delta("glimpse_time_to_first_token_seconds_bucket", model="gpt-4o-mini", le="10.0") == 1
    assert delta("glimpse_upstream_duration_seconds_count", model="gpt-4o-mini", outcome="ok", upstream="default") == 1
    assert delta("glimpse_tokens_total", model="gpt-4o-mini", kind="completion") == len(DEFAULT_WORDS)
    assert delta("glimpse_tokens_total", model="gpt-4o-mini", kind="prompt") > 0
    assert delta("glimpse_images_uploaded_total", outcome="stored") == 1
    assert delta("glimpse_images_uploaded_total", outcome="rejected") == 1
    assert delta("glimpse_images_injected_total", policy="sticky") == 1
    assert delta("glimpse_image_bytes_count") == 1
    assert value(after, "glimpse_active_streams") == 0
    labels = {dict(key[1]).get("route") for key in after if key[0] == "glimpse_requests_total"}
    assert all(label is None or label.startswith("/") for label in labels)
    assert session["session_id"] not in str(after)


async def test_unmatched_paths_share_one_label(proxy: Proxy, http: aiohttp.ClientSession) -> None:
    for n in range(3):
        async with http.get(f"{proxy.url}/random/{n}") as response:
            assert response.status == 404
    after = await scrape(http, proxy)
    assert value(after, "glimpse_requests_total", route="unmatched", status="404") == 3


def routes(app: web.Application) -> set[str]:
    return {resource.canonical for resource in app.router.resources()}


async def test_metrics_are_off_the_api_port_by_default(tmp_path: Path) -> None:
    """Only a port of their own, which no Ingress routes to, serves them unless a single-port run asks otherwise."""
    storage = {"storage_url": f"file://{tmp_path}/images"}
    defaults = Settings.load(env={}, **storage)
    assert defaults.metrics_port == 9090
    assert "/metrics" not in routes(create_app(defaults))
    single_port = Settings.load(env={"GLIMPSE_METRICS_PORT": "0"}, **storage)
    assert "/metrics" in routes(create_app(single_port))
    with pytest.raises(ConfigError, match="GLIMPSE_METRICS_PORT"):
        Settings.load(env={"GLIMPSE_PORT": "9090"})


async def test_readiness_fails_with_its_reason_when_the_local_disk_is_low(start_proxy: StartProxy,
                                                                          http: aiohttp.ClientSession) -> None:
    """No disk has an exabyte free: with that as GLIMPSE_STORAGE_MIN_FREE_BYTES the probe sees a full disk."""
    low = await start_proxy(storage_min_free_bytes=2**60)
    async with http.get(low.url + "/readyz") as response:
        assert response.status == 503
        checks = (await response.json())["checks"]
    assert checks["store"] == "ok"
    assert checks["storage"].startswith("unavailable: disk low: ") and "GLIMPSE_STORAGE_MIN_FREE_BYTES" in \
        checks["storage"]
    async with http.get(low.url + "/healthz") as response:
        assert response.status == 200  # alive: only not to be sent traffic
    roomy = await start_proxy(storage_min_free_bytes=1)
    async with http.get(roomy.url + "/readyz") as response:
        assert response.status == 200
