"""The status one reconcile writes, drafted as the reconcile goes.

A `StatusDraft` starts from the status the object has (kopf's own bookkeeping left out), records each ElevenLabs id
the moment it exists (a status patch of its own, not at the end: whatever fails next, or if the operator dies, the
next reconcile finds the id there), collects the conditions the reconcile sets, and ends in an `Outcome`: the status
with Ready and the generation observed, for the handler to give kopf."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .conditions import set_condition, with_ready


@dataclass
class Outcome:
    status: dict[str, Any]
    retry_reason: str | None = None  # set: ask kopf to retry later


class StatusDraft:
    def __init__(self, body: Mapping[str, Any], patch: Callable[[dict[str, Any]], None]) -> None:
        """`patch`: writes part of the status to the API server at once (a merge patch)."""
        self.generation: int | None = body["metadata"].get("generation")
        self.status: dict[str, Any] = {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
        self.conditions: list[dict[str, Any]] = list(self.status.get("conditions") or [])
        self._patch = patch
        # how the last reconcile ended, before this one changes anything
        previous_generation = self.status.get("observedGeneration")
        apply_failed = any(c.get("type") == "ProxyAvailable" and c.get("reason") == "ApplyFailed"
                           for c in self.conditions)
        self.news = previous_generation != self.generation or apply_failed  # objects applied now are news

    def record(self, **ids: Any) -> None:
        """Write ElevenLabs ids to the status now, as well as to the draft."""
        self.status.update(ids)
        self._patch(ids)

    def condition(self, type_: str, ok: bool, reason: str, message: str) -> None:
        self.conditions = set_condition(self.conditions, type_, ok, reason, message, self.generation)

    def outcome(self, retry: str | None = None) -> Outcome:
        """The status to write: the conditions with Ready (`retry`, or "Waiting.", saying why it is not), the
        generation observed; `retry` also asks kopf to try again."""
        self.conditions = with_ready(self.conditions, retry or "Waiting.", self.generation)
        self.status.update(conditions=self.conditions, observedGeneration=self.generation)
        return Outcome(self.status, retry)
