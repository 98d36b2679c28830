"""kopf handlers: small, each calls the Reconciler and hands kopf the status to write."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, cast

import kopf
from kubernetes import config as k8s_config

from . import GROUP, KIND, PLURAL, VERSION
from .cleanup import CleanupPending, CleanupRefused
from .cluster import Cluster, ClusterError
from .keys import release_key_secret
from .reconcile import Reconciler
from .render import labels as proxy_labels
from .settings import ConfigError, load_settings

log = logging.getLogger(__name__)

RETRY_DELAY_SECONDS = 15
MAX_RETRY_DELAY_SECONDS = 600
DRIFT_INTERVAL_SECONDS = 300
MANAGED_BY = "app.kubernetes.io/managed-by"
# Deleting a VoiceAgent never waits for ElevenLabs longer than this: at most CLEANUP_ATTEMPTS attempts (15 s, 30 s,
# 60 s, 120 s apart), within CLEANUP_TIMEOUT_SECONDS of the first. Then the VoiceAgent is released and a Warning
# event names what is left in ElevenLabs.
CLEANUP_ATTEMPTS = 5
CLEANUP_TIMEOUT_SECONDS = 600


def backoff(retry: int) -> float:
    """15 s, 30 s, 60 s … capped at 10 minutes: ElevenLabs outages and missing Secrets are retried gently."""
    return float(min(MAX_RETRY_DELAY_SECONDS, RETRY_DELAY_SECONDS * 2 ** max(0, retry)))


def reconciler(memo: kopf.Memo) -> Reconciler:
    """The operator's one Reconciler, put into kopf's memo (shared by every resource's memo) at startup."""
    return cast(Reconciler, memo.reconciler)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """kopf's settings; the Reconciler with the operator's settings; the operator's /metrics served (kopf has none)."""
    settings.persistence.finalizer = "glimpse.dev/cleanup"
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = 8
    # the proxies' Deployments only, filtered by the API server (not every Deployment of the cluster)
    settings.watching.label_selectors["apps", "deployments"] = f"{MANAGED_BY}={proxy_labels('')[MANAGED_BY]}"
    try:
        operator_settings = load_settings()
    except ConfigError as exc:
        raise kopf.PermanentError(f"configuration error: {exc}") from None  # stops the operator, no retries
    try:
        k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        k8s_config.load_kube_config()  # type: ignore[no-untyped-call]
    memo.reconciler = Reconciler(Cluster(), operator_settings)
    if operator_settings.metrics_port:
        try:
            memo.stop_metrics = memo.reconciler.metrics.serve(operator_settings.metrics_port)
        except OSError as exc:  # the port is taken: say which, and stop (kopf would retry a plain error forever)
            raise kopf.PermanentError(f"cannot serve metrics on port {operator_settings.metrics_port}: {exc}") from None


@kopf.on.cleanup()
def stop_metrics(memo: kopf.Memo, **_: Any) -> None:
    stop = getattr(memo, "stop_metrics", None)
    if stop is not None:
        stop()


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
@kopf.on.resume(GROUP, VERSION, PLURAL)
def reconcile(body: kopf.Body | dict[str, Any], patch: kopf.Patch, memo: kopf.Memo, retry: int = 0,
              old: kopf.BodyEssence | dict[str, Any] | None = None, **_: Any) -> None:
    with reconciler(memo).metrics.handling("reconcile"):
        _reconcile(body, patch, memo, retry, old)


def _reconcile(body: kopf.Body | dict[str, Any], patch: kopf.Patch, memo: kopf.Memo, retry: int,
               old: kopf.BodyEssence | dict[str, Any] | None) -> None:
    try:
        outcome = reconciler(memo).reconcile(dict(body))
        if outcome is not None:
            release_previous_key_secret(reconciler(memo), dict(body), old)
    except ClusterError as exc:
        raise kopf.TemporaryError(f"Kubernetes API: {exc}", delay=backoff(retry)) from exc
    if outcome is None:
        return  # gone, or being deleted: the delete handler has it
    patch.status.update(outcome.status)  # written even when a retry follows
    if outcome.retry_reason:
        raise kopf.TemporaryError(outcome.retry_reason, delay=backoff(retry))


def release_previous_key_secret(reconciler: Reconciler, body: dict[str, Any],
                                old: kopf.BodyEssence | dict[str, Any] | None) -> None:
    """spec.elevenlabs.apiKeySecretRef now names another Secret: the one it named before is not needed any more."""
    def key_secret(document: Any) -> str | None:
        ref = ((document or {}).get("spec") or {}).get("elevenlabs", {}).get("apiKeySecretRef") or {}
        return ref.get("name") if isinstance(ref, dict) else None

    before, now = key_secret(old), key_secret(body)
    if before and now and before != now:
        release_key_secret(reconciler.cluster, body, before)


@kopf.timer(GROUP, VERSION, PLURAL, interval=DRIFT_INTERVAL_SECONDS, initial_delay=DRIFT_INTERVAL_SECONDS, idle=60)
def repair_drift(body: kopf.Body | dict[str, Any], patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Re-apply the desired objects (server-side apply restores edited fields), write the ElevenLabs agent again
    (edited in its dashboard, or deleted: made again), and refresh the status.

    kopf runs timers beside the change handlers, not after them: when a handler is reconciling this object right
    now, this tick does nothing (the handler does the same work)."""
    with reconciler(memo).metrics.handling("repair") as run:
        outcome = reconciler(memo).reconcile(dict(body), wait=False, repair=True)
        run.failed(outcome.retry_reason if outcome else None)
    if outcome is not None:
        patch.status.update(outcome.status)


@kopf.on.delete(GROUP, VERSION, PLURAL, retries=CLEANUP_ATTEMPTS, timeout=CLEANUP_TIMEOUT_SECONDS)
def clean_up(body: kopf.Body | dict[str, Any], memo: kopf.Memo, retry: int = 0,
             runtime: dt.timedelta = dt.timedelta(0), **_: Any) -> None:
    """Delete what the VoiceAgent made in ElevenLabs, within the bounds above; 401/403 is final at once."""
    with reconciler(memo).metrics.handling("cleanup"):
        _clean_up(body, memo, retry, runtime)


def _clean_up(body: kopf.Body | dict[str, Any], memo: kopf.Memo, retry: int, runtime: dt.timedelta) -> None:
    delay = backoff(retry)
    # kopf's own look-ahead: the attempt after this one would exceed the retries or the timeout
    final = retry + 1 >= CLEANUP_ATTEMPTS or runtime.total_seconds() + delay >= CLEANUP_TIMEOUT_SECONDS
    try:
        reconciler(memo).clean_up(dict(body), final_attempt=final, attempt=retry + 1, attempts=CLEANUP_ATTEMPTS)
    except CleanupRefused as exc:
        raise kopf.PermanentError(f"ElevenLabs refused the clean-up: {exc}") from exc
    except CleanupPending as exc:
        raise kopf.TemporaryError(f"could not clean up ElevenLabs: {exc}", delay=delay) from exc
    except ClusterError as exc:
        raise kopf.TemporaryError(f"Kubernetes API: {exc}", delay=delay) from exc


# -- what a VoiceAgent depends on: its proxy's Deployment and the Secrets it names ------------------------------------

@kopf.on.event("apps", "v1", "deployments", labels={MANAGED_BY: proxy_labels("")[MANAGED_BY]})
def proxy_deployment_changed(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """READY follows the proxy's rollout as it happens; a proxy Deployment deleted by hand is made again at once."""
    owner = next((ref for ref in body.get("metadata", {}).get("ownerReferences") or [] if ref.get("controller")
                  and ref.get("kind") == KIND and ref.get("apiVersion") == f"{GROUP}/{VERSION}"), None)
    if owner is None or not type:  # not a VoiceAgent's, or kopf's initial listing (resume covers it)
        return
    namespace = str(body["metadata"]["namespace"])
    try:
        if type == "DELETED":
            reconcile_dependent(reconciler(memo), namespace, owner["name"], owner["uid"])
        else:
            reconciler(memo).refresh_availability(namespace, owner["name"], owner["uid"])
    except ClusterError as exc:
        log.warning("%s/%s: %s", namespace, owner["name"], exc)  # the next event retries


@kopf.index(GROUP, VERSION, PLURAL)
def voice_agents_by_secret(namespace: str | None, name: str, uid: str, spec: kopf.Spec, **_: Any
                           ) -> dict[tuple[str | None, str], tuple[str, str]]:
    """(namespace, Secret name) -> the VoiceAgents (name, uid) reading a key from that Secret."""
    llm = spec.get("llm") or {}
    fallbacks = [f for f in llm.get("fallbacks") or [] if isinstance(f, dict)]
    refs = [(part or {}).get("apiKeySecretRef") or {} for part in (llm, spec.get("elevenlabs"), *fallbacks)]
    return {(namespace, ref["name"]): (name, uid) for ref in refs if isinstance(ref, dict) and ref.get("name")}


@kopf.on.event("", "v1", "secrets")
def key_secret_changed(namespace: str | None, name: str, type: str | None, memo: kopf.Memo,
                       voice_agents_by_secret: kopf.Index[tuple[str | None, str], tuple[str, str]] | None = None,
                       **_: Any) -> None:
    """A key rotated (its hash in the pod template changes: the pods roll), or a missing Secret made: the VoiceAgents
    reading it reconcile now, not at their next retry or drift tick."""
    if not type or not namespace or voice_agents_by_secret is None:  # kopf's initial listing: resume covers it
        return
    for agent_name, uid in set(voice_agents_by_secret.get((namespace, name), [])):
        try:
            reconcile_dependent(reconciler(memo), namespace, agent_name, uid)
        except ClusterError as exc:
            log.warning("%s/%s: %s", namespace, agent_name, exc)


def reconcile_dependent(reconciler: Reconciler, namespace: str, name: str, uid: str) -> None:
    """Reconcile a VoiceAgent from an event of something it depends on, writing its status as its handlers do."""
    with reconciler.metrics.handling("dependent") as run:
        outcome = reconciler.reconcile({"metadata": {"namespace": namespace, "name": name, "uid": uid}})
        run.failed(outcome.retry_reason if outcome else None)
    if outcome is not None:
        reconciler.cluster.patch_status(namespace, name, outcome.status)
