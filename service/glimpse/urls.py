"""Unguessable, expiring URLs for stored images: HMAC-signed proxy URLs, or the storage's own."""

from __future__ import annotations

import time

from .auth import SignedValue, Signer
from .storage import ImageStorage
from .store import StoredImage

IMAGE_ROUTE = "/v1/images/"


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
