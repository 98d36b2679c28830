"""Unguessable, expiring URLs for stored images: HMAC-signed proxy URLs, or the storage's own (GCS V4).

Both sides of a proxy URL live here: making one for an image, and checking one before its file is served.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..auth import SignedValue, Signer
from ..conversation.store import StoredImage
from ..errors import NotFound, NotPermitted
from .ids import content_type_of
from .storage import ImageStorage

IMAGE_ROUTE = "/v1/images/"


@dataclass(frozen=True)
class ServedImage:
    path: Path
    content_type: str


class ImageUrls:
    def __init__(self, signer: Signer, storage: ImageStorage, ttl_seconds: int) -> None:
        self.signer = signer
        self.storage = storage
        self.ttl_seconds = ttl_seconds

    async def url_for(self, image: StoredImage, public_base_url: str) -> SignedValue:
        if self.storage.serves_urls:
            url = await self.storage.signed_url(image.key, self.ttl_seconds)
            return SignedValue(url, int(time.time()) + self.ttl_seconds)
        query = self.signer.image_query(image.image_id, self.ttl_seconds)
        return SignedValue(f"{public_base_url.rstrip('/')}{IMAGE_ROUTE}{image.image_id}?{query.value}",
                           query.expires_at)

    def open_signed(self, image_id: str, expires: str | None, signature: str | None) -> ServedImage:
        """The file behind a proxy image URL, only when its signature is valid and unexpired."""
        content_type = content_type_of(image_id)
        if content_type is None or self.storage.serves_urls:
            raise NotFound("No such image.")
        if not self.signer.image_signature_valid(image_id, expires, signature):
            raise NotPermitted("This image link is not valid or has expired.", code="invalid_signature")
        path = self.storage.served_file(image_id)
        if path is None:
            raise NotFound("No such image (it may have expired).")
        return ServedImage(path, content_type)
