"""kopf handlers: small, each calls the Reconciler and hands kopf the status to write."""

from __future__ import annotations

import logging
from typing import Any, cast

import kopf
from kubernetes import config as k8s_config

from . import GROUP, PLURAL, VERSION
from .agents import ElevenLabsError
from .cluster import Cluster
from .reconcile import Reconciler
from .settings import ConfigError, load_settings

RETRY_DELAY_SECONDS = 15
MAX_RETRY_DELAY_SECONDS = 600
DRIFT_INTERVAL_SECONDS = 300


def backoff(retry: int) -> float:
    """15 s, 30 s, 60 s … capped at 10 minutes: ElevenLabs outages and missing Secrets are retried gently."""
    return float(min(MAX_RETRY_DELAY_SECONDS, RETRY_DELAY_SECONDS * 2 ** max(0, retry)))


def reconciler(memo: kopf.Memo) -> Reconciler:
    """The operator's one Reconciler, put into kopf's memo (shared by every resource's memo) at startup."""
    return cast(Reconciler, memo.reconciler)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = "glimpse.dev/cleanup"
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = 8
    try:
        operator_settings = load_settings()
    except ConfigError as exc:
        raise kopf.PermanentError(f"configuration error: {exc}") from None  # stops the operator, no retries
    try:
        k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        k8s_config.load_kube_config()  # type: ignore[no-untyped-call]
    memo.reconciler = Reconciler(Cluster(), operator_settings)


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
@kopf.on.resume(GROUP, VERSION, PLURAL)
def reconcile(body: kopf.Body | dict[str, Any], patch: kopf.Patch, memo: kopf.Memo, retry: int = 0,
              **_: Any) -> None:
    outcome = reconciler(memo).reconcile(dict(body))
    patch.status.update(outcome.status)  # written even when a retry follows
    if outcome.retry_reason:
        raise kopf.TemporaryError(outcome.retry_reason, delay=backoff(retry))


@kopf.timer(GROUP, VERSION, PLURAL, interval=DRIFT_INTERVAL_SECONDS, initial_delay=DRIFT_INTERVAL_SECONDS, idle=60)
def repair_drift(body: kopf.Body | dict[str, Any], patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Re-apply the desired objects (server-side apply restores edited fields) and refresh the status."""
    outcome = reconciler(memo).reconcile(dict(body))
    patch.status.update(outcome.status)


@kopf.on.delete(GROUP, VERSION, PLURAL)
def clean_up(body: kopf.Body | dict[str, Any], memo: kopf.Memo, retry: int = 0, **_: Any) -> None:
    try:
        reconciler(memo).clean_up(dict(body))
    except ElevenLabsError as exc:
        raise kopf.TemporaryError(f"could not clean up ElevenLabs: {exc}", delay=backoff(retry)) from exc
