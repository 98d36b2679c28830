"""A cap on chat turns in flight in this replica, from their arrival to their last byte: past it, a turn is refused
at once with a 503 and `Retry-After` (never queued: ElevenLabs waits for a first token, not for a place).

Every turn counts, keyed or not: the per-address and per-conversation rates say how often one caller may ask, this
says how many turns the replica carries at once, whoever asks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import Unavailable

RETRY_AFTER_SECONDS = "1"


class TurnsInFlight:
    def __init__(self, cap: int) -> None:
        if cap <= 0:
            raise ValueError("the cap on turns in flight must be positive")
        self.cap = cap
        self.held = 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        """One place while the block runs; Unavailable (503) when all are taken."""
        if self.held >= self.cap:
            raise Unavailable(f"This server carries {self.cap} turns at once and all of them are taken; retry "
                              "shortly.", code="turns_busy", retry_after=RETRY_AFTER_SECONDS)
        self.held += 1
        try:
            yield
        finally:
            self.held -= 1
