"""Where image bytes live: local disk (default), Google Cloud Storage, or S3 and S3-compatible stores.

Conversation state never points at an object that was not written: callers `put` first and record
the image only after `put` returned.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Set
from pathlib import Path


class ImageStorageError(Exception):
    """The storage backend failed; the caller answers 503."""


class StorageLow(ImageStorageError):
    """Local disk with less free space than GLIMPSE_STORAGE_MIN_FREE_BYTES: `/readyz` says so, with `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ImageNotFound(KeyError):
    """No stored image under that key."""


class ImageStorage(ABC):
    #: True when images are served by the backend itself (signed GCS or presigned S3 URLs), not through the proxy.
    serves_urls: bool = False
    #: The bytes of images held, as this replica knows them: measured at start-up and by every sweep (which
    #: lists everything anyway), adjusted by this replica's puts and deletes in between.
    stored_bytes: int = 0

    @abstractmethod
    def key_for(self, session_id: str, image_id: str) -> str: ...

    @abstractmethod
    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    @abstractmethod
    async def get(self, key: str) -> bytes: ...

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    async def signed_url(self, key: str, ttl_seconds: int) -> str:
        raise NotImplementedError

    def served_file(self, image_id: str) -> Path | None:
        """The file behind an image the proxy serves itself (local disk), when it exists; None elsewhere."""
        return None

    @abstractmethod
    async def check(self) -> None:
        """Raise ImageStorageError when the backend cannot be used (readiness)."""

    @abstractmethod
    async def sweep(self, max_age_seconds: float, keep: Set[str] = frozenset()) -> int:
        """Delete images older than `max_age_seconds` but those whose key is in `keep` (a live conversation holds
        them); return how many. Sets `stored_bytes` to what is left."""

    async def measure(self) -> int:
        """Count the bytes of all images held; sets and returns `stored_bytes`."""
        return self.stored_bytes

    async def close(self) -> None:
        return None
