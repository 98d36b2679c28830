"""The bytes upload bodies being read may hold together (GLIMPSE_UPLOAD_BODY_BUDGET_BYTES).

An upload whose token checks out reserves what its body may hold (its Content-Length, or the most an upload may be)
before its file is read, and gives it back once the body is read: from then on the decodes' own budget counts it
(`sizing.decode_memory_bytes`). Past the budget a new upload is refused at once with a 503 and Retry-After, not
queued: a queued upload would hold its connection, and its caller's bytes in the socket, while it waits.

Chat request bodies reserve from the same budget while they are read and parsed (`web/body.py`, review M1): on a
deployment without a custom-LLM key anyone may send them, and the pod's derived memory limit counts this budget
once, for every request body. Past it they get the same 503, coded `request_bodies_busy`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import Unavailable
from ..observability.metrics import Metrics

RETRY_AFTER_SECONDS = "2"


class BodyBudget:
    def __init__(self, budget_bytes: int, metrics: Metrics) -> None:
        self.budget_bytes = budget_bytes
        self.held = 0
        self._metrics = metrics

    @contextmanager
    def reserve(self, size: int, *, upload: bool = True) -> Iterator[None]:
        """Hold `size` bytes of the budget for the block; Unavailable (503) if they are not free. `upload`: an
        upload's body (`uploads_busy`, counted in glimpse_upload_bodies_refused_total), else another request's
        (`request_bodies_busy`)."""
        if self.held + size > self.budget_bytes:
            if upload:
                self._metrics.upload_bodies_refused.inc()
                raise Unavailable("Too many uploads are being received right now; try again shortly.",
                                  code="uploads_busy", retry_after=RETRY_AFTER_SECONDS)
            raise Unavailable("Too many request bodies are being received right now; try again shortly.",
                              code="request_bodies_busy", retry_after=RETRY_AFTER_SECONDS)
        self.held += size
        self._metrics.upload_body_bytes.set(self.held)
        try:
            yield
        finally:
            self.held -= size
            self._metrics.upload_body_bytes.set(self.held)
