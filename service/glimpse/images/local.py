"""Images on local disk, written atomically (temp file in the same directory, then rename)."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Set
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .storage import ImageNotFound, ImageStorage, ImageStorageError, StorageLow

MIB = 1024 * 1024


class LocalStorage(ImageStorage):
    def __init__(self, root: Path, min_free_bytes: int = 0) -> None:
        self.root = root
        self.min_free_bytes = min_free_bytes  # `check` fails below this much free space (0: never)

    @classmethod
    def from_url(cls, url: str, min_free_bytes: int = 0) -> LocalStorage:
        parts = urlsplit(url)
        # file://./data/images (relative, netloc ".") and file:///abs/path both work.
        raw = unquote(parts.netloc + parts.path) if parts.netloc in (".", "..") else unquote(parts.path)
        return cls(Path(raw).expanduser().resolve(), min_free_bytes)

    def key_for(self, session_id: str, image_id: str) -> str:
        # Flat: the name is a fresh uuid, so the session adds nothing but a lookup for serving.
        return image_id

    def path_for(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if path.parent != self.root:
            raise ImageNotFound(key)
        return path

    def served_file(self, image_id: str) -> Path | None:
        try:
            path = self.path_for(image_id)  # keys are flat: the image id is the key
        except ImageNotFound:
            return None
        return path if path.is_file() else None

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        try:
            await asyncio.to_thread(self._write_atomically, self.path_for(key), data)
        except OSError as exc:
            raise ImageStorageError(f"could not write the image to local storage ({exc.strerror})") from exc
        self.stored_bytes += len(data)

    def _write_atomically(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def get(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self.path_for(key).read_bytes)
        except FileNotFoundError:
            raise ImageNotFound(key) from None
        except OSError as exc:
            raise ImageStorageError(f"could not read the image ({exc.strerror})") from exc

    async def delete(self, key: str) -> None:
        removed = await asyncio.to_thread(_unlink, self.path_for(key))
        self.stored_bytes = max(0, self.stored_bytes - removed)

    async def check(self) -> None:
        def probe() -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            if not os.access(self.root, os.W_OK):
                raise ImageStorageError(f"{self.root} is not writable")
            if self.min_free_bytes:  # one statvfs: what an unprivileged writer may still use
                disk = os.statvfs(self.root)
                free = disk.f_bavail * disk.f_frsize
                if free < self.min_free_bytes:
                    raise StorageLow(f"disk low: {free // MIB} MiB free, below GLIMPSE_STORAGE_MIN_FREE_BYTES "
                                     f"({self.min_free_bytes // MIB} MiB)")

        try:
            await asyncio.to_thread(probe)
        except OSError as exc:
            raise ImageStorageError(f"{self.root}: {exc.strerror}") from exc

    async def sweep(self, max_age_seconds: float, keep: Set[str] = frozenset()) -> int:
        removed, self.stored_bytes = await asyncio.to_thread(self._sweep, time.time() - max_age_seconds, keep)
        return removed

    async def measure(self) -> int:
        _, self.stored_bytes = await asyncio.to_thread(self._sweep, None, frozenset())
        return self.stored_bytes

    def _sweep(self, cutoff: float | None, keep: Set[str]) -> tuple[int, int]:
        """Delete the files older than `cutoff` (None: none) but those in `keep`; return how many, and the bytes of
        those left."""
        removed = kept = 0
        if not self.root.is_dir():
            return 0, 0
        for entry in os.scandir(self.root):
            try:
                if not entry.is_file():
                    continue
                stat = entry.stat()
                if cutoff is not None and stat.st_mtime < cutoff and entry.name not in keep:
                    os.unlink(entry.path)
                    removed += 1
                else:
                    kept += stat.st_size
            except FileNotFoundError:
                continue
        return removed, kept


def _unlink(path: Path) -> int:
    """Remove `path`; return the bytes it held (0 when it was not there)."""
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size
