"""Storage quotas an upload must fit: its conversation's image bytes, and the image storage's (0: none).

The conversation store enforces the per-conversation quota atomically when it records an image; the checks
here come first, before the decode, so that a full quota costs no CPU. The storage quota compares what the
storage counts (`ImageStorage.stored_bytes`) plus the bytes of uploads being written right now; a refusal
there is `StorageFull` (507), retried once the sweeper has removed expired images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import SessionQuotaExceeded, StorageFull
from ..observability.metrics import Metrics


class Quotas:
    def __init__(self, metrics: Metrics, *, session_bytes: int, storage_bytes: int, stored: Callable[[], int],
                 retry_after_seconds: int) -> None:
        self.session_bytes = session_bytes
        self.storage_bytes = storage_bytes
        self._stored = stored
        self._writing = 0
        self._metrics = metrics
        self._retry_after = str(max(1, retry_after_seconds))

    @property
    def used(self) -> int:
        """Bytes the storage holds, with those being written now."""
        return self._stored() + self._writing

    def check(self, session_held: int, size: int = 0) -> None:
        """Raise when `size` more bytes (0: any at all) do not fit a conversation holding `session_held`."""
        needed = max(size, 1)
        if self.session_bytes and session_held + needed > self.session_bytes:
            raise self.session_full()
        if self.storage_bytes and self.used + needed > self.storage_bytes:
            self._metrics.quota_refusals.labels("global").inc()
            raise StorageFull(f"Image storage is full (its quota is {describe(self.storage_bytes)}); the image was "
                              "not saved. Try again once expired images have been removed.", code="storage_full",
                              retry_after=self._retry_after)

    @contextmanager
    def reserve(self, session_held: int, size: int) -> Iterator[None]:
        """Check, then count `size` bytes as being written until the block ends (by then the storage counts them)."""
        self.check(session_held, size)
        self._writing += size
        try:
            yield
        finally:
            self._writing -= size

    def session_full(self) -> SessionQuotaExceeded:
        self._metrics.quota_refusals.labels("session").inc()
        return SessionQuotaExceeded(
            f"This conversation's images would take more than its quota of {describe(self.session_bytes)}. "
            "Start a new session to share more images.", code="session_quota_exceeded", param="file")


def describe(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"
