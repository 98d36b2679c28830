"""Events about one VoiceAgent: what `kubectl describe` lists, each one logged too."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .cluster import Cluster

log = logging.getLogger(__name__)

NORMAL, WARNING = "Normal", "Warning"


@dataclass(frozen=True)
class Events:
    cluster: Cluster
    body: dict[str, Any]  # the VoiceAgent they are about

    def normal(self, reason: str, message: str) -> None:
        self._post(NORMAL, reason, message)

    def warning(self, reason: str, message: str) -> None:
        self._post(WARNING, reason, message)

    def _post(self, type_: str, reason: str, message: str) -> None:
        meta = self.body["metadata"]
        log.log(logging.WARNING if type_ == WARNING else logging.INFO, "%s/%s %s: %s", meta["namespace"],
                meta["name"], reason, message)
        self.cluster.post_event(self.body, type_, reason, message)
