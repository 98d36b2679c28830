"""The memory of pictures built into upstream requests: one budget of bytes for every turn in flight.

A turn that sends pictures inline reserves what they take in its request (`PAYLOAD_COPIES` times their data: URLs)
before the body is built, and gives it back once the upstream has answered the request (`ChatService`). Turns that
do not fit wait, first come first served, for at most `wait_seconds`, then get a 503 (`turn_memory_busy`): never an
unbounded allocation. A turn needing more than the whole budget reserves all of it, so it runs alone. The budget
enters the pod's memory limit (`sizing.turn_memory_bytes`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable

from prometheus_client import Counter

from ..errors import Unavailable
from .store import StoredImage

# The data: URLs the request holds (the cache may have let them go: it is smaller than many conversations' pictures),
# the serialised body, and asyncio's copy of what the socket has not taken yet. Measured without a budget: 20 turns of
# 13.7 MiB requests held 823 MiB at once, 3.0 times their bodies.
PAYLOAD_COPIES = 3
DATA_URL_PREFIX = len("data:;base64,")


def data_url_bytes(image: StoredImage) -> int:
    """The length of the image's data: URL, from its stored size: base64 takes 4 bytes for every 3."""
    return DATA_URL_PREFIX + len(image.content_type) + 4 * -(-image.size // 3)


def payload_bytes(images: Iterable[StoredImage]) -> int:
    """What a request carrying these images inline takes in memory while it is sent."""
    return PAYLOAD_COPIES * sum(data_url_bytes(image) for image in images)


def _busy() -> Unavailable:
    return Unavailable("Too many pictures are being sent to the LLM right now; try again in a moment.",
                       code="turn_memory_busy", retry_after="1")


class PayloadReservation:
    """Bytes held out of a `TurnPayloadMemory` until `release` (idempotent)."""

    def __init__(self, memory: TurnPayloadMemory | None = None, nbytes: int = 0) -> None:
        self._memory = memory
        self.nbytes = nbytes

    def release(self) -> None:
        memory, self._memory = self._memory, None
        if memory is not None:
            memory.give_back(self.nbytes)


class TurnPayloadMemory:
    def __init__(self, budget_bytes: int, wait_seconds: float, refused: Counter) -> None:
        self.budget_bytes = budget_bytes
        self._wait_seconds = wait_seconds
        self._refused = refused
        self._free = budget_bytes
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def reserved_bytes(self) -> int:
        return self.budget_bytes - self._free

    async def reserve(self, nbytes: int) -> PayloadReservation:
        """`nbytes` (at most the whole budget) held for the caller; 503 when they are not free in time."""
        nbytes = min(nbytes, self.budget_bytes)
        if nbytes <= 0:
            return PayloadReservation()
        if not self._waiting and nbytes <= self._free:
            self._free -= nbytes
            return PayloadReservation(self, nbytes)
        entry = (nbytes, asyncio.get_running_loop().create_future())
        self._waiting.append(entry)
        granted = entry[1]
        try:
            async with asyncio.timeout(self._wait_seconds):
                await granted
        except BaseException as exc:
            if granted.done() and not granted.cancelled():  # granted just as the wait ended
                if isinstance(exc, TimeoutError):
                    return PayloadReservation(self, nbytes)
                self.give_back(nbytes)
                raise
            if entry in self._waiting:
                self._waiting.remove(entry)
                self._wake()  # the next in line may fit now
            if isinstance(exc, TimeoutError):
                self._refused.inc()
                raise _busy() from None
            raise
        return PayloadReservation(self, nbytes)

    def give_back(self, nbytes: int) -> None:
        self._free += nbytes
        self._wake()

    def _wake(self) -> None:
        while self._waiting:
            nbytes, granted = self._waiting[0]
            if granted.done():  # its waiter was cancelled and has not removed itself yet
                self._waiting.popleft()
                continue
            if nbytes > self._free:
                return
            self._waiting.popleft()
            self._free -= nbytes
            granted.set_result(None)
