"""In-process conversation store with TTL: the embedded default for one replica."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..config import Policy
from .store import ConversationStore, StoredImage, TooManyImageBytes, TooManyImages


@dataclass
class _Conversation:
    expires_at: float
    staged: list[StoredImage] = field(default_factory=list)
    pending: list[StoredImage] = field(default_factory=list)
    attached: list[StoredImage] = field(default_factory=list)
    last_turn: str = ""
    last_turn_attached: list[StoredImage] = field(default_factory=list)
    bytes_held: int = 0

    def count(self) -> int:
        return len(self.staged) + len(self.pending) + len(self.attached)


class MemoryStore(ConversationStore):
    """Every method runs without awaiting, so each one is atomic on the event loop."""

    def __init__(self, ttl_seconds: int, max_images: int, max_bytes: int = 0,
                 now: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ttl_seconds, max_images, max_bytes)
        self._now = now
        self._conversations: dict[str, _Conversation] = {}
        self._next_purge = 0.0

    def _get(self, conversation_id: str, create: bool) -> _Conversation | None:
        now = self._now()
        if now >= self._next_purge:
            self._purge(now)
        conversation = self._conversations.get(conversation_id)
        if conversation is not None and conversation.expires_at <= now:
            del self._conversations[conversation_id]
            conversation = None
        if conversation is None and create:
            conversation = self._conversations[conversation_id] = _Conversation(now + self.ttl_seconds)
        if conversation is not None:
            conversation.expires_at = now + self.ttl_seconds
        return conversation

    def _purge(self, now: float) -> None:
        for key in [k for k, c in self._conversations.items() if c.expires_at <= now]:
            del self._conversations[key]
        self._next_purge = now + min(60.0, self.ttl_seconds)

    async def add_image(self, conversation_id: str, image: StoredImage, *, ready: bool) -> None:
        conversation = self._get(conversation_id, create=True)
        assert conversation is not None
        if conversation.count() >= self.max_images:
            raise TooManyImages(conversation_id)
        if self.max_bytes and conversation.bytes_held + image.size > self.max_bytes:
            raise TooManyImageBytes(conversation_id)
        (conversation.pending if ready else conversation.staged).append(image)
        conversation.bytes_held += image.size

    async def bytes_held(self, conversation_id: str) -> int:
        conversation = self._get(conversation_id, create=False)
        return conversation.bytes_held if conversation is not None else 0

    async def mark_ready(self, conversation_id: str) -> int:
        conversation = self._get(conversation_id, create=False)
        if conversation is None:
            return 0
        conversation.pending.extend(conversation.staged)
        conversation.staged.clear()
        return len(conversation.pending)

    async def take_turn(self, conversation_id: str, *, attach: bool, policy: Policy,
                        turn: str = "") -> list[StoredImage]:
        conversation = self._get(conversation_id, create=False)
        if conversation is None:
            return []
        newly_attached: list[StoredImage] = []
        if turn and turn == conversation.last_turn:
            newly_attached = list(conversation.last_turn_attached)
        elif attach:
            newly_attached, conversation.pending = conversation.pending, []
            conversation.attached.extend(newly_attached)
            conversation.last_turn, conversation.last_turn_attached = turn, list(newly_attached)
        return list(conversation.attached) if policy == "sticky" else newly_attached

    async def remove_image(self, conversation_id: str, image_id: str) -> StoredImage | None:
        conversation = self._get(conversation_id, create=False)
        if conversation is None:
            return None
        removed: StoredImage | None = None
        for images in (conversation.staged, conversation.pending, conversation.attached,
                       conversation.last_turn_attached):
            for image in [image for image in images if image.image_id == image_id]:
                images.remove(image)
                removed = image
        if removed is not None:
            conversation.bytes_held = max(0, conversation.bytes_held - removed.size)
        return removed

    async def image_count(self, conversation_id: str) -> int:
        conversation = self._get(conversation_id, create=False)
        return conversation.count() if conversation is not None else 0

    async def image_keys_in_use(self) -> set[str]:
        self._purge(self._now())
        return {image.key for conversation in self._conversations.values()
                for images in (conversation.staged, conversation.pending, conversation.attached,
                               conversation.last_turn_attached)
                for image in images}

    async def ping(self) -> None:
        return None

    def __len__(self) -> int:
        return len(self._conversations)
