"""S3 storage against moto's S3 server on loopback: the storage alone, its SigV4 presigned URLs, and proxies on it
(URL and inline delivery, expiry, deletion, the storage quota, two replicas sharing a bucket, the store down)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import aiohttp
import boto3
import pytest
from botocore.exceptions import ClientError
from mypy_boto3_s3 import S3Client

from glimpse.config import Settings
from glimpse.images.s3 import CONFIG, S3Storage
from glimpse.images.storage import ImageNotFound, ImageStorageError
from glimpse.resources import open_image_storage
from tests.conftest import StartProxy
from tests.fakes.openai_upstream import FakeOpenAI
from tests.helpers import conversation, elevenlabs_body, image_parts, new_session, upload
from tests.images import noisy_jpeg
from tests.s3_emulator import ACCESS_KEY, BUCKET, REGION, SECRET_KEY, S3Emulator, aws_environment
from tests.storage_contract import (
    inline_delivery,
    storage_down_leaves_no_state,
    uploads_against_the_quota,
    url_delivery,
)

STORAGE_URL = f"s3://{BUCKET}/glimpse"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Emulator]:
    """moto's server, and the standard AWS variables a deployment would set (test credentials, the region)."""
    aws_environment(monkeypatch)
    server = S3Emulator().start()
    yield server
    server.stop()


def storage_for(s3: S3Emulator) -> S3Storage:
    return S3Storage(BUCKET, "glimpse", endpoint_url=s3.endpoint)


def verify_sigv4(url: str, secret_key: str, region: str) -> dict[str, str]:
    """Check a presigned GET URL's SigV4 signature from scratch (AWS's published algorithm); returns its query."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    signed = sorted((k, v) for k, v in parse_qsl(parts.query) if k != "X-Amz-Signature")
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in signed)
    canonical = "\n".join(["GET", parts.path, canonical_query, f"host:{parts.netloc}", "", "host", "UNSIGNED-PAYLOAD"])
    date = query["X-Amz-Date"]
    scope = f"{date[:8]}/{region}/s3/aws4_request"
    assert query["X-Amz-Credential"] == f"{ACCESS_KEY}/{scope}"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (date[:8], region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(query["X-Amz-Signature"], expected)
    return query


def test_s3_settings_open_s3_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    aws_environment(monkeypatch)
    settings = Settings.load(env={"GLIMPSE_STORAGE_URL": "s3://my-bucket/team/glimpse/",
                                  "GLIMPSE_S3_ENDPOINT_URL": "https://account.r2.cloudflarestorage.com"})
    storage = open_image_storage(settings)
    assert isinstance(storage, S3Storage) and storage.serves_urls
    assert (storage.bucket_name, storage.prefix) == ("my-bucket", "team/glimpse")
    assert storage.endpoint_url == "https://account.r2.cloudflarestorage.com"
    assert storage.key_for("sess", "a.jpg") == "team/glimpse/sess/a.jpg"
    assert S3Storage.from_url("s3://bucket").key_for("sess", "a.jpg") == "sess/a.jpg"
    # AWS itself (no endpoint): virtual-hosted URLs, signed (SigV4) for the region the chain gives
    url = S3Storage("my-bucket", "glimpse").client.generate_presigned_url(
        "get_object", Params={"Bucket": "my-bucket", "Key": "glimpse/s/a.jpg"}, ExpiresIn=60)
    query = dict(parse_qsl(urlsplit(url).query))
    assert urlsplit(url).netloc.startswith("my-bucket.s3.") and urlsplit(url).path == "/glimpse/s/a.jpg"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256" and f"/{REGION}/s3/aws4_request" in query["X-Amz-Credential"]


async def test_put_get_delete_and_object_names(s3: S3Emulator) -> None:
    storage = storage_for(s3)
    key = storage.key_for("sess-1", "0123456789abcdef0123456789abcdef.jpg")
    assert key == "glimpse/sess-1/0123456789abcdef0123456789abcdef.jpg"
    await storage.check()
    await storage.put(key, b"\xff\xd8jpeg-bytes", "image/jpeg")
    assert storage.stored_bytes == 12
    assert await storage.get(key) == b"\xff\xd8jpeg-bytes"
    head = s3.client().head_object(Bucket=BUCKET, Key=key)
    assert head["ContentType"] == "image/jpeg" and head["CacheControl"] == "private, max-age=300"
    with pytest.raises(ImageStorageError, match="PreconditionFailed"):  # never overwritten (If-None-Match: *)
        await storage.put(key, b"other", "image/jpeg")
    assert await storage.get(key) == b"\xff\xd8jpeg-bytes" and storage.stored_bytes == 12
    s3.client().put_object(Bucket=BUCKET, Key="elsewhere/x.jpg", Body=b"x" * 100)  # outside the prefix
    assert await storage.measure() == 12
    assert await storage.sweep(3600) == 0
    assert await storage.sweep(-1) == 1  # everything is older than "one second in the future"
    assert storage.stored_bytes == 0 and set(s3.objects()) == {"elsewhere/x.jpg"}
    with pytest.raises(ImageNotFound):
        await storage.get(key)
    await storage.delete(key)  # deleting what is gone is fine
    await storage.put(key, b"abc", "image/jpeg")
    await storage.delete(key)
    assert storage.stored_bytes == 0 and set(s3.objects()) == {"elsewhere/x.jpg"}
    await storage.close()


async def test_sweep_keeps_what_a_live_conversation_holds_and_pages_through_the_listing(s3: S3Emulator) -> None:
    storage = storage_for(s3)
    storage.list_page_size = 3  # S3's is 1000: the listing comes in pages, the sweep goes through them all
    keys = [storage.key_for("s", f"{n:032x}.jpg") for n in range(10)]
    client = s3.client()
    for key in keys:
        client.put_object(Bucket=BUCKET, Key=key, Body=b"xy")
    assert await storage.measure() == 2 * 10
    assert await storage.sweep(-1, keep={keys[3], keys[9]}) == 8
    assert set(s3.objects()) == {keys[3], keys[9]} and storage.stored_bytes == 4


async def test_presigned_url_fields_signature_and_fetch(s3: S3Emulator, http: aiohttp.ClientSession) -> None:
    storage = storage_for(s3)
    key = storage.key_for("sess-1", "abc.jpg")
    await storage.put(key, b"\xff\xd8picture", "image/jpeg")
    url = await storage.signed_url(key, 600)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == s3.endpoint  # signed for the endpoint given: MinIO's, R2's
    assert parts.path == f"/{BUCKET}/{key}"  # path-style at a custom endpoint
    query = verify_sigv4(url, SECRET_KEY, REGION)
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "600" and query["X-Amz-SignedHeaders"] == "host"
    signed_at = dt.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    assert abs((signed_at - dt.datetime.now(dt.UTC)).total_seconds()) < 60
    async with http.get(url) as response:
        assert response.status == 200 and await response.read() == b"\xff\xd8picture"
        assert response.headers["Content-Type"] == "image/jpeg"


async def test_missing_bucket_and_store_down_are_storage_errors_in_bounded_time(s3: S3Emulator) -> None:
    with pytest.raises(ImageStorageError, match="does not exist"):
        await S3Storage("no-such-bucket", endpoint_url=s3.endpoint).check()
    storage = storage_for(s3)
    await storage.check()
    s3.stop()
    started = time.monotonic()
    with pytest.raises(ImageStorageError, match="upload failed"):
        await storage.put("glimpse/s/x.jpg", b"data", "image/jpeg")
    with pytest.raises(ImageStorageError):
        await storage.check()
    with pytest.raises(ImageStorageError):
        await storage.sweep(0)
    assert time.monotonic() - started < 15  # three attempts each, with short backoffs: a person is waiting


async def test_readiness_fails_while_urls_would_be_signed_for_another_region(s3: S3Emulator) -> None:
    """On AWS (no endpoint set) boto3 follows a bucket to its region for its own calls, but a presigned URL signed for
    another region is refused: readiness says which AWS_REGION to set."""

    def client_in(region: str) -> S3Client:
        return boto3.session.Session().client("s3", endpoint_url=s3.endpoint, region_name=region, config=CONFIG)

    with pytest.raises(ImageStorageError, match=f"is in {REGION}.*set AWS_REGION={REGION}"):
        await S3Storage(BUCKET, "glimpse", client=client_in("us-east-1")).check()
    await S3Storage(BUCKET, "glimpse", client=client_in(REGION)).check()


async def test_proxy_on_s3_with_url_delivery(start_proxy: StartProxy, s3: S3Emulator, upstream: FakeOpenAI,
                                             http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(storage_url=STORAGE_URL, s3_endpoint_url=s3.endpoint, image_delivery="url")
    prefix = f"{s3.endpoint}/{BUCKET}/glimpse/{{session_id}}/"
    session, result, url = await url_delivery(http, proxy, upstream, prefix, "X-Amz-Signature")
    verify_sigv4(result["url"], SECRET_KEY, REGION)
    key = f"glimpse/{session['session_id']}/{result['image_id']}"
    assert s3.objects() == {key: result["bytes"]}
    assert proxy.storage.stored_bytes == result["bytes"]
    assert f"/{key}?" in url
    async with http.get(url) as fetched:  # as the upstream fetches it
        assert fetched.status == 200 and (await fetched.read())[:2] == b"\xff\xd8"


async def test_proxy_on_s3_inline_delivery_reads_the_object(start_proxy: StartProxy, s3: S3Emulator,
                                                            upstream: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    await inline_delivery(http, await start_proxy(storage_url=STORAGE_URL, s3_endpoint_url=s3.endpoint), upstream)


async def test_images_expire_from_the_bucket(start_proxy: StartProxy, s3: S3Emulator, upstream: FakeOpenAI,
                                             http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(storage_url=STORAGE_URL, s3_endpoint_url=s3.endpoint, image_delivery="url",
                              image_ttl_seconds=1, sweep_interval_seconds=1)
    session = await new_session(http, proxy.url)
    result = await (await upload(http, proxy.url, session)).json()
    assert len(s3.objects()) == 1
    for _ in range(50):  # the conversation's TTL, then a sweep
        await asyncio.sleep(0.2)
        if not s3.objects():
            break
    assert s3.objects() == {} and proxy.storage.stored_bytes == 0
    async with http.get(result["url"]) as response:  # the URL has not expired; the object has
        assert response.status == 404
    async with http.post(proxy.v1 + "/chat/completions",
                         json=elevenlabs_body(session, conversation("Still there?"))) as response:
        await response.read()
    assert image_parts(upstream.last_messages()) == []


async def test_a_deleted_image_leaves_the_bucket(start_proxy: StartProxy, s3: S3Emulator, upstream: FakeOpenAI,
                                                 http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(storage_url=STORAGE_URL, s3_endpoint_url=s3.endpoint, image_delivery="url")
    session = await new_session(http, proxy.url)
    first = await (await upload(http, proxy.url, session)).json()
    second = await (await upload(http, proxy.url, session, noisy_jpeg(64, 64))).json()
    assert proxy.storage.stored_bytes == first["bytes"] + second["bytes"]
    async with http.delete(f"{proxy.v1}/images/{first['image_id']}", params={"session_id": session["session_id"]},
                           headers={"X-Upload-Token": session["upload_token"]}) as response:
        assert response.status == 200, await response.text()
    assert list(s3.objects()) == [f"glimpse/{session['session_id']}/{second['image_id']}"]
    assert proxy.storage.stored_bytes == second["bytes"]
    async with http.get(first["url"]) as response:
        assert response.status == 404
    async with http.post(proxy.v1 + "/chat/completions",
                         json=elevenlabs_body(session, conversation("What is this?"))) as r:
        await r.read()
    [(_, part)] = image_parts(upstream.last_messages())
    assert second["image_id"] in part["image_url"]["url"]


async def test_storage_quota_is_a_507_measured_from_the_bucket(start_proxy: StartProxy, s3: S3Emulator,
                                                               http: aiohttp.ClientSession) -> None:
    s3.client().put_object(Bucket=BUCKET, Key="glimpse/old-session/earlier.jpg", Body=b"x" * 50_000)
    proxy = await start_proxy(storage_url=STORAGE_URL, s3_endpoint_url=s3.endpoint, storage_quota_bytes=50_000,
                              sweep_interval_seconds=45)
    assert proxy.storage.stored_bytes == 50_000
    session = await new_session(http, proxy.url)
    response = await upload(http, proxy.url, session)
    assert response.status == 507, await response.text()
    assert response.headers["Retry-After"] == "45"
    assert (await response.json())["error"]["code"] == "storage_full"
    assert list(s3.objects()) == ["glimpse/old-session/earlier.jpg"]


async def test_storage_quota_counts_puts_and_deletes(start_proxy: StartProxy, s3: S3Emulator,
                                                     http: aiohttp.ClientSession) -> None:
    quota = 500_000  # two of these images
    proxy = await start_proxy(storage_url=STORAGE_URL, s3_endpoint_url=s3.endpoint, storage_quota_bytes=quota,
                              images_per_conversation=1)
    statuses = await uploads_against_the_quota(http, proxy, lambda: sum(s3.objects().values()))
    assert statuses == [201, 201, 507]
    assert sum(s3.objects().values()) <= quota and len(s3.objects()) == 2


async def test_two_proxies_share_a_bucket(start_proxy: StartProxy, s3: S3Emulator, upstream: FakeOpenAI,
                                          redis_url: str, http: aiohttp.ClientSession) -> None:
    """Two replicas behind an ingress: one Redis, one bucket. A picture uploaded through one is injected, fetched,
    counted and deleted through the other; the other's sweeper keeps it while its conversation lives."""
    settings = {"store_url": redis_url, "storage_url": STORAGE_URL, "s3_endpoint_url": s3.endpoint,
                "image_delivery": "url"}
    a = await start_proxy(**settings)
    b = await start_proxy(**settings, image_ttl_seconds=2, sweep_interval_seconds=1)
    session = await new_session(http, a.url)
    result = await (await upload(http, a.url, session)).json()
    key = f"glimpse/{session['session_id']}/{result['image_id']}"
    loop = asyncio.get_running_loop()
    uploaded, turn = loop.time(), 0
    while loop.time() - uploaded < 3.5:  # past b's image TTL: each turn slides the conversation's, b's sweeps keep it
        turn += 1
        async with http.post(b.v1 + "/chat/completions",
                             json=elevenlabs_body(session, conversation(f"What is this? ({turn})"))) as response:
            assert response.status == 200
            await response.read()
        [(_, part)] = image_parts(upstream.last_messages())
        async with http.get(part["image_url"]["url"]) as fetched:
            assert fetched.status == 200, f"the picture was gone {loop.time() - uploaded:.1f} s after its upload"
        await asyncio.sleep(0.5)
    assert list(s3.objects()) == [key]
    assert b.storage.stored_bytes == result["bytes"]  # b's sweeps counted a's upload
    async with http.delete(f"{b.v1}/images/{result['image_id']}", params={"session_id": session["session_id"]},
                           headers={"X-Upload-Token": session["upload_token"]}) as response:
        assert response.status == 200
    assert s3.objects() == {}
    await a.storage.measure()
    assert a.storage.stored_bytes == 0


async def test_s3_down_upload_is_503_and_leaves_no_state(start_proxy: StartProxy, s3: S3Emulator,
                                                         upstream: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(storage_url=STORAGE_URL, s3_endpoint_url=s3.endpoint)
    session = await new_session(http, proxy.url)
    s3.stop()
    await storage_down_leaves_no_state(http, proxy, session, upstream)
    assert proxy.storage.stored_bytes == 0


async def test_access_keys_from_the_environment_alone_authenticate(
        start_proxy: StartProxy, s3: S3Emulator, upstream: FakeOpenAI, monkeypatch: pytest.MonkeyPatch,
        http: aiohttp.ClientSession) -> None:
    """MinIO or R2 as the chart and the operator set it up: an access key in AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY (from a Secret), no profile, no config file, no role. The store checks every signature,
    so the proxy works only because it signs with that key; a wrong secret is refused."""
    key_id, secret = s3.access_key()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    with s3.checking_signatures():
        with pytest.raises(ClientError, match="InvalidAccessKeyId"):  # the emulator's test key: unknown now
            s3.client().list_objects_v2(Bucket=BUCKET)
        # inline delivery: moto cannot check a presigned URL's signature (it reads only the Authorization header)
        proxy = await start_proxy(storage_url=STORAGE_URL, s3_endpoint_url=s3.endpoint, image_delivery="inline")
        async with http.get(proxy.url + "/readyz") as ready:
            assert ready.status == 200
        await inline_delivery(http, proxy, upstream)
        # another first character (a secret that already began with "x" stayed the same: 1 run in 64 passed it)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ("y" if secret[0] == "x" else "x") + secret[1:])
        with pytest.raises(ImageStorageError, match="SignatureDoesNotMatch"):
            await storage_for(s3).check()


async def test_a_store_without_conditional_writes_is_written_to_without_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Older S3-compatible stores answer If-None-Match on a PUT with 501 NotImplemented: then once without it."""
    from botocore.stub import Stubber

    aws_environment(monkeypatch)
    client = S3Storage("b").client  # never reaches a network: the stubber answers
    storage = S3Storage("b", "p", client=client)
    with Stubber(client) as stub:
        stub.add_client_error("put_object", "NotImplemented", http_status_code=501,
                              expected_params={"Bucket": "b", "Key": "p/s/1.jpg", "Body": b"one",
                                               "ContentType": "image/jpeg", "CacheControl": "private, max-age=300",
                                               "IfNoneMatch": "*"})
        for key, body in (("p/s/1.jpg", b"one"), ("p/s/2.jpg", b"two")):
            stub.add_response("put_object", {}, {"Bucket": "b", "Key": key, "Body": body, "ContentType": "image/jpeg",
                                                 "CacheControl": "private, max-age=300"})
        await storage.put("p/s/1.jpg", b"one", "image/jpeg")
        await storage.put("p/s/2.jpg", b"two", "image/jpeg")
        stub.assert_no_pending_responses()
    assert storage.stored_bytes == 6


async def test_irsa_web_identity_credentials_sign_and_store(s3: S3Emulator, monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path, http: aiohttp.ClientSession) -> None:
    """IRSA as EKS's webhook sets it up: no keys, a role and a projected token file. boto3's chain trades the token for
    temporary credentials (STS AssumeRoleWithWebIdentity, here moto's), and the URLs carry their session token."""
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6dm9pY2U6ZGVmYXVsdCJ9.c2ln")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/glimpse-proxy")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", s3.endpoint)  # the standard per-service endpoint variable
    storage = storage_for(s3)
    key = storage.key_for("sess-1", "abc.jpg")
    await storage.put(key, b"\xff\xd8picture", "image/jpeg")
    url = await storage.signed_url(key, 300)
    query = dict(parse_qsl(urlsplit(url).query))
    assert query["X-Amz-Security-Token"] and not query["X-Amz-Credential"].startswith(ACCESS_KEY)
    async with http.get(url) as response:
        assert response.status == 200 and await response.read() == b"\xff\xd8picture"
