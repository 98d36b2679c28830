"""Shutting down without cutting anyone off: on SIGTERM the server refuses new chats and fails /readyz
while the streams already being relayed finish, up to a grace period."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from .errors import Unavailable
from .observability.metrics import Metrics

log = logging.getLogger(__name__)


class Drain:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.draining = False
        self.live_streams = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def refuse_if_draining(self) -> None:
        if self.draining:
            raise Unavailable("The server is shutting down; retry on another replica.", retry_after="1")

    @contextlib.contextmanager
    def live_stream(self) -> Iterator[None]:
        """Counts one stream being relayed (the `glimpse_active_streams` gauge too) while the block runs."""
        self.live_streams += 1
        self._metrics.active_streams.inc()
        self._idle.clear()
        try:
            yield
        finally:
            self.live_streams -= 1
            self._metrics.active_streams.dec()
            if self.live_streams == 0:
                self._idle.set()

    async def drain(self, grace_seconds: float) -> None:
        """Refuse new chats from now on and wait until live streams end or the grace period is over."""
        self.draining = True
        log.info("draining: refusing new chats, %d live stream(s) to finish", self.live_streams)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace_seconds)
        if self.live_streams:
            log.warning("grace period over with %d live stream(s); closing them", self.live_streams)
