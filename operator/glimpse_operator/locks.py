"""One lock per VoiceAgent, so that nothing reconciles or cleans up one object twice at the same time.

kopf runs an object's change handlers (create, update, resume, delete) one after another, but its timers and
daemons "run in parallel by design" (kopf's author, nolar/kopf discussion #1046; docs.kopf.dev "Timers"): the
drift timer could otherwise reconcile beside an update handler, and both create an ElevenLabs agent. The handlers
are synchronous and kopf runs them in its thread pool, so these are `threading` locks, kept by the Reconciler
(which kopf's memo shares with every object) and keyed by the object's uid.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ObjectLocks:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def _lock(self, uid: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(uid, threading.Lock())

    @contextmanager
    def hold(self, uid: str, *, wait: bool = True) -> Iterator[bool]:
        """Hold the object's lock for the block; with `wait=False`, yield False at once if someone else holds it
        (the block must then do nothing)."""
        lock = self._lock(uid)
        acquired = lock.acquire(blocking=wait)
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()

    def forget(self, uid: str) -> None:
        """After the object's clean-up: it will not be reconciled again."""
        with self._guard:
            self._locks.pop(uid, None)
