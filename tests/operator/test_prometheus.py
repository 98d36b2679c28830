"""A real Prometheus (Debian's, tests/prometheus_server.py) scraping the operator run by kopf against the fakes, with
ElevenLabs down: the failures reach `rate()` (every series was there at 0 before the first one), and the expressions of
alerts/glimpse-operator.rules.yaml, evaluated by Prometheus on what it scraped, find the failing operator (the `for`
durations aside, which promtool tests: tests/operator/test_alert_rules.py). Prints what each gave (`pytest -s`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from kopf.testing import KopfRunner

from glimpse_operator.metrics import OPERATIONS
from tests.fakes.elevenlabs_api import FakeElevenLabs
from tests.fakes.kubernetes_api import FakeKubernetes
from tests.operator.support import stored, voice_agent
from tests.operator.test_alert_rules import rules
from tests.operator.test_kopf import KOPF_RUN, kubeconfig
from tests.operator.test_metrics import metrics_port, scraped
from tests.prometheus_server import PrometheusServer

__all__ = ["kubeconfig", "metrics_port"]  # fixtures: the kopf runner's operator pointed at the fakes, on a port
OPERATOR = {"namespace": "glimpse-system"}  # the label a PodMonitor gives the operator pod's series


@pytest.mark.usefixtures("kubeconfig")
async def test_prometheus_sees_elevenlabs_down_and_the_operator_alerts_fire(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, metrics_port: int, tmp_path: Path) -> None:
    elevenlabs.fail_with = 503
    runner = KopfRunner(KOPF_RUN, timeout=60)
    await asyncio.to_thread(runner.__enter__)
    prometheus = PrometheusServer(tmp_path, {f"127.0.0.1:{metrics_port}": OPERATOR})
    table: list[tuple[str, list[tuple[dict[str, str], str]]]] = []
    try:
        async def serving() -> None:
            while not scraped(metrics_port):
                await asyncio.sleep(0.05)
        await asyncio.wait_for(serving(), 20)
        await asyncio.to_thread(prometheus.start)  # the operator scraped at least once, before any VoiceAgent
        failed = 'glimpse_operator_elevenlabs_requests_total{status="5xx"}'
        before = await asyncio.to_thread(prometheus.query, failed)  # there, at 0, for every operation
        assert sorted(r["metric"]["operation"] for r in before) == sorted(OPERATIONS)
        assert {r["value"][1] for r in before} == {"0"}

        stored(cluster, voice_agent())
        await asyncio.to_thread(prometheus.wait_for, f"sum(rate({failed}[1m])) > 0", 20)
        for name, rule in rules().items():
            result = await asyncio.to_thread(prometheus.query, rule["expr"])
            table.append((name, [(r["metric"], r["value"][1]) for r in result]))
            if name == "GlimpseOperatorHandlerErrors":  # retries it planned, no unexpected error
                assert result == [], name
            else:
                assert [r["metric"] for r in result] == [OPERATOR], name
    finally:
        await asyncio.to_thread(prometheus.stop)
        await asyncio.to_thread(runner.__exit__, None, None, None)
    # after the runner: it holds the process's stdout while it runs (click's CliRunner)
    print("\nalert expression | what Prometheus gave (ElevenLabs answering 503)")
    for name, values in table:
        print(f"{name} | {values}")
