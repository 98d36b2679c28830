"""The operator's own Prometheus metrics (glimpse_operator/metrics.py): every known series at 0 from the start, the
ElevenLabs calls by operation and status, the handlers' runs by outcome, the VoiceAgents by condition; and the whole
of it through the real kopf runner against the fakes, scraped over HTTP as Prometheus would."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import kopf
import pytest
from kopf.testing import KopfRunner
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from glimpse_operator import handlers
from glimpse_operator.elevenlabs_api import ElevenLabsClient, ElevenLabsError
from glimpse_operator.metrics import (
    CONDITION_STATUSES,
    CONDITIONS,
    HANDLERS,
    OPERATIONS,
    OUTCOMES,
    STATUSES,
    OperatorMetrics,
    status_label,
)
from glimpse_operator.settings import load_settings
from tests.fakes.elevenlabs_api import FakeElevenLabs
from tests.fakes.kubernetes_api import FakeKubernetes
from tests.operator.support import API_KEY, DEPLOYMENT, stored, voice_agent, voice_agent_path
from tests.operator.test_kopf import KOPF_RUN, conditions, kubeconfig, until
from tests.processes import free_port

__all__ = ["kubeconfig"]  # test_kopf.py's fixture: kopf's login and the operator pointed at the fakes
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def samples(metrics: OperatorMetrics) -> Samples:
    return parse(generate_latest(metrics.registry).decode())


def value(found: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in found, f"no series {name}{labels}"
    return found[key]


def test_every_known_series_is_there_at_zero_from_the_start() -> None:
    """rate() and increase() see a first failure only when the series was there before it."""
    found = samples(OperatorMetrics())
    for handler in HANDLERS:
        assert value(found, "glimpse_operator_reconcile_duration_seconds_count", handler=handler) == 0
        for outcome in OUTCOMES:
            assert value(found, "glimpse_operator_reconciles_total", handler=handler, outcome=outcome) == 0
    for operation in OPERATIONS:
        assert value(found, "glimpse_operator_elevenlabs_request_duration_seconds_count", operation=operation) == 0
        for status in STATUSES:
            assert value(found, "glimpse_operator_elevenlabs_requests_total", operation=operation, status=status) == 0
    for condition in CONDITIONS:
        for status in CONDITION_STATUSES:
            assert value(found, "glimpse_operator_voiceagents", condition=condition, status=status) == 0
    assert value(found, "glimpse_operator_process_resident_memory_bytes") > 0


@pytest.mark.parametrize(("status", "label"), [(200, "2xx"), (204, "2xx"), (401, "401"), (403, "403"), (404, "404"),
                                               (422, "4xx"), (429, "429"), (500, "5xx"), (503, "5xx"),
                                               (None, "unreachable")])
def test_status_labels_are_bounded(status: int | None, label: str) -> None:
    assert status_label(status) == label and label in STATUSES


async def test_elevenlabs_calls_by_operation_and_status(elevenlabs: FakeElevenLabs) -> None:
    metrics = OperatorMetrics()
    good = ElevenLabsClient(API_KEY, elevenlabs.base_url, metrics=metrics)
    await asyncio.to_thread(good.find_agents, "glimpse-uid-1")
    with pytest.raises(ElevenLabsError):
        await asyncio.to_thread(ElevenLabsClient("xi-wrong", elevenlabs.base_url, metrics=metrics).get_agent, "a1")
    await asyncio.to_thread(good.delete_agent, "agent_gone")  # 404: nothing to delete, no error, still counted
    elevenlabs.fail_with = 503
    with pytest.raises(ElevenLabsError):
        await asyncio.to_thread(good.create_agent, {"name": "x"})
    closed = ElevenLabsClient(API_KEY, f"http://127.0.0.1:{free_port()}", metrics=metrics)
    with pytest.raises(ElevenLabsError, match="unreachable"):
        await asyncio.to_thread(closed.update_secret, "sec_1", "n", "v")

    found = samples(metrics)
    counted = {(dict(labels)["operation"], dict(labels)["status"]): count for (name, labels), count in found.items()
               if name == "glimpse_operator_elevenlabs_requests_total" and count}
    assert counted == {("find_agents", "2xx"): 1, ("get_agent", "401"): 1, ("delete_agent", "404"): 1,
                       ("create_agent", "5xx"): 1, ("update_secret", "unreachable"): 1}
    assert value(found, "glimpse_operator_elevenlabs_request_duration_seconds_count", operation="create_agent") == 1


def test_a_handler_run_is_counted_by_how_it_ends() -> None:
    metrics = OperatorMetrics()
    with metrics.handling("reconcile"):
        pass
    with pytest.raises(kopf.TemporaryError), metrics.handling("reconcile"):
        raise kopf.TemporaryError("ElevenLabs is down", delay=1)
    with pytest.raises(kopf.PermanentError), metrics.handling("cleanup"):
        raise kopf.PermanentError("ElevenLabs refused the clean-up")
    with pytest.raises(KeyError), metrics.handling("repair"):
        raise KeyError("a bug")
    with metrics.handling("dependent") as run:  # a status written that asks for a retry, without raising
        run.failed("Secret openai is missing")
    found = samples(metrics)
    counted = {(dict(labels)["handler"], dict(labels)["outcome"]): count for (name, labels), count in found.items()
               if name == "glimpse_operator_reconciles_total" and count}
    assert counted == {("reconcile", "ok"): 1, ("reconcile", "retry"): 1, ("cleanup", "error"): 1,
                       ("repair", "error"): 1, ("dependent", "retry"): 1}
    assert value(found, "glimpse_operator_reconcile_duration_seconds_count", handler="reconcile") == 2


def test_voice_agents_are_counted_by_condition_until_they_go() -> None:
    metrics = OperatorMetrics()
    ready = [{"type": "Ready", "status": "True"}, {"type": "AgentSynced", "status": "True"},
             {"type": "ProxyAvailable", "status": "True"}]
    metrics.track("uid-1", ready)
    metrics.track("uid-2", [{**c, "status": "False"} if c["type"] != "AgentSynced" else c for c in ready])
    metrics.track("uid-2", [{**c, "status": "False"} if c["type"] != "AgentSynced" else c for c in ready])  # again
    found = samples(metrics)
    assert value(found, "glimpse_operator_voiceagents", condition="Ready", status="True") == 1
    assert value(found, "glimpse_operator_voiceagents", condition="Ready", status="False") == 1
    assert value(found, "glimpse_operator_voiceagents", condition="AgentSynced", status="True") == 2
    metrics.forget("uid-2")
    metrics.forget("uid-3")  # never seen: nothing happens
    found = samples(metrics)
    assert value(found, "glimpse_operator_voiceagents", condition="Ready", status="False") == 0
    assert value(found, "glimpse_operator_voiceagents", condition="Ready", status="True") == 1


def scrape(port: int) -> Samples:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return parse(response.read().decode())


def scraped(port: int) -> Samples:
    """A scrape, or nothing while the operator is not serving yet (what Prometheus records as up == 0)."""
    try:
        return scrape(port)
    except OSError:
        return {}


@pytest.fixture
def metrics_port(kubeconfig: None, monkeypatch: pytest.MonkeyPatch) -> int:
    """The kopf runner's operator (test_kopf.py's kubeconfig fixture) serving its metrics on a free port."""
    port = free_port()
    monkeypatch.setenv("GLIMPSE_METRICS_PORT", str(port))
    load_settings.cache_clear()
    return port


async def test_kopf_runs_it_and_prometheus_scrapes_reconciles_elevenlabs_calls_and_agents(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, metrics_port: int) -> None:
    """ElevenLabs down, then back: the scrape over HTTP shows the retried reconciles and the 5xx calls, then the ok
    ones and the 2xx calls, the VoiceAgent not Ready then Ready as its proxy becomes available, and none once it is
    deleted (its clean-up counted)."""
    elevenlabs.fail_with = 503
    body = stored(cluster, voice_agent())
    path = voice_agent_path(body)
    runner = KopfRunner(KOPF_RUN, timeout=30)
    await asyncio.to_thread(runner.__enter__)
    try:
        def total(found: Samples, name: str, **labels: str) -> float:
            return sum(count for (key, series), count in found.items()
                       if key == name and labels.items() <= dict(series).items())

        await until(lambda: total(scraped(metrics_port), "glimpse_operator_reconciles_total", handler="reconcile",
                                  outcome="retry") >= 2)
        found = scrape(metrics_port)
        assert total(found, "glimpse_operator_elevenlabs_requests_total", status="5xx") >= 2
        assert total(found, "glimpse_operator_elevenlabs_requests_total", status="2xx") == 0
        assert value(found, "glimpse_operator_reconciles_total", handler="reconcile", outcome="ok") == 0
        assert value(found, "glimpse_operator_voiceagents", condition="AgentSynced", status="False") == 1
        assert value(found, "glimpse_operator_voiceagents", condition="Ready", status="False") == 1

        elevenlabs.fail_with = None
        await until(lambda: conditions(cluster, path).get("AgentSynced") == ("True", "Synced"))
        await until(lambda: value(scrape(metrics_port), "glimpse_operator_reconciles_total", handler="reconcile",
                                  outcome="ok") >= 1)
        found = scrape(metrics_port)
        assert value(found, "glimpse_operator_elevenlabs_requests_total", operation="create_agent", status="2xx") == 1
        assert value(found, "glimpse_operator_elevenlabs_requests_total", operation="create_secret", status="2xx") == 1
        assert value(found, "glimpse_operator_elevenlabs_request_duration_seconds_count", operation="create_agent") \
            >= 1
        assert value(found, "glimpse_operator_reconcile_duration_seconds_count", handler="reconcile") >= 3
        assert value(found, "glimpse_operator_voiceagents", condition="AgentSynced", status="True") == 1

        # what the deployment controller reports once a pod is ready: READY follows, and so does the gauge
        cluster.put_status(DEPLOYMENT, {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1})
        await until(lambda: value(scrape(metrics_port), "glimpse_operator_voiceagents", condition="Ready",
                                  status="True") == 1, timeout=5)
        assert value(scrape(metrics_port), "glimpse_operator_voiceagents", condition="Ready", status="False") == 0

        cluster.delete(path)
        await until(lambda: path not in cluster.objects)
        found = scrape(metrics_port)
        assert value(found, "glimpse_operator_reconciles_total", handler="cleanup", outcome="ok") == 1
        assert value(found, "glimpse_operator_elevenlabs_requests_total", operation="delete_agent", status="2xx") == 1
        assert sum(value(found, "glimpse_operator_voiceagents", condition=c, status=s)
                   for c in CONDITIONS for s in CONDITION_STATUSES) == 0
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)
    with pytest.raises(OSError):  # kopf's cleanup handler stopped the server
        scrape(metrics_port)


def test_startup_serves_the_metrics_on_the_configured_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    port = free_port()
    monkeypatch.setenv("GLIMPSE_METRICS_PORT", str(port))
    monkeypatch.setattr("kubernetes.config.load_incluster_config", lambda: None)  # as if in a pod
    load_settings.cache_clear()
    memo = kopf.Memo()
    try:
        handlers.configure(settings=kopf.OperatorSettings(), memo=memo)
        assert value(scrape(port), "glimpse_operator_reconciles_total", handler="reconcile", outcome="ok") == 0
        # a second operator on the same port stops at once, saying why
        with pytest.raises(kopf.PermanentError, match=f"cannot serve metrics on port {port}"):
            handlers.configure(settings=kopf.OperatorSettings(), memo=kopf.Memo())
    finally:
        handlers.stop_metrics(memo=memo)
        load_settings.cache_clear()
    with pytest.raises(OSError):
        scrape(port)
    monkeypatch.setenv("GLIMPSE_METRICS_PORT", "0")  # off: nothing served
    memo = kopf.Memo()
    handlers.configure(settings=kopf.OperatorSettings(), memo=memo)
    assert not hasattr(memo, "stop_metrics")
    load_settings.cache_clear()
