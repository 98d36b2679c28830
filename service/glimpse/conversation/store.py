"""Conversation state: which images a conversation has, and in which step of their life.

An uploaded image is *staged*; once ready it is *pending*; the next chat turn whose last message is
from the user moves every pending image to *attached* in one atomic step. Under the `sticky` policy a
turn injects all attached images, under `once` only those attached by that very turn.

A turn is known by its key (`conversation.ids.turn_key`, from the messages as the caller sent them).
ElevenLabs retries a failed custom-LLM request with the same messages: the retry of the last attaching turn
attaches nothing new and injects what the first attempt injected, under either policy.

A removed image leaves every step at once, the last attaching turn's record included: no later turn, and no retry
of an earlier one, carries it again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from ..config import Policy


class ConversationStoreError(Exception):
    """The conversation store could not be reached or answered badly."""


class TooManyImages(Exception):
    """The conversation already holds as many images as it may."""


class TooManyImageBytes(Exception):
    """The image would take the conversation's images past its quota of bytes."""


@dataclass(frozen=True)
class StoredImage:
    image_id: str
    key: str
    content_type: str
    width: int
    height: int
    size: int
    created_at: float

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> StoredImage:
        data: dict[str, Any] = orjson.loads(raw)
        return cls(**data)


class ConversationStore(ABC):
    """`max_bytes`: the most bytes (`StoredImage.size`) a conversation's images may take together; 0: no limit."""

    def __init__(self, ttl_seconds: int, max_images: int, max_bytes: int = 0) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_images = max_images
        self.max_bytes = max_bytes

    @abstractmethod
    async def add_image(self, conversation_id: str, image: StoredImage, *, ready: bool) -> None:
        """Record an uploaded image (pending when `ready`, staged otherwise); raise TooManyImages or
        TooManyImageBytes, checked in the same atomic step."""

    @abstractmethod
    async def bytes_held(self, conversation_id: str) -> int:
        """The bytes of the conversation's images (staged, pending and attached); 0 for an unknown one."""

    @abstractmethod
    async def mark_ready(self, conversation_id: str) -> int:
        """Move staged images to pending; return how many are pending now."""

    @abstractmethod
    async def take_turn(self, conversation_id: str, *, attach: bool, policy: Policy,
                        turn: str = "") -> list[StoredImage]:
        """Atomically attach pending images (when `attach`) and return the images this turn injects; a turn
        whose key equals the last attaching turn's is a retry of it (an empty key is never one)."""

    @abstractmethod
    async def remove_image(self, conversation_id: str, image_id: str) -> StoredImage | None:
        """Atomically take the image out of the conversation, whatever its step, and its bytes out of the
        conversation's count; return it, or None when the conversation does not hold it."""

    @abstractmethod
    async def image_count(self, conversation_id: str) -> int:
        """How many images the conversation holds (staged, pending and attached); 0 for an unknown one."""

    @abstractmethod
    async def image_keys_in_use(self) -> set[str]:
        """The storage keys of every image a live conversation holds, whatever its step: the image sweeper keeps
        these, however old, so an image lives as long as its conversation does."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise ConversationStoreError when the store is unreachable."""

    async def close(self) -> None:
        return None
