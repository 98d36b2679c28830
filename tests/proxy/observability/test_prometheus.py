"""A real Prometheus scraping a proxy driven over HTTP through a success, a failover, a 502 and a 504: the errors
reach `increase()` and `rate()` (they did not while a series was born holding its first increment), and the alert
expressions of alerts/glimpse-proxy.rules.yaml find the failing agent and upstream. Prints what each expression
gave (`pytest -s`)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import StartProxy
from tests.fakes.openai_upstream import Behaviour, FakeOpenAI
from tests.prometheus_server import PrometheusServer
from tests.proxy.observability.test_alert_rules import rules
from tests.proxy.observability.test_metrics_initialised import turn, two_upstreams

AGENT = {"namespace": "voice", "voiceagent": "alpha"}
CHAT_502 = 'glimpse_requests_total{route="/v1/chat/completions",status="502"}'


@pytest.fixture
async def backup() -> AsyncIterator[FakeOpenAI]:
    fake = await FakeOpenAI().start()
    yield fake
    await fake.stop()


async def test_prometheus_sees_the_first_errors_and_the_alerts_find_them(
        start_proxy: StartProxy, upstream: FakeOpenAI, backup: FakeOpenAI, http: aiohttp.ClientSession,
        tmp_path: Path) -> None:
    proxy = await start_proxy(**two_upstreams(upstream, backup), first_token_timeout=0.2,
                              upstream_first_byte_timeout=0.6)
    # the proxy runs in this event loop: everything that waits on Prometheus waits in a thread
    prometheus = PrometheusServer(tmp_path, {proxy.url.removeprefix("http://"): AGENT})
    await asyncio.to_thread(prometheus.start)
    try:
        assert await asyncio.to_thread(prometheus.value, CHAT_502) == 0  # there, at 0, before any error

        assert await turn(proxy, http) == (200, "primary")
        upstream.next.append(Behaviour(status=500))
        assert await turn(proxy, http) == (200, "backup")
        upstream.next.append(Behaviour(status=500))
        backup.next.append(Behaviour(status=503))
        assert (await turn(proxy, http))[0] == 502
        upstream.next.append(Behaviour(first_byte_delay=2.0))
        backup.next.append(Behaviour(first_byte_delay=2.0))
        assert (await turn(proxy, http))[0] == 504

        await asyncio.to_thread(prometheus.wait_for, f"{CHAT_502} == 1")
        await asyncio.to_thread(prometheus.wait_for, "up == 1")  # one scrape more: the rates have two points
        await asyncio.sleep(1.5)
        table: list[tuple[str, str]] = []

        async def query(expr: str) -> list[dict]:
            result = await asyncio.to_thread(prometheus.query, expr)
            table.append((expr, ", ".join(f"{dict(r['metric'])} {r['value'][1]}" for r in result) or "(none)"))
            return result

        # one 502 and one 504 reach increase(): a series born at 1 would show 0 here
        (increased,) = await query(f"increase({CHAT_502}[1m])")
        assert float(increased["value"][1]) >= 1
        (timeouts,) = await query('increase(glimpse_requests_total{route="/v1/chat/completions",status="504"}[1m])')
        assert float(timeouts["value"][1]) >= 1
        (failovers,) = await query('sum by (upstream, outcome) (increase(glimpse_upstream_failovers_total'
                                   '{upstream="primary",outcome="error"}[1m]))')
        assert float(failovers["value"][1]) >= 2
        (streams,) = await query("sum(increase(glimpse_stream_seconds_total[1m]))")
        assert float(streams["value"][1]) > 0

        alerts = {name: rule["expr"] for name, rule in rules().items()}
        (api,) = await query(alerts["GlimpseApiErrorRatioHigh"])  # 2 of 4 turns
        assert api["metric"] == AGENT and float(api["value"][1]) == pytest.approx(0.5)
        failing = await query(alerts["GlimpseUpstreamErrorRatioHigh"])  # primary: 3 calls of 4 failed, backup: 2 of 3
        assert {r["metric"]["upstream"]: round(float(r["value"][1]), 2) for r in failing} == {"primary": 0.75,
                                                                                             "backup": 0.67}
        # not GlimpseMemoryNearLimit: this proxy runs inside the test process, whose resident memory (the whole
        # suite's) it reports; promtool's unit tests hold that rule (tests/proxy/observability/test_alert_rules.py)
        for quiet in ("GlimpseStoreErrors", "GlimpsePicturesRefusedForCapacity", "GlimpseAllUpstreamsDown"):
            assert await query(alerts[quiet]) == [], quiet
        # with every threshold at ">= 0", each alert expression gives the agent's series: all it reads is there,
        # those at 0 included (a sum with a family never incremented gave nothing before they were made at start)
        for name, expr in alerts.items():
            assert await query(re.sub(r"(>|==)\s*[0-9.]+", ">= 0", expr)), name
        print("\n" + "\n".join(f"{expr.strip()} | {value}" for expr, value in table))
    finally:
        await asyncio.to_thread(prometheus.stop)
