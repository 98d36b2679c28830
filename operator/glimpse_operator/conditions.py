"""Status conditions: set one, keeping lastTransitionTime when its status did not change; Ready from the others;
ProxyAvailable from the proxy's Deployment."""

from __future__ import annotations

import datetime as dt
from typing import Any


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(conditions: list[dict[str, Any]], type_: str, status: bool, reason: str, message: str,
                  generation: int | None) -> list[dict[str, Any]]:
    value = "True" if status else "False"
    previous = next((c for c in conditions if c.get("type") == type_), None)
    if previous is not None and previous.get("status") == value:
        transition = previous.get("lastTransitionTime", now())
    else:
        transition = now()
    condition = {"type": type_, "status": value, "reason": reason, "message": message[:1000],
                 "lastTransitionTime": transition}
    if generation is not None:
        condition["observedGeneration"] = generation
    return [c for c in conditions if c.get("type") != type_] + [condition]


def is_true(conditions: list[dict[str, Any]], type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions)


READY_MESSAGE = "The proxy is serving and the agent points at it."


def with_ready(conditions: list[dict[str, Any]], waiting: str, generation: int | None) -> list[dict[str, Any]]:
    """`conditions` with Ready set from ProxyAvailable and AgentSynced; `waiting` says why it is not (yet)."""
    ready = is_true(conditions, "ProxyAvailable") and is_true(conditions, "AgentSynced")
    return set_condition(conditions, "Ready", ready, "Ready" if ready else "NotReady",
                         READY_MESSAGE if ready else waiting, generation)


def availability(deployment: dict[str, Any] | None) -> tuple[bool, str, str]:
    """ProxyAvailable from the proxy's Deployment: (status, reason, message)."""
    available = int(((deployment or {}).get("status") or {}).get("availableReplicas") or 0)
    if available > 0:
        return True, "Available", f"{available} proxy replica(s) available."
    return False, "Progressing", "Waiting for a proxy replica to become available."
