"""The operator's own Prometheus metrics (kopf exports none): its reconciles by handler and outcome and how long they
take, its ElevenLabs API calls by operation and status and their latency, and the VoiceAgents it serves by condition.

One registry of its own per Reconciler (`OperatorMetrics.registry`; one Reconciler per operator process), served over
HTTP on GLIMPSE_METRICS_PORT by the startup handler (`serve`). Every series whose labels are known is made at 0 when
the registry is, so `rate()` and `increase()` see the first failure (a series born holding its first increment shows
no rise) and an alert's ratio has both sides. Alert rules on them: alerts/glimpse-operator.rules.yaml.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import kopf
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# The kopf handlers that reconcile (handlers.py): create/update/resume, the drift timer, a dependency's event
# (its proxy's Deployment, a key Secret), the deletion's clean-up
HANDLERS = ("reconcile", "repair", "dependent", "cleanup")
# ok; retry: kopf.TemporaryError, tried again after a delay (ElevenLabs or the API server failed, a Secret is
# missing, the spec is refused); error: anything else (kopf.PermanentError, a bug), which kopf retries on its own
OUTCOMES = ("ok", "retry", "error")
# elevenlabs_api.ElevenLabsClient's calls
OPERATIONS = ("create_secret", "update_secret", "delete_secret", "find_secrets", "create_agent", "get_agent",
              "update_agent", "delete_agent", "find_agents")
# An HTTP status class, the statuses a runbook tells apart (the key refused, missing, rate limited), or no answer
STATUSES = ("2xx", "401", "403", "404", "429", "4xx", "5xx", "unreachable")
CONDITIONS = ("Ready", "AgentSynced", "ProxyAvailable")  # status.conditions of a VoiceAgent (conditions.py)
CONDITION_STATUSES = ("True", "False")
RECONCILE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
REQUEST_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)


def status_label(status: int | None) -> str:
    """STATUSES' label of an HTTP status (None: no answer)."""
    if status is None:
        return "unreachable"
    if str(status) in STATUSES:
        return str(status)
    return "2xx" if status < 300 else "5xx" if status >= 500 else "4xx"  # a 3xx requests did not follow: 4xx


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter(
            "glimpse_operator_reconciles", "VoiceAgent reconciles, by kopf handler and outcome (ok, retry, error)",
            ["handler", "outcome"], registry=self.registry)
        self.reconcile_seconds = Histogram(
            "glimpse_operator_reconcile_duration_seconds", "How long a reconcile took, ElevenLabs calls included",
            ["handler"], buckets=RECONCILE_BUCKETS, registry=self.registry)
        self.elevenlabs_requests = Counter(
            "glimpse_operator_elevenlabs_requests", "ElevenLabs API calls, by operation and status (2xx, 401, 403, "
            "404, 429, other 4xx, 5xx, unreachable)", ["operation", "status"], registry=self.registry)
        self.elevenlabs_seconds = Histogram(
            "glimpse_operator_elevenlabs_request_duration_seconds", "ElevenLabs API call latency, by operation",
            ["operation"], buckets=REQUEST_BUCKETS, registry=self.registry)
        ProcessCollector(namespace="glimpse_operator", registry=self.registry)
        self._conditions: dict[str, dict[str, str]] = {}  # VoiceAgent uid -> condition type -> "True" | "False"
        self._lock = threading.Lock()
        self.registry.register(_VoiceAgents(self.conditions))
        for handler in HANDLERS:
            self.reconcile_seconds.labels(handler)
            for outcome in OUTCOMES:
                self.reconciles.labels(handler, outcome)
        for operation in OPERATIONS:
            self.elevenlabs_seconds.labels(operation)
            for status in STATUSES:
                self.elevenlabs_requests.labels(operation, status)

    @contextmanager
    def handling(self, handler: str) -> Iterator[Run]:
        """Count and time one run of a kopf handler; its outcome is how it ended (OUTCOMES), or what the handler set
        in the `Run` (a handler that writes a failed status without raising: "retry")."""
        started, run = time.perf_counter(), Run()
        try:
            yield run
            run.outcome = run.outcome or "ok"
        except kopf.TemporaryError:
            run.outcome = "retry"
            raise
        except BaseException:
            run.outcome = "error"
            raise
        finally:
            self.reconciles.labels(handler, run.outcome or "error").inc()
            self.reconcile_seconds.labels(handler).observe(time.perf_counter() - started)

    def elevenlabs_call(self, operation: str, status: int | None, seconds: float) -> None:
        self.elevenlabs_requests.labels(operation, status_label(status)).inc()
        self.elevenlabs_seconds.labels(operation).observe(seconds)

    def track(self, uid: str, conditions: Iterable[Mapping[str, Any]]) -> None:
        """A VoiceAgent's conditions as its status now says them."""
        known = {str(c.get("type")): str(c.get("status")) for c in conditions if c.get("type") in CONDITIONS}
        with self._lock:
            self._conditions[uid] = known

    def forget(self, uid: str) -> None:
        """The VoiceAgent is gone (or being deleted): it is served no more."""
        with self._lock:
            self._conditions.pop(uid, None)

    def conditions(self) -> list[dict[str, str]]:
        with self._lock:
            return [dict(known) for known in self._conditions.values()]

    def serve(self, port: int, address: str = "0.0.0.0") -> Callable[[], None]:  # noqa: S104 (a pod's own interface)
        """/metrics on `port` in a thread of its own; returns what stops it."""
        server, thread = start_http_server(port, address, registry=self.registry)

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        return stop


class Run:
    """One handler run being counted: `outcome` set by the handler, else by how it ends."""

    def __init__(self) -> None:
        self.outcome: str | None = None

    def failed(self, retry_reason: str | None) -> None:
        """The reconcile ended with a status that asks for a retry (the next event or tick tries again)."""
        if retry_reason:
            self.outcome = "retry"


class _VoiceAgents(Collector):
    """glimpse_operator_voiceagents{condition, status}: how many of the VoiceAgents this replica serves have each
    condition True or False (every pair present, 0 included; a standby replica serves none)."""

    def __init__(self, conditions: Callable[[], list[dict[str, str]]]) -> None:
        self._conditions = conditions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("glimpse_operator_voiceagents", "VoiceAgents served, by condition and its status",
                                   labels=["condition", "status"])
        agents = self._conditions()
        for condition in CONDITIONS:
            for status in CONDITION_STATUSES:
                family.add_metric([condition, status], sum(1 for known in agents if known.get(condition) == status))
        yield family

