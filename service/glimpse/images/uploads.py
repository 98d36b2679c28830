"""Taking an uploaded image into a conversation (check the token, normalise, store, record), and out of it again.

An upload is checked before its file is read (issue 30): the token, the conversation's quota and picture cap (with
the uploads to it in flight on this replica), and room in the budget of upload bodies being read
(`limits/bodies.py`). Only then is the file read, so a caller without a valid token, or over a cap, holds no memory.

The order matters: the bytes are stored before the conversation records the image, and the stored
object is removed again if recording fails, so state never points at a missing object and no
orphan is left behind. Every outcome is counted here, malformed uploads included. A deletion runs the other way:
the conversation lets go of the image first (so no turn injects it from then on), then its bytes are deleted and
the caches holding them forget it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from ..auth import Signer
from ..conversation.ids import require_session_id
from ..conversation.store import (
    ConversationStore,
    ConversationStoreError,
    StoredImage,
    TooManyImageBytes,
    TooManyImages,
)
from ..errors import GlimpseError, InvalidRequest, NotFound, Unavailable
from ..limits.bodies import BodyBudget
from ..limits.quota import Quotas
from ..observability.metrics import Metrics
from .decoding import DecodeSlots
from .ids import content_type_of, new_image_id
from .normalise import normalise_image, read_header
from .storage import ImageStorage, ImageStorageError
from .urls import ImageUrls

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadHead:
    """What an upload says before its file; `session_id` is checked here, not by the HTTP layer. `body_bytes`: the
    most its body may hold (its Content-Length, or the largest upload's)."""

    session_id: object
    token: str | None
    body_bytes: int


@dataclass(frozen=True)
class UploadBody:
    data: bytes | None
    ready: bool = True


class UploadForm(Protocol):
    """An upload read in two steps (`web/upload_form.py`): `head()` leaves the file unread, `body()` reads it."""

    async def head(self) -> UploadHead: ...

    async def body(self) -> UploadBody: ...


class PicturesInFlight:
    """Uploads being taken into each conversation on this replica, so that concurrent uploads meet the picture cap
    before their decode, not after it (the store still enforces the cap when it records an image)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    @contextmanager
    def reserve(self, session_id: str, held: int, cap: int) -> Iterator[None]:
        """One more picture for `session_id`, which holds `held`; InvalidRequest naming the cap past it."""
        if held + self._counts.get(session_id, 0) >= cap:
            raise too_many_images(cap)
        self._counts[session_id] = self._counts.get(session_id, 0) + 1
        try:
            yield
        finally:
            if (left := self._counts.pop(session_id) - 1) > 0:
                self._counts[session_id] = left


@dataclass(frozen=True)
class UploadResult:
    image: StoredImage
    url: str
    expires_at: int
    session_id: str
    ready: bool

    def to_json(self) -> dict[str, object]:
        return {"image_id": self.image.image_id, "url": self.url, "session_id": self.session_id,
                "expires_at": self.expires_at, "content_type": self.image.content_type,
                "width": self.image.width, "height": self.image.height, "bytes": self.image.size,
                "status": "pending" if self.ready else "staged"}


class ImageUploads:
    """`forget`: told the storage key of every deleted image, so that what caches it lets it go."""

    def __init__(self, signer: Signer, storage: ImageStorage, store: ConversationStore, urls: ImageUrls,
                 quotas: Quotas,
                 metrics: Metrics, *, max_pixels: int, max_edge: int, decode_memory_bytes: int,
                 decode_concurrency: int, decode_queue: int, decode_wait_seconds: float,
                 forget: Callable[[str], None], bodies: BodyBudget) -> None:
        self._signer = signer
        self._storage = storage
        self._store = store
        self._urls = urls
        self._quotas = quotas
        self._metrics = metrics
        self._max_pixels = max_pixels
        self._max_edge = max_edge
        self._forget = forget
        self._bodies = bodies
        self._pictures = PicturesInFlight()
        self._decodes = DecodeSlots(memory_bytes=decode_memory_bytes, concurrency=decode_concurrency,
                                    queue=decode_queue, wait_seconds=decode_wait_seconds,
                                    refused=metrics.image_decodes_refused)

    async def upload(self, form: UploadForm, public_base_url: str) -> UploadResult:
        """Store the image `form` carries, checking the upload before its file is read: the token, the
        conversation's picture cap and quota, and room in the budget of upload bodies. A malformed upload counts
        too."""
        try:
            result = await self._upload(form, public_base_url)
        except GlimpseError as exc:
            self._metrics.images_uploaded.labels("failed" if isinstance(exc, Unavailable) else "rejected").inc()
            raise
        self._metrics.images_uploaded.labels("stored").inc()
        return result

    async def _upload(self, form: UploadForm, public_base_url: str) -> UploadResult:
        head = await form.head()
        session_id = require_session_id(head.session_id)
        self._signer.check_upload_token(session_id, head.token)
        # Checked before the file is read, so that a refused upload costs neither memory nor CPU.
        try:
            held, images = await self._store.bytes_held(session_id), await self._store.image_count(session_id)
        except ConversationStoreError:
            held, images = 0, 0  # recording the image below answers 503 and counts the failure
        self._quotas.check(held)
        with self._pictures.reserve(session_id, images, self._store.max_images):
            with self._bodies.reserve(head.body_bytes):
                body = await form.body()
            return await self._take(session_id, body, held, public_base_url)

    async def _take(self, session_id: str, body: UploadBody, held: int, public_base_url: str) -> UploadResult:
        """Decode, store and record an upload that was checked and read."""
        if body.data is None:
            raise InvalidRequest("The multipart field `file` is required.", param="file")
        # The header says what the decode will need; the decode waits until that much memory is free.
        header = await asyncio.to_thread(read_header, body.data, max_pixels=self._max_pixels,
                                         max_edge=self._max_edge)
        image = await self._decodes.run(header.memory_bytes, partial(normalise_image, body.data,
                                                                     max_pixels=self._max_pixels,
                                                                     max_edge=self._max_edge))
        image_id = new_image_id(image.extension)
        key = self._storage.key_for(session_id, image_id)
        try:
            with self._quotas.reserve(held, len(image.data)):
                await self._storage.put(key, image.data, image.content_type)
        except ImageStorageError as exc:
            log.error("image storage failed: %s", exc)
            raise Unavailable("Image storage is unavailable; the image was not saved. Try again shortly.",
                              retry_after="2") from None
        stored = StoredImage(image_id=image_id, key=key, content_type=image.content_type, width=image.width,
                             height=image.height, size=len(image.data), created_at=time.time())
        try:
            await self._store.add_image(session_id, stored, ready=body.ready)
        except TooManyImages:
            await self._discard(key)
            raise too_many_images(self._store.max_images) from None
        except TooManyImageBytes:
            await self._discard(key)
            raise self._quotas.session_full() from None
        except Exception as exc:
            await self._discard(key)
            self._metrics.store_errors.labels("add_image").inc()
            log.error("conversation store failed while recording an upload: %s", exc)
            raise Unavailable("The conversation store is unavailable; the image was not saved.",
                              retry_after="2") from None
        self._metrics.image_bytes.observe(stored.size)
        signed = await self._urls.url_for(stored, public_base_url)
        return UploadResult(stored, signed.value, signed.expires_at, session_id, body.ready)

    async def mark_ready(self, session_id: object, token: str | None) -> tuple[str, int]:
        """Staged images become pending; returns the session id and how many are pending now."""
        checked = require_session_id(session_id)
        self._signer.check_upload_token(checked, token)
        try:
            return checked, await self._store.mark_ready(checked)
        except Exception as exc:
            self._metrics.store_errors.labels("mark_ready").inc()
            log.error("conversation store failed on ready: %s", exc)
            raise Unavailable("The conversation store is unavailable.", retry_after="2") from None

    async def delete(self, session_id: object, token: str | None, image_id: str) -> int:
        """Detach the image from the session's conversation and delete it; returns how many images the conversation
        still holds. NotFound for an image it does not hold, whoever else may."""
        checked = require_session_id(session_id)
        self._signer.check_upload_token(checked, token)
        if content_type_of(image_id) is None:
            raise _no_such_image()
        try:
            removed = await self._store.remove_image(checked, image_id)
            remaining = await self._store.image_count(checked)
        except Exception as exc:
            self._metrics.store_errors.labels("remove_image").inc()
            log.error("conversation store failed on an image deletion: %s", exc)
            raise Unavailable("The conversation store is unavailable; the image was not deleted.",
                              retry_after="2") from None
        if removed is None:
            raise _no_such_image()
        try:
            await self._storage.delete(removed.key)
        except Exception as exc:  # no turn injects it any more; the sweeper deletes it once it is past its TTL
            log.error("could not delete image %s from storage: %s", removed.key, exc)
        self._forget(removed.key)
        self._metrics.images_deleted.inc()
        return remaining

    async def _discard(self, key: str) -> None:
        try:
            await self._storage.delete(key)
        except Exception as exc:
            log.warning("could not remove image %s after a failed upload: %s", key, exc)


def too_many_images(cap: int) -> InvalidRequest:
    return InvalidRequest(f"This conversation already has {cap} images, the most it can hold "
                          "(GLIMPSE_IMAGES_PER_CONVERSATION); delete one to add another.", code="too_many_images",
                          param="file")


def _no_such_image() -> NotFound:
    return NotFound("This conversation has no such image.", code="image_not_found", param="image_id")
