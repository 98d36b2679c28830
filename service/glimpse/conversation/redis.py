"""Redis conversation store: the same semantics as the in-memory one, shared by every replica.

Each conversation is three lists (staged, pending, attached), plus the last attaching turn's key and what it
attached, and the bytes its images take, under one hash tag, so a Lua script can move pending images to
attached atomically: two replicas racing on one turn never both take them, and a retry of that turn gets what
it got; and so that a removed image leaves every list, and its bytes the count, in one step. Every write and every
turn refreshes the conversation's TTL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from ..config import Policy
from .store import ConversationStore, ConversationStoreError, StoredImage, TooManyImageBytes, TooManyImages

KEY_PREFIX = "glimpse:conv:"
IMAGE_LISTS = (b":staged", b":pending", b":attached", b":last_turn_attached")

_EXPIRE_ALL = "for i = 1, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[1]) end\n"

# Every script gets every key of the conversation: staged, pending, attached, last turn, last turn's images, bytes.
# ARGV ttl, image json, ready flag, max images, max bytes (0: no limit), the image's bytes
ADD_IMAGE = """
local count = redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) + redis.call('LLEN', KEYS[3])
if count >= tonumber(ARGV[4]) then return -1 end
local max_bytes = tonumber(ARGV[5])
if max_bytes > 0 and tonumber(redis.call('GET', KEYS[6]) or 0) + tonumber(ARGV[6]) > max_bytes then return -2 end
redis.call('RPUSH', ARGV[3] == '1' and KEYS[2] or KEYS[1], ARGV[2])
redis.call('INCRBY', KEYS[6], ARGV[6])
""" + _EXPIRE_ALL + "return count + 1"

# ARGV ttl
MARK_READY = """
local staged = redis.call('LRANGE', KEYS[1], 0, -1)
for _, image in ipairs(staged) do redis.call('RPUSH', KEYS[2], image) end
redis.call('DEL', KEYS[1])
""" + _EXPIRE_ALL + "return redis.call('LLEN', KEYS[2])"

# ARGV ttl, attach flag, policy, turn key ('' for none)
TAKE_TURN = """
local attached_now = {}
if ARGV[4] ~= '' and redis.call('GET', KEYS[4]) == ARGV[4] then
  attached_now = redis.call('LRANGE', KEYS[5], 0, -1)
elseif ARGV[2] == '1' and redis.call('EXISTS', KEYS[1], KEYS[2], KEYS[3]) > 0 then
  attached_now = redis.call('LRANGE', KEYS[2], 0, -1)
  redis.call('DEL', KEYS[2], KEYS[5])
  for _, image in ipairs(attached_now) do
    redis.call('RPUSH', KEYS[3], image)
    redis.call('RPUSH', KEYS[5], image)
  end
  redis.call('SET', KEYS[4], ARGV[4])
end
""" + _EXPIRE_ALL + """
if ARGV[3] == 'sticky' then return redis.call('LRANGE', KEYS[3], 0, -1) end
return attached_now
"""

# ARGV ttl, image id. The image is found by its id in each list (it is in attached and in the last turn's images
# at once when that turn attached it) and its bytes are taken off once.
REMOVE_IMAGE = """
local removed = false
for _, list in ipairs({KEYS[1], KEYS[2], KEYS[3], KEYS[5]}) do
  for _, image in ipairs(redis.call('LRANGE', list, 0, -1)) do
    if cjson.decode(image).image_id == ARGV[2] then
      redis.call('LREM', list, 0, image)
      removed = removed or image
    end
  end
end
if not removed then return false end
if redis.call('DECRBY', KEYS[6], string.format('%d', cjson.decode(removed).size)) <= 0 then
  redis.call('DEL', KEYS[6])
end
""" + _EXPIRE_ALL + "return removed"


def conversation_keys(conversation_id: str) -> list[str]:
    base = f"{KEY_PREFIX}{{{conversation_id}}}:"
    return [base + "staged", base + "pending", base + "attached", base + "last_turn", base + "last_turn_attached",
            base + "bytes"]


class RedisStore(ConversationStore):
    def __init__(self, client: redis.Redis, ttl_seconds: int, max_images: int, max_bytes: int = 0) -> None:
        super().__init__(ttl_seconds, max_images, max_bytes)
        self.client = client
        self._add = client.register_script(ADD_IMAGE)
        self._ready = client.register_script(MARK_READY)
        self._take = client.register_script(TAKE_TURN)
        self._remove = client.register_script(REMOVE_IMAGE)

    @classmethod
    def from_url(cls, url: str, ttl_seconds: int, max_images: int, max_bytes: int = 0) -> RedisStore:
        # Short timeouts: with Redis down, a turn goes on without images instead of hanging the voice.
        client = redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1.0, health_check_interval=15,
                                retry_on_timeout=False)
        return cls(client, ttl_seconds, max_images, max_bytes)

    async def _run(self, script: Any, conversation_id: str, *args: Any) -> Any:
        with _store_errors():
            return await script(keys=conversation_keys(conversation_id), args=[self.ttl_seconds, *args])

    async def add_image(self, conversation_id: str, image: StoredImage, *, ready: bool) -> None:
        result = int(await self._run(self._add, conversation_id, image.to_json(), "1" if ready else "0",
                                     self.max_images, self.max_bytes, image.size))
        if result == -1:
            raise TooManyImages(conversation_id)
        if result == -2:
            raise TooManyImageBytes(conversation_id)

    async def bytes_held(self, conversation_id: str) -> int:
        with _store_errors():
            held = await self.client.get(conversation_keys(conversation_id)[5])
        return int(held or 0)

    async def mark_ready(self, conversation_id: str) -> int:
        return int(await self._run(self._ready, conversation_id))

    async def take_turn(self, conversation_id: str, *, attach: bool, policy: Policy,
                        turn: str = "") -> list[StoredImage]:
        raw = await self._run(self._take, conversation_id, "1" if attach else "0", policy, turn)
        return [StoredImage.from_json(item) for item in raw]

    async def remove_image(self, conversation_id: str, image_id: str) -> StoredImage | None:
        raw = await self._run(self._remove, conversation_id, image_id)
        return StoredImage.from_json(raw) if raw else None

    async def image_count(self, conversation_id: str) -> int:
        staged, pending, attached = conversation_keys(conversation_id)[:3]
        with _store_errors():
            async with self.client.pipeline(transaction=True) as pipe:
                for key in (staged, pending, attached):
                    pipe.llen(key)
                counts = await pipe.execute()
        return sum(int(count) for count in counts)

    async def image_keys_in_use(self) -> set[str]:
        """SCANs for the conversations (incrementally: Redis stays responsive), then reads each one's image lists in
        one transaction: a turn moving images from pending to attached during the scan cannot hide them (SCAN alone
        may visit `attached` before the move and `pending` after it)."""
        keys: set[str] = set()
        with _store_errors():
            conversations = list({key.rsplit(b":", 1)[0]
                                  async for key in self.client.scan_iter(match=KEY_PREFIX + "*", count=1000)})
            for start in range(0, len(conversations), 250):
                async with self.client.pipeline(transaction=True) as pipe:
                    for base in conversations[start:start + 250]:
                        for suffix in IMAGE_LISTS:
                            pipe.lrange(base + suffix, 0, -1)
                    for items in await pipe.execute():
                        keys.update(StoredImage.from_json(item).key for item in items)
        return keys

    async def ping(self) -> None:
        with _store_errors():
            await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """Redis failing, in the store's own terms."""
    try:
        yield
    except RedisError as exc:
        raise ConversationStoreError(f"redis: {exc}") from exc
