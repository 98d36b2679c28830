"""Shutting down without cutting anyone off mid-word: on SIGTERM the server refuses new chats and fails /readyz
while the turns already under way finish, within the grace period. A turn still running when the grace is nearly
over is cut cleanly: a stream gets an in-band error event and its closing event, a turn that has sent nothing yet
gets a 503, so the whole shutdown ends inside the grace and Kubernetes never has to SIGKILL a pod mid-write."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator

from .errors import Unavailable
from .observability.metrics import Metrics

log = logging.getLogger(__name__)

# Of the grace period, kept back for what follows the drain: the turns cut at its end writing their last events,
# then aiohttp's own shutdown of the remaining requests (app.runner_options) and closing the resources.
CUT_SECONDS = 0.5
CLOSE_SECONDS = 1.0


class Drain:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.draining = False
        self._turns: set[asyncio.Task[object]] = set()
        self._cut: set[asyncio.Task[object]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def live_turns(self) -> int:
        return len(self._turns)

    def refuse_if_draining(self) -> None:
        if self.draining:
            raise _shutting_down()

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """One chat turn, from its arrival to its last byte: the drain waits for it, and cuts it at the deadline."""
        self.refuse_if_draining()
        task = asyncio.current_task()
        assert task is not None
        self._turns.add(task)
        self._idle.clear()
        try:
            yield
        finally:
            self._turns.discard(task)
            self._cut.discard(task)
            if not self._turns:
                self._idle.set()

    @contextlib.contextmanager
    def live_stream(self) -> Iterator[None]:
        """Counts one stream being relayed while the block runs: the `glimpse_active_streams` gauge (the HPA's
        signal) and the seconds of `glimpse_stream_seconds_total`."""
        metrics = self._metrics
        metrics.active_streams.inc()
        started = metrics.stream_clock.started()
        try:
            yield
        finally:
            metrics.stream_clock.ended(started)
            metrics.active_streams.dec()

    @contextlib.contextmanager
    def cut_before_answering(self) -> Iterator[None]:
        """Around a turn's work before anything reached its caller: a cut by the drain there is a 503 (the caller
        can retry elsewhere); a caller hanging up still cancels."""
        try:
            yield
        except asyncio.CancelledError:
            if not self.was_cut():
                raise
            raise _shutting_down() from None

    def was_cut(self) -> bool:
        """Called on CancelledError in a turn: True when the drain cut this turn (the turn then ends itself,
        telling its caller), False when the caller hung up (the cancellation goes on)."""
        task = asyncio.current_task()
        if task is None or task not in self._cut:
            return False
        self._cut.discard(task)  # a second cancellation (aiohttp's own shutdown) is not absorbed
        task.uncancel()
        return True

    async def drain(self, grace_seconds: float) -> None:
        """Refuse new chats from now on, let the live turns finish, and cut those still running so that every one
        has ended within `grace_seconds` minus what closing the server takes (CLOSE_SECONDS)."""
        started = time.monotonic()
        self.draining = True
        log.info("draining: refusing new chats, %d turn(s) to finish", self.live_turns)
        budget = max(0.0, grace_seconds - CLOSE_SECONDS)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), max(0.0, budget - CUT_SECONDS))
        if self._turns:
            log.warning("grace period nearly over: cutting %d turn(s) with a final error event", len(self._turns))
            for task in self._turns:
                self._cut.add(task)
                task.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), max(0.0, budget - (time.monotonic() - started)) or 0.1)
        log.info("drained in %.2f s", time.monotonic() - started)


def _shutting_down() -> Unavailable:
    return Unavailable("The server is shutting down; retry on another replica.", retry_after="1")
