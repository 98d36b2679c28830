"""Taking an uploaded image into a conversation: check the token, normalise, store, record.

The order matters: the bytes are stored before the conversation records the image, and the stored
object is removed again if recording fails, so state never points at a missing object and no
orphan is left behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass

from .conversations import is_valid_session_id
from .errors import ApiError
from .images import normalise_image
from .services import Services
from .storage import StorageError
from .store import StoredImage, TooManyImages

log = logging.getLogger(__name__)


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


def require_session_id(value: object) -> str:
    if not is_valid_session_id(value):
        raise ApiError(400, "`session_id` is required: 1-128 characters of letters, digits, '-', '_', '.', ':'.",
                       param="session_id")
    return str(value)


class ImageUploads:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def upload(self, session_id: str, token: str | None, raw: bytes, *, ready: bool,
                     public_base_url: str) -> UploadResult:
        services, settings = self.services, self.services.settings
        services.signer.check_upload_token(session_id, token)
        image = await asyncio.to_thread(normalise_image, raw, max_pixels=settings.image_max_pixels,
                                        max_edge=settings.image_max_edge)
        image_id = f"{uuid.uuid4().hex}.{image.extension}"
        key = services.storage.key_for(session_id, image_id)
        try:
            await services.storage.put(key, image.data, image.content_type)
        except StorageError as exc:
            log.error("image storage failed: %s", exc)
            raise ApiError(503, "Image storage is unavailable; the image was not saved. Try again shortly.",
                           headers={"Retry-After": "2"}) from None
        stored = StoredImage(image_id=image_id, key=key, content_type=image.content_type, width=image.width,
                             height=image.height, size=len(image.data), created_at=time.time())
        try:
            await services.store.add_image(session_id, stored, ready=ready)
        except TooManyImages:
            await self._discard(key)
            raise ApiError(400, f"This conversation already has {settings.images_per_conversation} images, "
                                "the most it can hold.", code="too_many_images") from None
        except Exception as exc:
            await self._discard(key)
            services.metrics.store_errors.labels("add_image").inc()
            log.error("conversation store failed while recording an upload: %s", exc)
            raise ApiError(503, "The conversation store is unavailable; the image was not saved.",
                           headers={"Retry-After": "2"}) from None
        services.metrics.image_bytes.observe(stored.size)
        signed = await services.urls.url_for(stored, public_base_url)
        return UploadResult(stored, signed.value, signed.expires_at, session_id, ready)

    async def mark_ready(self, session_id: str, token: str | None) -> int:
        self.services.signer.check_upload_token(session_id, token)
        try:
            return await self.services.store.mark_ready(session_id)
        except Exception as exc:
            self.services.metrics.store_errors.labels("mark_ready").inc()
            log.error("conversation store failed on ready: %s", exc)
            raise ApiError(503, "The conversation store is unavailable.", headers={"Retry-After": "2"}) from None

    async def _discard(self, key: str) -> None:
        try:
            await self.services.storage.delete(key)
        except Exception as exc:
            log.warning("could not remove image %s after a failed upload: %s", key, exc)
