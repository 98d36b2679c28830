"""One contract, both conversation stores: in-memory and a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from glimpse.conversation.memory import MemoryStore
from glimpse.conversation.redis import RedisStore
from glimpse.conversation.store import ConversationStore, ConversationStoreError, StoredImage, TooManyImages


def image(n: int) -> StoredImage:
    return StoredImage(f"{n:032x}.jpg", f"s/{n:032x}.jpg", "image/jpeg", 10 + n, 10, 100, 1.5)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ConversationStore]:
    if request.param == "memory":
        store: ConversationStore = MemoryStore(60, 3)
    else:
        store = RedisStore.from_url(request.getfixturevalue("redis_url"), 60, 3)
    yield store
    await store.close()


async def test_lifecycle_sticky(store: ConversationStore) -> None:
    await store.add_image("c1", image(1), ready=False)
    assert await store.take_turn("c1", attach=True, policy="sticky") == []
    assert await store.mark_ready("c1") == 1
    assert await store.take_turn("c1", attach=False, policy="sticky") == []
    assert await store.take_turn("c1", attach=True, policy="sticky") == [image(1)]
    await store.add_image("c1", image(2), ready=True)
    assert await store.take_turn("c1", attach=True, policy="sticky") == [image(1), image(2)]
    assert await store.take_turn("c1", attach=False, policy="sticky") == [image(1), image(2)]
    assert await store.take_turn("other", attach=True, policy="sticky") == []


async def test_once(store: ConversationStore) -> None:
    await store.add_image("c1", image(1), ready=True)
    assert await store.take_turn("c1", attach=True, policy="once") == [image(1)]
    assert await store.take_turn("c1", attach=True, policy="once") == []


async def test_limit(store: ConversationStore) -> None:
    for n in range(3):
        await store.add_image("c1", image(n), ready=n % 2 == 0)
    with pytest.raises(TooManyImages):
        await store.add_image("c1", image(9), ready=True)
    await store.ping()


async def test_concurrent_turns_attach_exactly_once(store: ConversationStore) -> None:
    await store.add_image("c1", image(1), ready=True)
    results = await asyncio.gather(*[store.take_turn("c1", attach=True, policy="once") for _ in range(50)])
    assert sum(len(r) for r in results) == 1


async def test_redis_ttl_expires_state(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, 1, 3)
    await store.add_image("c1", image(1), ready=True)
    await asyncio.sleep(1.3)
    assert await store.take_turn("c1", attach=True, policy="sticky") == []
    keys = await store.client.keys("glimpse:*")
    assert keys == []
    await store.close()


async def test_redis_unreachable_raises_store_error() -> None:
    from tests.processes import free_port

    store = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", 60, 3)
    with pytest.raises(ConversationStoreError):
        await store.ping()
    with pytest.raises(ConversationStoreError):
        await store.take_turn("c1", attach=True, policy="sticky")
    await store.close()


@pytest.mark.parametrize("policy", ["once", "sticky"])
async def test_a_retried_turn_gets_what_the_first_attempt_got(store: ConversationStore, policy: str) -> None:
    await store.add_image("c1", image(1), ready=True)
    first = await store.take_turn("c1", attach=True, policy=policy, turn="turn-a")  # type: ignore[arg-type]
    await store.add_image("c1", image(2), ready=True)  # arrives between the attempt and ElevenLabs' retry
    retry = await store.take_turn("c1", attach=True, policy=policy, turn="turn-a")  # type: ignore[arg-type]
    assert first == retry == [image(1)]
    later = await store.take_turn("c1", attach=True, policy=policy, turn="turn-b")  # type: ignore[arg-type]
    assert later == ([image(2)] if policy == "once" else [image(1), image(2)])
    assert await store.take_turn("c1", attach=True, policy=policy, turn="turn-c") == (  # type: ignore[arg-type]
        [] if policy == "once" else [image(1), image(2)])


async def test_concurrent_retries_of_one_turn_all_get_its_images(store: ConversationStore) -> None:
    await store.add_image("c1", image(1), ready=True)
    results = await asyncio.gather(*[store.take_turn("c1", attach=True, policy="once", turn="same")
                                     for _ in range(20)])
    assert all(r == [image(1)] for r in results)
    assert await store.take_turn("c1", attach=True, policy="once", turn="next") == []
