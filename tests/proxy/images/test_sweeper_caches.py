"""A sweep tells the picture caches which images live conversations hold (`images/sweeper.py`)."""

from __future__ import annotations

from typing import Any

from glimpse.images.sweeper import sweep_expired


class Store:
    async def image_keys_in_use(self) -> set[str]:
        return {"live"}


class Storage:
    def __init__(self) -> None:
        self.kept: set[str] | None = None

    async def sweep(self, max_age_seconds: float, keep: set[str]) -> int:
        self.kept = keep
        return 0


async def test_a_sweep_tells_the_caches_what_is_in_use() -> None:
    told: list[set[str]] = []
    storage: Any = Storage()
    store: Any = Store()
    await sweep_expired(storage, store, 60, told.append)
    assert told == [{"live"}] and storage.kept == {"live"}
