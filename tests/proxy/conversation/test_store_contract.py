"""One contract, both conversation stores: in-memory and a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from glimpse.conversation.memory import MemoryStore
from glimpse.conversation.redis import RedisStore
from glimpse.conversation.store import (
    ConversationStore,
    ConversationStoreError,
    StoredImage,
    TooManyImageBytes,
    TooManyImages,
)


def image(n: int, size: int = 100) -> StoredImage:
    return StoredImage(f"{n:032x}.jpg", f"s/{n:032x}.jpg", "image/jpeg", 10 + n, 10, size, 1.5)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ConversationStore]:
    if request.param == "memory":
        store: ConversationStore = MemoryStore(60, 3)
    else:
        store = RedisStore.from_url(request.getfixturevalue("redis_url"), 60, 3)
    yield store
    await store.close()


@pytest.fixture(params=["memory", "redis"])
async def quota_store(request: pytest.FixtureRequest) -> AsyncIterator[ConversationStore]:
    """At most 4 images and 250 bytes of them per conversation."""
    if request.param == "memory":
        store: ConversationStore = MemoryStore(60, 4, 250)
    else:
        store = RedisStore.from_url(request.getfixturevalue("redis_url"), 60, 4, 250)
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


async def test_bytes_held_and_the_bytes_quota(quota_store: ConversationStore) -> None:
    assert await quota_store.bytes_held("c1") == 0
    await quota_store.add_image("c1", image(1, 100), ready=False)
    await quota_store.add_image("c1", image(2, 100), ready=True)
    assert await quota_store.bytes_held("c1") == 200
    with pytest.raises(TooManyImageBytes):
        await quota_store.add_image("c1", image(3, 51), ready=True)
    assert await quota_store.bytes_held("c1") == 200  # a refused image is not counted
    await quota_store.add_image("c1", image(4, 50), ready=True)  # exactly the quota still fits
    assert await quota_store.bytes_held("c1") == 250
    assert await quota_store.mark_ready("c1") == 3
    assert await quota_store.take_turn("c1", attach=True, policy="sticky") == [image(2, 100), image(4, 50),
                                                                                image(1, 100)]
    assert await quota_store.bytes_held("c1") == 250  # attached images still take their bytes
    assert await quota_store.bytes_held("c2") == 0  # per conversation


async def test_the_image_count_is_checked_with_the_bytes(quota_store: ConversationStore) -> None:
    for n in range(4):
        await quota_store.add_image("c1", image(n, 1), ready=True)
    with pytest.raises(TooManyImages):
        await quota_store.add_image("c1", image(9, 1), ready=True)
    assert await quota_store.bytes_held("c1") == 4


async def test_concurrent_uploads_never_pass_the_bytes_quota(quota_store: ConversationStore) -> None:
    results = await asyncio.gather(*[quota_store.add_image("c1", image(n, 100), ready=True) for n in range(4)],
                                   return_exceptions=True)
    assert sum(result is None for result in results) == 2
    assert all(result is None or isinstance(result, TooManyImageBytes) for result in results)
    assert await quota_store.bytes_held("c1") == 200


async def test_no_bytes_quota_when_it_is_zero(store: ConversationStore) -> None:
    await store.add_image("c1", image(1, 10**12), ready=True)
    assert await store.bytes_held("c1") == 10**12


async def test_redis_unreachable_bytes_held_is_a_store_error() -> None:
    from tests.processes import free_port

    store = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0", 60, 3, 1000)
    with pytest.raises(ConversationStoreError):
        await store.bytes_held("c1")
    await store.close()


async def test_the_images_a_live_conversation_holds_whatever_their_step(store: ConversationStore) -> None:
    await store.add_image("c1", image(1), ready=False)  # staged
    await store.add_image("c1", image(2), ready=True)  # pending
    await store.add_image("c2", image(3), ready=True)
    await store.take_turn("c2", attach=True, policy="once", turn="t1")  # attached
    assert await store.image_keys_in_use() == {image(1).key, image(2).key, image(3).key}


async def test_an_expired_conversation_holds_no_image(redis_url: str) -> None:
    clock = [0.0]
    memory = MemoryStore(60, 3, now=lambda: clock[0])
    await memory.add_image("c1", image(1), ready=True)
    clock[0] = 61.0
    assert await memory.image_keys_in_use() == set()
    redis = RedisStore.from_url(redis_url, 1, 3)
    try:
        await redis.add_image("c1", image(1), ready=True)
        assert await redis.image_keys_in_use() == {image(1).key}
        await asyncio.sleep(1.2)
        assert await redis.image_keys_in_use() == set()
    finally:
        await redis.close()



@pytest.mark.parametrize("policy", ["once", "sticky"])
async def test_a_removed_image_leaves_every_step_and_its_bytes(quota_store: ConversationStore, policy: str) -> None:
    await quota_store.add_image("c1", image(1, 100), ready=True)
    await quota_store.add_image("c1", image(2, 50), ready=True)
    turn_a = await quota_store.take_turn("c1", attach=True, policy=policy, turn="turn-a")  # type: ignore[arg-type]
    assert turn_a == [image(1, 100), image(2, 50)]
    await quota_store.add_image("c1", image(3, 30), ready=False)  # staged
    await quota_store.add_image("c1", image(4, 20), ready=True)  # pending
    assert await quota_store.image_count("c1") == 4

    assert await quota_store.remove_image("c1", image(1).image_id) == image(1, 100)  # attached, by turn-a
    assert await quota_store.bytes_held("c1") == 100 and await quota_store.image_count("c1") == 3
    assert image(1).key not in await quota_store.image_keys_in_use()
    # ElevenLabs' retry of turn-a no longer brings it back, under either policy
    retry = await quota_store.take_turn("c1", attach=True, policy=policy, turn="turn-a")  # type: ignore[arg-type]
    assert retry == [image(2, 50)]
    assert await quota_store.remove_image("c1", image(3).image_id) == image(3, 30)  # staged
    assert await quota_store.remove_image("c1", image(4).image_id) == image(4, 20)  # pending
    assert await quota_store.mark_ready("c1") == 0
    turn_b = await quota_store.take_turn("c1", attach=True, policy=policy, turn="turn-b")  # type: ignore[arg-type]
    assert turn_b == ([] if policy == "once" else [image(2, 50)])
    assert await quota_store.bytes_held("c1") == 50 and await quota_store.image_count("c1") == 1
    assert await quota_store.image_keys_in_use() == {image(2).key}

    await quota_store.add_image("c1", image(5, 200), ready=True)  # the freed bytes count for the quota again
    assert await quota_store.bytes_held("c1") == 250


async def test_only_the_conversation_holding_an_image_removes_it_and_only_once(store: ConversationStore) -> None:
    await store.add_image("c1", image(1), ready=True)
    assert await store.remove_image("c2", image(1).image_id) is None  # another conversation's image
    assert await store.remove_image("unknown", image(1).image_id) is None
    assert await store.remove_image("c1", image(9).image_id) is None  # not one it holds
    assert await store.bytes_held("c1") == 100 and await store.image_count("c1") == 1
    results = await asyncio.gather(*[store.remove_image("c1", image(1).image_id) for _ in range(20)])
    assert [r for r in results if r is not None] == [image(1)]
    assert await store.bytes_held("c1") == 0 and await store.image_count("c1") == 0
    assert await store.take_turn("c1", attach=True, policy="sticky") == []
    assert await store.image_count("unknown") == 0


async def test_redis_removing_the_last_image_leaves_no_byte_count_behind(redis_url: str) -> None:
    store = RedisStore.from_url(redis_url, 60, 3)
    try:
        await store.add_image("c1", image(1), ready=True)
        assert await store.remove_image("c1", image(1).image_id) == image(1)
        assert await store.client.keys("glimpse:*") == []
    finally:
        await store.close()
