"""Images in S3 or an S3-compatible store (MinIO, Cloudflare R2), served to the upstream and the page by presigned
GET URLs (SigV4).

The client is boto3's blocking one, so every call runs in a worker thread, never on the event loop (the client is
made there too, on first use: loading its service model takes a while). Credentials and the region come from the
standard AWS chain, never from Glimpse's own settings: `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, a web identity
token (`AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`: IRSA on EKS), EKS Pod Identity, a profile, an instance
profile; `AWS_REGION` (or `AWS_DEFAULT_REGION`) says the bucket's region, for which presigned URLs are signed (on AWS
the readiness check fails, naming the bucket's region, when it is another).
`GLIMPSE_S3_ENDPOINT_URL` points the client at MinIO, R2 or another S3-compatible endpoint (addressed path-style
there: http://host:9000/bucket/key).

Every call is bounded (connect and read timeouts, a few attempts in the standard retry mode): a person is waiting,
and an unreachable store answers 503 in seconds rather than hang. Objects are written with `If-None-Match: *`, so
that an object is never overwritten (names are fresh uuids; this guards mistakes); a store that does not implement
conditional writes is written to without it from then on.

A presigned URL is valid for GLIMPSE_IMAGE_URL_TTL_SECONDS, or until the credentials that signed it expire, whichever
comes first: temporary credentials (IRSA's last an hour by default) may cut a URL short near their renewal. The upstream
LLM fetches `url`-delivered images itself, so the endpoint must be reachable from it (an in-cluster MinIO is not: use
inline delivery there).

Expiry: the periodic sweep lists the prefix and deletes what is older than the image TTL (by `LastModified`, the
upload time: objects are never rewritten) and held by no live conversation. A bucket lifecycle rule, if any, must
allow for that: an expiration well above the longest conversation.

Byte accounting (the storage quota) is per replica: every sweep sets `stored_bytes` from its listing of the whole
prefix, and this replica's puts and deletes adjust it in between. Other replicas' uploads and deletions count from
the next sweep on: the count may lag by one sweep interval of uploads.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import threading
from collections.abc import Callable, Set
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .storage import ImageNotFound, ImageStorage, ImageStorageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_SECONDS = 10.0
# A person is waiting: retry transient errors briefly (the standard mode backs off with jitter, and throttling is
# one of the errors it retries), then answer 503 rather than hang.
CONFIG = Config(
    connect_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=READ_TIMEOUT_SECONDS,
    retries={"mode": "standard", "max_attempts": 3},
    signature_version="s3v4",  # presigned URLs in SigV4: every region and R2 require it
    # Checksums only where an operation requires one: S3-compatible stores do not all accept the CRC32 headers that
    # boto3 sends by default since 1.36.
    request_checksum_calculation="when_required", response_checksum_validation="when_required",
)
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_NOT_IMPLEMENTED = {"501", "NotImplemented"}

T = TypeVar("T")


class S3Storage(ImageStorage):
    serves_urls = True
    #: Objects per listing request (S3's most); tests lower it to page through a short listing.
    list_page_size = 1000

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 client: S3Client | None = None) -> None:
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url or None
        self._client = client
        self._client_lock = threading.Lock()
        self._conditional_writes = True

    @classmethod
    def from_url(cls, url: str, endpoint_url: str | None = None) -> S3Storage:
        """s3://bucket/prefix."""
        parts = urlsplit(url)
        return cls(parts.netloc, parts.path.strip("/"), endpoint_url=endpoint_url)

    @property
    def client(self) -> S3Client:
        """boto3's client, made on first use (in a worker thread: `_call`) with the default credential chain."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    # A session of its own: boto3's default session is not thread-safe.
                    # AWS_REGION (set by EKS for IRSA and Pod Identity) first; boto3 itself reads only
                    # AWS_DEFAULT_REGION and the profile, which remain the fallbacks.
                    self._client = boto3.session.Session().client(
                        "s3", region_name=os.environ.get("AWS_REGION") or None, endpoint_url=self.endpoint_url,
                        config=CONFIG)
        return self._client

    def key_for(self, session_id: str, image_id: str) -> str:
        return "/".join(part for part in (self.prefix, session_id, image_id) if part)

    async def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """`fn(client, *args)` in a worker thread; a missing object is ImageNotFound, any other failure
        ImageStorageError."""
        try:
            return await asyncio.to_thread(lambda: fn(self.client, *args))
        except ClientError as exc:
            code = _code(exc)
            if code in _NOT_FOUND:
                raise ImageNotFound(str(args[0]) if args else "") from None
            if code == "NoSuchBucket":
                raise ImageStorageError(f"S3 bucket {self.bucket_name} does not exist") from exc
            raise ImageStorageError(f"S3 {what} failed: {code}: {exc}") from exc
        except (BotoCoreError, OSError) as exc:  # unreachable, timed out, no credentials
            raise ImageStorageError(f"S3 {what} failed: {type(exc).__name__}: {exc}") from exc

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self._call("upload", self._put, key, data, content_type)
        self.stored_bytes += len(data)

    def _put(self, client: S3Client, key: str, data: bytes, content_type: str) -> None:
        arguments: dict[str, Any] = {"Bucket": self.bucket_name, "Key": key, "Body": data,
                                     "ContentType": content_type, "CacheControl": "private, max-age=300"}
        if self._conditional_writes:
            try:
                client.put_object(**arguments, IfNoneMatch="*")
                return
            except ClientError as exc:
                if _code(exc) not in _NOT_IMPLEMENTED:
                    raise
                log.warning("the S3 store does not implement conditional writes (If-None-Match): objects are written "
                            "without it (their names are fresh uuids)")
                self._conditional_writes = False
        client.put_object(**arguments)

    async def get(self, key: str) -> bytes:
        return await self._call("download", self._get, key)

    def _get(self, client: S3Client, key: str) -> bytes:
        return client.get_object(Bucket=self.bucket_name, Key=key)["Body"].read()

    async def delete(self, key: str) -> None:
        removed = await self._call("delete", self._delete, key)
        self.stored_bytes = max(0, self.stored_bytes - removed)

    def _delete(self, client: S3Client, key: str) -> int:
        """Delete `key`; return the bytes it held (0 when it was not there): S3's DELETE does not say."""
        try:
            size = client.head_object(Bucket=self.bucket_name, Key=key)["ContentLength"]
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return 0
            raise
        client.delete_object(Bucket=self.bucket_name, Key=key)
        return size

    async def signed_url(self, key: str, ttl_seconds: int) -> str:
        # No request is made, but the credentials may be (re)fetched first: IRSA's come from STS.
        return await self._call("signing", self._sign, key, ttl_seconds)

    def _sign(self, client: S3Client, key: str, ttl_seconds: int) -> str:
        return client.generate_presigned_url("get_object", Params={"Bucket": self.bucket_name, "Key": key},
                                             ExpiresIn=ttl_seconds)

    async def check(self) -> None:
        def probe(client: S3Client) -> None:
            client.list_objects_v2(Bucket=self.bucket_name, Prefix=self._list_prefix, MaxKeys=1)
            if self.endpoint_url is None:  # AWS: boto3 follows a bucket to its region, but a presigned URL cannot
                region = client.head_bucket(Bucket=self.bucket_name).get("BucketRegion")
                if region and region != client.meta.region_name:
                    raise ImageStorageError(f"S3 bucket {self.bucket_name} is in {region}, but URLs would be signed "
                                            f"for {client.meta.region_name}: set AWS_REGION={region}")

        await self._call("check", probe)

    async def sweep(self, max_age_seconds: float, keep: Set[str] = frozenset()) -> int:
        removed, self.stored_bytes = await self._call("sweep", self._sweep, max_age_seconds, keep)
        return removed

    async def measure(self) -> int:
        _, self.stored_bytes = await self._call("measure", self._sweep, None, frozenset())
        return self.stored_bytes

    @property
    def _list_prefix(self) -> str:
        return self.prefix + "/" if self.prefix else ""

    def _sweep(self, client: S3Client, max_age_seconds: float | None, keep: Set[str]) -> tuple[int, int]:
        """Delete the objects older than `max_age_seconds` (None: none) but those in `keep`; return how many, and
        the bytes left."""
        cutoff = None if max_age_seconds is None else dt.datetime.now(dt.UTC) - dt.timedelta(seconds=max_age_seconds)
        removed = kept = 0
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket_name, Prefix=self._list_prefix, PaginationConfig={"PageSize": self.list_page_size})
        for page in pages:
            for entry in page.get("Contents", []):
                key, size = entry["Key"], entry.get("Size", 0)
                if cutoff is not None and entry["LastModified"] < cutoff and key not in keep:
                    client.delete_object(Bucket=self.bucket_name, Key=key)  # a DELETE of what is gone succeeds
                    removed += 1
                else:
                    kept += size
        return removed, kept

    async def close(self) -> None:
        if self._client is not None:
            await asyncio.to_thread(self._client.close)


def _code(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
