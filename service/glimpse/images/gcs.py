"""Images in Google Cloud Storage, served to the upstream and the page by V4 signed GET URLs.

The client is the blocking `google-cloud-storage` one, so every call runs in a worker thread, never on
the event loop. Credentials come from the standard Google chain (google-auth's `google.auth.default()`): workload
identity in a cluster (URLs are then signed through the IAM signBlob API with the pod's access token), a
service-account key file (`GOOGLE_APPLICATION_CREDENTIALS`) locally. They are asked for once, with the storage
client's scopes, and serve both the client and URL signing (a client passed in signs with the chain's credentials,
asked for on the first URL). `STORAGE_EMULATOR_HOST` points the client at an emulator, which it calls without
credentials.

Expiry: the periodic sweep lists the prefix and deletes what is older than the image TTL and held by no live
conversation (a conversation can outlive its images' upload time). A bucket lifecycle rule, if any, must allow for
that: an `age` well above the longest conversation.

Byte accounting (the storage quota) is per replica: every sweep sets `stored_bytes` from its listing of the
whole prefix, and this replica's puts add to it in between. Other replicas' uploads count from the next
sweep on, and a delete (a discarded upload, an image the page deleted) from the next sweep too: the count may lag
by one sweep interval of uploads.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from collections.abc import Set
from typing import Any

from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc
from google.auth.transport.requests import Request
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from .storage import ImageNotFound, ImageStorage, ImageStorageError

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10.0
SIGNING_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)  # what IAM signBlob accepts
# A person is waiting: retry transient errors briefly, then answer 503 rather than hang for minutes.
RETRY = DEFAULT_RETRY.with_timeout(5.0)
_FAILURES: tuple[type[BaseException], ...] = (gexc.GoogleAPIError, auth_exc.GoogleAuthError, OSError)
try:  # requests' errors are not OSErrors in every version
    import requests

    _FAILURES = (*_FAILURES, requests.RequestException)
except ImportError:  # pragma: no cover
    pass


class GcsStorage(ImageStorage):
    serves_urls = True

    def __init__(self, bucket: str, prefix: str = "", client: storage.Client | None = None,
                 signing_credentials: Any = None) -> None:
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self._client = client
        self._signing_credentials = signing_credentials

    @property
    def client(self) -> storage.Client:
        if self._client is None:
            if os.environ.get("STORAGE_EMULATOR_HOST"):
                self._client = storage.Client()  # the emulator is called without credentials
            else:
                import google.auth

                credentials, _ = google.auth.default(scopes=storage.Client.SCOPE)
                self._client = storage.Client(credentials=credentials)
                if self._signing_credentials is None:
                    self._signing_credentials = credentials
        return self._client

    def key_for(self, session_id: str, image_id: str) -> str:
        return "/".join(part for part in (self.prefix, session_id, image_id) if part)

    def _blob(self, key: str) -> storage.Blob:
        return self.client.bucket(self.bucket_name).blob(key)

    async def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except gexc.NotFound:
            raise
        except _FAILURES as exc:
            raise ImageStorageError(f"GCS {what} failed: {type(exc).__name__}: {exc}") from exc

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        blob = self._blob(key)
        blob.cache_control = "private, max-age=300"
        # if_generation_match=0: never overwrite an object (names are fresh uuids; this guards mistakes)
        await self._call("upload", blob.upload_from_string, data, content_type=content_type, timeout=TIMEOUT_SECONDS,
                         if_generation_match=0, retry=RETRY)
        self.stored_bytes += len(data)

    async def get(self, key: str) -> bytes:
        try:
            data: bytes = await self._call("download", self._blob(key).download_as_bytes, timeout=TIMEOUT_SECONDS,
                                            retry=RETRY)
        except gexc.NotFound:
            raise ImageNotFound(key) from None
        return data

    async def delete(self, key: str) -> None:
        try:
            await self._call("delete", self._blob(key).delete, timeout=TIMEOUT_SECONDS, retry=RETRY)
        except gexc.NotFound:
            return

    async def signed_url(self, key: str, ttl_seconds: int) -> str:
        return await self._call("signing", self._sign, key, ttl_seconds)  # type: ignore[no-any-return]

    def _sign(self, key: str, ttl_seconds: int) -> str:
        blob = self._blob(key)  # first: a client made here brings the credentials it signs with
        url: str = blob.generate_signed_url(
            version="v4", method="GET", expiration=dt.timedelta(seconds=ttl_seconds), **self._signing_arguments())
        return url

    def _signing_arguments(self) -> dict[str, Any]:
        credentials = self._signing_credentials
        if credentials is None or not (_signs_locally(credentials)
                                       or getattr(credentials, "service_account_email", None)):
            import google.auth

            credentials, _ = google.auth.default(scopes=SIGNING_SCOPES)
            self._signing_credentials = credentials
        if _signs_locally(credentials):
            return {"credentials": credentials}
        if not credentials.valid:
            credentials.refresh(Request())
        # workload identity / metadata server: sign through IAM signBlob with the access token
        return {"service_account_email": credentials.service_account_email, "access_token": credentials.token}

    async def check(self) -> None:
        def probe() -> None:
            iterator = self.client.list_blobs(self.bucket_name, prefix=self.prefix or None, max_results=1,
                                              timeout=TIMEOUT_SECONDS, retry=RETRY)
            list(iterator)

        try:
            await self._call("check", probe)
        except gexc.NotFound as exc:
            raise ImageStorageError(f"GCS bucket {self.bucket_name} does not exist") from exc

    async def sweep(self, max_age_seconds: float, keep: Set[str] = frozenset()) -> int:
        removed: int
        removed, self.stored_bytes = await self._call("sweep", self._sweep, max_age_seconds, keep)
        return removed

    async def measure(self) -> int:
        _, self.stored_bytes = await self._call("measure", self._sweep, None, frozenset())
        return self.stored_bytes

    def _sweep(self, max_age_seconds: float | None, keep: Set[str]) -> tuple[int, int]:
        """Delete the objects older than `max_age_seconds` (None: none) but those in `keep`; return how many, and
        the bytes left."""
        cutoff = None if max_age_seconds is None else dt.datetime.now(dt.UTC) - dt.timedelta(seconds=max_age_seconds)
        removed = kept = 0
        for blob in self.client.list_blobs(self.bucket_name, prefix=(self.prefix + "/") if self.prefix else None,
                                           timeout=TIMEOUT_SECONDS, retry=RETRY):
            if cutoff is not None and blob.time_created is not None and blob.time_created < cutoff \
                    and blob.name not in keep:
                try:
                    blob.delete(timeout=TIMEOUT_SECONDS, retry=RETRY)
                    removed += 1
                except gexc.NotFound:
                    continue
            else:
                kept += blob.size or 0
        return removed, kept


def _signs_locally(credentials: Any) -> bool:
    """A service-account key (not workload identity): V4 URLs can be signed without calling IAM."""
    return bool(getattr(credentials, "signer_email", None)) and hasattr(credentials, "sign_bytes")
