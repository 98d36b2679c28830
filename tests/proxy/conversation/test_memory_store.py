from __future__ import annotations

import pytest

from glimpse.conversation.memory import MemoryStore
from glimpse.conversation.store import StoredImage, TooManyImages


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def image(n: int) -> StoredImage:
    return StoredImage(f"{n:032x}.jpg", f"{n:032x}.jpg", "image/jpeg", 10, 10, 100, 0.0)


async def test_staged_pending_attached_sticky() -> None:
    store = MemoryStore(60, 8)
    await store.add_image("c", image(1), ready=False)
    assert await store.take_turn("c", attach=True, policy="sticky") == []
    assert await store.mark_ready("c") == 1
    assert await store.take_turn("c", attach=False, policy="sticky") == []  # not a user turn
    assert await store.take_turn("c", attach=True, policy="sticky") == [image(1)]
    await store.add_image("c", image(2), ready=True)
    assert await store.take_turn("c", attach=True, policy="sticky") == [image(1), image(2)]
    assert await store.take_turn("c", attach=True, policy="sticky") == [image(1), image(2)]


async def test_once_returns_only_newly_attached() -> None:
    store = MemoryStore(60, 8)
    await store.add_image("c", image(1), ready=True)
    assert await store.take_turn("c", attach=True, policy="once") == [image(1)]
    assert await store.take_turn("c", attach=True, policy="once") == []


async def test_ttl_expires_conversations() -> None:
    clock = Clock()
    store = MemoryStore(60, 8, now=clock)
    await store.add_image("c", image(1), ready=True)
    clock.now += 30
    assert await store.take_turn("c", attach=True, policy="sticky") == [image(1)]  # refreshes the TTL
    clock.now += 59
    assert await store.take_turn("c", attach=True, policy="sticky") == [image(1)]
    clock.now += 61
    assert await store.take_turn("c", attach=True, policy="sticky") == []
    assert len(store) == 0


async def test_limit() -> None:
    store = MemoryStore(60, 2)
    await store.add_image("c", image(1), ready=True)
    await store.add_image("c", image(2), ready=False)
    with pytest.raises(TooManyImages):
        await store.add_image("c", image(3), ready=True)
