"""GCS storage against the GCS emulator on loopback; V4 signed URLs made with a test service account."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from google.oauth2 import service_account

from glimpse.images.gcs import GcsStorage
from glimpse.images.storage import ImageNotFound, ImageStorageError
from tests.conftest import StartProxy
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gcs_emulator import BUCKET, SERVICE_ACCOUNT, GcsEmulator, service_account_key
from tests.helpers import new_session
from tests.storage_contract import inline_delivery, storage_down_leaves_no_state, url_delivery


@pytest.fixture
def emulator() -> Iterator[GcsEmulator]:
    server = GcsEmulator().start()
    yield server
    server.stop()


@pytest.fixture
def sa_key(tmp_path: Path):
    return service_account_key(tmp_path)


@pytest.fixture
def gcs_env(emulator: GcsEmulator, sa_key, monkeypatch: pytest.MonkeyPatch) -> GcsEmulator:
    """The standard variables a deployment would set: the emulator host and a key file."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.endpoint)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(sa_key[0]))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "glimpse-test")
    return emulator


def storage_for(emulator: GcsEmulator, sa_key) -> GcsStorage:
    credentials = service_account.Credentials.from_service_account_file(str(sa_key[0]))
    return GcsStorage(BUCKET, "glimpse", client=emulator.client(), signing_credentials=credentials)


async def test_put_get_delete_and_object_names(emulator: GcsEmulator, sa_key) -> None:
    storage = storage_for(emulator, sa_key)
    key = storage.key_for("sess-1", "0123456789abcdef0123456789abcdef.jpg")
    assert key == "glimpse/sess-1/0123456789abcdef0123456789abcdef.jpg"
    await storage.check()
    await storage.put(key, b"\xff\xd8jpeg-bytes", "image/jpeg")
    assert await storage.get(key) == b"\xff\xd8jpeg-bytes"
    blob = emulator.client().bucket(BUCKET).get_blob(key)
    assert blob is not None and blob.content_type == "image/jpeg"
    assert await storage.sweep(3600) == 0
    assert await storage.sweep(-1) == 1  # everything is older than "one second in the future"
    with pytest.raises(ImageNotFound):
        await storage.get(key)
    await storage.delete(key)  # deleting what is gone is fine


async def test_v4_signed_url_fields_and_signature(emulator: GcsEmulator, sa_key) -> None:
    storage = storage_for(emulator, sa_key)
    key = storage.key_for("sess-1", "abc.jpg")
    url = await storage.signed_url(key, 600)
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    # signed for the client's endpoint: storage.googleapis.com in production, the emulator here
    assert f"{parts.scheme}://{parts.netloc}" == emulator.endpoint
    assert parts.path == f"/{BUCKET}/{key}"
    assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
    assert query["X-Goog-Expires"] == "600"
    assert query["X-Goog-Credential"].startswith(SERVICE_ACCOUNT + "/")
    assert query["X-Goog-SignedHeaders"] == "host"
    # the signature verifies with the test key's public half over the V4 string-to-sign for a GET
    signed_query = "&".join(p for p in parts.query.split("&") if not p.startswith("X-Goog-Signature="))
    canonical = "\n".join(["GET", parts.path, signed_query, f"host:{parts.netloc}", "", "host", "UNSIGNED-PAYLOAD"])
    scope = query["X-Goog-Credential"].split("/", 1)[1]
    to_sign = "\n".join(["GOOG4-RSA-SHA256", query["X-Goog-Date"], scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    sa_key[1].verify(bytes.fromhex(query["X-Goog-Signature"]), to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())


async def test_emulator_down_is_a_storage_error(emulator: GcsEmulator, sa_key) -> None:
    storage = storage_for(emulator, sa_key)
    emulator.stop()
    with pytest.raises(ImageStorageError):
        await storage.put("glimpse/s/x.jpg", b"data", "image/jpeg")
    with pytest.raises(ImageStorageError):
        await storage.check()


async def test_proxy_on_gcs_with_url_delivery(start_proxy: StartProxy, gcs_env: GcsEmulator, upstream: FakeOpenAI,
                                              http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(storage_url=f"gs://{BUCKET}/glimpse", image_delivery="url")
    prefix = f"{gcs_env.endpoint}/{BUCKET}/glimpse/{{session_id}}/"
    session, result, url = await url_delivery(http, proxy, upstream, prefix, "X-Goog-Signature")
    names = [b.name for b in gcs_env.client().list_blobs(BUCKET)]
    assert names == [f"glimpse/{session['session_id']}/{result['image_id']}"]
    assert f"/glimpse/{session['session_id']}/" in url


async def test_proxy_on_gcs_inline_delivery_reads_the_object(start_proxy: StartProxy, gcs_env: GcsEmulator,
                                                             upstream: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    await inline_delivery(http, await start_proxy(storage_url=f"gs://{BUCKET}/glimpse"), upstream)


async def test_gcs_down_upload_is_503_and_leaves_no_state(start_proxy: StartProxy, gcs_env: GcsEmulator,
                                                          upstream: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(storage_url=f"gs://{BUCKET}/glimpse")
    session = await new_session(http, proxy.url)
    gcs_env.stop()
    await storage_down_leaves_no_state(http, proxy, session, upstream)
