"""Putting a conversation's images into what the upstream LLM sees: Chat Completions `messages` or
Responses API `input` items.

`insert_image_message` and `insert_image_input` are the pure rules (where, and in which API's shape);
`ImageInjector` applies one of them to a request using the conversation store and the image storage.
"""

from __future__ import annotations

import base64
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..auth import SignedValue
from ..config import Delivery, Detail, Policy
from ..images.storage import ImageStorage
from ..images.urls import ImageUrls
from ..observability.metrics import Metrics
from .ids import conversation_id_of, last_message_is_from_user, session_key_of, turn_key
from .payload_memory import PayloadReservation, TurnPayloadMemory, payload_bytes
from .store import ConversationStore, StoredImage

log = logging.getLogger(__name__)

LEADING_ROLES = frozenset({"system", "developer"})
MAX_SIGNED_URLS = 10_000  # signed image URLs kept for reuse (a few hundred bytes each)

IMAGE_NOTE_ONE = ("(System note: the user has shared an image in this conversation. Use it to answer "
                  "their questions about what they are showing you.)")
IMAGE_NOTE_MANY = ("(System note: the user has shared {count} images in this conversation, oldest first. "
                   "Use them to answer their questions about what they are showing you.)")


def image_note(count: int) -> str:
    return IMAGE_NOTE_ONE if count == 1 else IMAGE_NOTE_MANY.format(count=count)


def insertion_index(messages: list[Any]) -> int:
    """Right after the leading system/developer message(s)."""
    index = 0
    while index < len(messages) and isinstance(messages[index], dict) \
            and messages[index].get("role") in LEADING_ROLES:
        index += 1
    return index


def insert_image_message(messages: list[Any], image_urls: list[str], detail: str) -> list[Any]:
    """A new list with one user message carrying a note and the images; the caller's messages are
    neither changed, reordered, duplicated nor dropped."""
    if not image_urls:
        return list(messages)
    content: list[dict[str, Any]] = [{"type": "text", "text": image_note(len(image_urls))}]
    content += [{"type": "image_url", "image_url": {"url": url, "detail": detail}} for url in image_urls]
    index = insertion_index(messages)
    return [*messages[:index], {"role": "user", "content": content}, *messages[index:]]


def insert_image_input(items: list[Any], image_urls: list[str], detail: str) -> list[Any]:
    """The same for Responses API input items: one user message item with `input_text` and `input_image`
    parts (`image_url` is a plain string there), after the leading system/developer items."""
    if not image_urls:
        return list(items)
    content: list[dict[str, Any]] = [{"type": "input_text", "text": image_note(len(image_urls))}]
    content += [{"type": "input_image", "image_url": url, "detail": detail} for url in image_urls]
    index = insertion_index(items)
    return [*items[:index], {"role": "user", "content": content}, *items[index:]]


def last_input_is_from_user(items: list[Any]) -> bool:
    """A user message item last (not a function call output, not the assistant's)."""
    last = items[-1] if items else None
    return isinstance(last, dict) and last.get("role") == "user" and last.get("type", "message") == "message"


@dataclass(frozen=True)
class Shape:
    """How one API carries a conversation: which turn is the user's, and where images go."""

    last_is_from_user: Callable[[list[Any]], bool]
    insert: Callable[[list[Any], list[str], str], list[Any]]


CHAT_MESSAGES = Shape(last_message_is_from_user, insert_image_message)
RESPONSES_INPUT = Shape(last_input_is_from_user, insert_image_input)


@dataclass(frozen=True)
class InjectionResult:
    messages: list[Any]
    conversation_id: str | None
    image_count: int
    store_failed: bool = False
    # what `ImageInjector.inline` needs to build the same turn with data: URLs
    original: list[Any] | None = None
    images: tuple[StoredImage, ...] = ()
    shape: Shape | None = None
    # the turn's share of the payload memory while its pictures are inline in its request (`ImageInjector.inline`
    # may take it later); `release` it once the upstream has the request
    reservation: list[PayloadReservation] = field(default_factory=list)

    def release(self) -> None:
        for reservation in self.reservation:
            reservation.release()


class _DataUrlCache:
    """Recently injected images as data: URLs, so sticky turns do not re-read and re-encode them (and send the same
    bytes, which the upstream's prompt cache needs). `keep_only` drops those no live conversation holds."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._items: OrderedDict[str, str] = OrderedDict()

    def get(self, key: str) -> str | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: str) -> None:
        if len(value) > self._max_bytes:
            return
        old = self._items.pop(key, None)
        self._bytes += len(value) - (len(old) if old else 0)
        self._items[key] = value
        while self._bytes > self._max_bytes:
            _, evicted = self._items.popitem(last=False)
            self._bytes -= len(evicted)

    def drop(self, key: str) -> None:
        value = self._items.pop(key, None)
        if value is not None:
            self._bytes -= len(value)

    def keep_only(self, keys: set[str]) -> None:
        for key in [key for key in self._items if key not in keys]:
            self.drop(key)

    @property
    def bytes(self) -> int:
        return self._bytes


SessionKeyCheck = Callable[[str, object], bool]


class ImageInjector:
    """`session_key_valid`: whether a turn's session key opens the conversation it names (None: a session id is
    enough, for pages older than session keys)."""

    def __init__(self, store: ConversationStore, storage: ImageStorage, urls: ImageUrls, metrics: Metrics, *,
                 delivery: Delivery, policy: Policy, detail: Detail, payload_memory: TurnPayloadMemory,
                 data_url_cache_bytes: int, session_key_valid: SessionKeyCheck | None = None) -> None:
        self.store = store
        self.session_key_valid = session_key_valid
        self.storage = storage
        self.urls = urls
        self.metrics = metrics
        self.delivery = delivery
        self.policy = policy
        self.detail = detail
        self.payload_memory = payload_memory
        self._data_urls = _DataUrlCache(max_bytes=data_url_cache_bytes)
        self._signed: OrderedDict[tuple[str, str], SignedValue] = OrderedDict()

    def forget(self, key: str) -> None:
        """Drop what is cached for the image stored under `key` (deleted): its data: URL and its signed URLs."""
        self._data_urls.drop(key)
        for cached in [cached for cached in self._signed if cached[0] == key]:
            del self._signed[cached]

    def keep_only(self, keys: set[str]) -> None:
        """Drop what is cached for every image not stored under one of `keys` (those of the live conversations):
        the pictures of conversations that ended or expired."""
        self._data_urls.keep_only(keys)
        for cached in [cached for cached in self._signed if cached[0] not in keys]:
            del self._signed[cached]

    @property
    def data_url_cache_bytes(self) -> int:
        return self._data_urls.bytes

    async def apply(self, body: dict[str, Any], messages: list[Any], public_base_url: str,
                    shape: Shape = CHAT_MESSAGES) -> InjectionResult:
        """`messages` (or input items) of `body` with the conversation's images for this turn."""
        conversation_id = conversation_id_of(body)
        if conversation_id is None:
            return InjectionResult(messages, None, 0)
        if self.session_key_valid is not None and not self.session_key_valid(conversation_id, session_key_of(body)):
            # Whoever knows a session id (or sets it as their ElevenLabs user id) is not its page: the turn is
            # answered, without that conversation's images, and the images stay where they are.
            self.metrics.unbound_turns.inc()
            return InjectionResult(messages, conversation_id, 0)
        try:
            images = await self.store.take_turn(conversation_id, attach=shape.last_is_from_user(messages),
                                                policy=self.policy, turn=turn_key(messages))
        except Exception as exc:  # the store is optional for a turn: answer without images
            log.warning("conversation store failed, answering without images: %s", exc)
            self.metrics.store_errors.labels("take_turn").inc()
            return InjectionResult(messages, conversation_id, 0, store_failed=True)
        if not images:
            return InjectionResult(messages, conversation_id, 0)
        reservation = [await self._reserve(images)] if self.delivery == "inline" else []
        try:
            urls = [url for url in [await self._url_for(image, public_base_url, self.delivery) for image in images]
                    if url]
        except BaseException:
            for held in reservation:
                held.release()
            raise
        self.metrics.images_injected.labels(self.policy).inc(len(urls))
        return InjectionResult(shape.insert(messages, urls, self.detail), conversation_id, len(urls),
                               original=messages, images=tuple(images), shape=shape, reservation=reservation)

    async def inline(self, result: InjectionResult) -> list[Any]:
        """The turn of `result` with its images as data: URLs, for an upstream that fetches no URLs (Gemini)."""
        if self.delivery == "inline" or result.shape is None or result.original is None:
            return result.messages
        if not result.reservation:  # once a turn, whatever upstream it fails over to
            result.reservation.append(await self._reserve(result.images))
        urls = [url for url in [await self._url_for(image, "", "inline") for image in result.images] if url]
        return result.shape.insert(result.original, urls, self.detail)

    async def _reserve(self, images: list[StoredImage] | tuple[StoredImage, ...]) -> PayloadReservation:
        """The payload memory these images take inline in a request: held before a byte of it is built."""
        return await self.payload_memory.reserve(payload_bytes(images))

    async def _signed_url(self, image: StoredImage, public_base_url: str) -> str | None:
        """The image's signed URL, the same one turn after turn while it has at least half its lifetime left: a
        URL that changed every turn would change the prompt's prefix, and the upstream's prompt cache would miss."""
        key = (image.key, public_base_url)
        cached = self._signed.get(key)
        if cached is not None and cached.expires_at - time.time() >= self.urls.ttl_seconds / 2:
            self._signed.move_to_end(key)
            return cached.value
        try:
            signed = await self.urls.url_for(image, public_base_url)
        except Exception as exc:
            log.warning("no URL could be signed for image %s: %s", image.image_id, exc)
            return None
        self._signed[key] = signed
        if len(self._signed) > MAX_SIGNED_URLS:
            self._signed.popitem(last=False)
        return signed.value

    async def _url_for(self, image: StoredImage, public_base_url: str, delivery: Delivery) -> str | None:
        if delivery == "url":
            return await self._signed_url(image, public_base_url)
        cached = self._data_urls.get(image.key)
        if cached is not None:
            return cached
        try:
            data = await self.storage.get(image.key)
        except Exception as exc:
            log.warning("image %s could not be read for inline delivery: %s", image.image_id, exc)
            return None
        url = f"data:{image.content_type};base64,{base64.b64encode(data).decode()}"
        self._data_urls.put(image.key, url)
        return url
