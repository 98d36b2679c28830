"""`DELETE /v1/images/{image_id}`: the page takes a picture back. The conversation lets go of it (every step, and the
last attaching turn's record, so ElevenLabs' retry does not bring it back), its bytes are deleted, caches forget it."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from PIL import Image

from glimpse.resources import CHAT
from tests.conftest import Proxy, StartProxy
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gcs_emulator import BUCKET, GcsEmulator, service_account_key
from tests.helpers import conversation, elevenlabs_body, image_parts, new_session, upload
from tests.images import jpeg

SIZES = {"first": (80, 40), "second": (48, 64)}  # told apart by size when they arrive as data: URLs


async def chat(http: aiohttp.ClientSession, proxy: Proxy, body: dict[str, Any]) -> None:
    async with http.post(proxy.v1 + "/chat/completions", json=body) as response:
        assert response.status == 200, await response.text()
        await response.read()


async def delete(http: aiohttp.ClientSession, proxy: Proxy, image_id: str, session: dict[str, Any] | None, *,
                 token: str | None = None) -> tuple[int, dict[str, Any]]:
    """The page's call: session id in the query, upload token in its header."""
    params = {"session_id": session["session_id"]} if session else {}
    upload_token = token if token is not None else (session or {}).get("upload_token")
    headers = {"X-Upload-Token": upload_token} if upload_token else {}
    async with http.delete(f"{proxy.v1}/images/{image_id}", params=params, headers=headers) as response:
        assert response.headers["Content-Type"].startswith("application/json")
        return response.status, await response.json()


async def upload_two(http: aiohttp.ClientSession, proxy: Proxy, session: dict[str, Any]) -> dict[str, dict[str, Any]]:
    uploaded = {}
    for name, (width, height) in SIZES.items():
        response = await upload(http, proxy.url, session, jpeg(width, height))
        assert response.status == 201, await response.text()
        uploaded[name] = await response.json()
    return uploaded


def injected(upstream: FakeOpenAI, uploaded: dict[str, dict[str, Any]]) -> list[str]:
    """Which of the uploaded images the upstream's last request carried, by name, in order."""
    names = []
    for _, part in image_parts(upstream.last_messages()):
        url = part["image_url"]["url"]
        if url.startswith("data:"):
            size = Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2]))).size
            names += [name for name, expected in SIZES.items() if expected == size]
        else:
            names += [name for name, result in uploaded.items() if result["image_id"] in urlsplit(url).path]
    return names


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    return "memory://" if request.param == "memory" else request.getfixturevalue("redis_url")


@pytest.mark.parametrize("delivery", ["inline", "url"])
@pytest.mark.parametrize("policy", ["sticky", "once"])
async def test_a_deleted_image_is_never_injected_again(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                       http: aiohttp.ClientSession, store_url: str, policy: str,
                                                       delivery: str) -> None:
    proxy = await start_proxy(store_url=store_url, image_policy=policy, image_delivery=delivery)
    session = await new_session(http, proxy.url)
    uploaded = await upload_two(http, proxy, session)
    first_turn = elevenlabs_body(session, conversation("What are these?"))
    await chat(http, proxy, first_turn)
    assert injected(upstream, uploaded) == ["first", "second"]

    status, body = await delete(http, proxy, uploaded["first"]["image_id"], session)
    assert (status, body) == (200, {"image_id": uploaded["first"]["image_id"], "deleted": True, "images": 1})

    await chat(http, proxy, first_turn)  # ElevenLabs' retry of the turn before the delete
    assert injected(upstream, uploaded) == ["second"]
    await chat(http, proxy, elevenlabs_body(session, conversation("What are these?", "Two photos.", "And now?")))
    assert injected(upstream, uploaded) == (["second"] if policy == "sticky" else [])


@pytest.mark.parametrize("policy", ["sticky", "once"])
async def test_an_image_deleted_before_any_turn_never_reaches_the_upstream(
        start_proxy: StartProxy, upstream: FakeOpenAI, http: aiohttp.ClientSession, store_url: str,
        policy: str) -> None:
    proxy = await start_proxy(store_url=store_url, image_policy=policy)
    session = await new_session(http, proxy.url)
    uploaded = await upload_two(http, proxy, session)
    staged = await (await upload(http, proxy.url, session, jpeg(30, 30), ready=False)).json()
    assert (await delete(http, proxy, staged["image_id"], session))[1]["images"] == 2
    assert (await delete(http, proxy, uploaded["second"]["image_id"], session))[1]["images"] == 1
    await chat(http, proxy, elevenlabs_body(session, conversation("What is this?")))
    assert injected(upstream, uploaded) == ["first"]
    async with http.post(proxy.v1 + "/images/ready", json={"session_id": session["session_id"]},
                         headers={"X-Upload-Token": session["upload_token"]}) as response:
        assert (await response.json())["pending"] == 0  # the deleted staged image does not come back either


async def test_the_file_is_gone_its_url_404s_and_its_bytes_are_freed(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                                     http: aiohttp.ClientSession,
                                                                     store_url: str) -> None:
    proxy = await start_proxy(store_url=store_url, image_delivery="url")
    session = await new_session(http, proxy.url)
    uploaded = await upload_two(http, proxy, session)
    first, second = uploaded["first"], uploaded["second"]
    await chat(http, proxy, elevenlabs_body(session, conversation("What are these?")))
    handed_out = [part["image_url"]["url"] for _, part in image_parts(upstream.last_messages())]
    root: Path = proxy.storage.root  # type: ignore[attr-defined]
    assert sorted(p.name for p in root.iterdir()) == sorted([first["image_id"], second["image_id"]])
    held = await proxy.store.bytes_held(session["session_id"])
    stored = proxy.storage.stored_bytes
    async with http.get(first["url"]) as response:
        assert response.status == 200

    assert (await delete(http, proxy, first["image_id"], session))[0] == 200
    assert [p.name for p in root.iterdir()] == [second["image_id"]]
    assert await proxy.store.bytes_held(session["session_id"]) == held - first["bytes"]
    assert proxy.storage.stored_bytes == stored - first["bytes"]
    for url in (first["url"], handed_out[0]):  # the upload's URL and the one the upstream was given
        async with http.get(url) as response:
            assert response.status == 404
            assert (await response.json())["error"]["type"] == "not_found_error"
    async with http.get(second["url"]) as response:
        assert response.status == 200


async def test_the_injectors_caches_forget_it(proxy: Proxy, upstream: FakeOpenAI,
                                              http: aiohttp.ClientSession) -> None:
    session = await new_session(http, proxy.url)
    uploaded = await upload_two(http, proxy, session)
    await chat(http, proxy, elevenlabs_body(session, conversation("What are these?")))
    injector = proxy.app[CHAT]._injector  # what is cached is not visible over HTTP
    key = proxy.storage.key_for(session["session_id"], uploaded["first"]["image_id"])
    assert injector._data_urls.get(key) is not None
    assert (await delete(http, proxy, uploaded["first"]["image_id"], session))[0] == 200
    assert injector._data_urls.get(key) is None
    other = proxy.storage.key_for(session["session_id"], uploaded["second"]["image_id"])
    assert injector._data_urls.get(other) is not None


async def test_token_and_ownership_rules(proxy: Proxy, upstream: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    mine, theirs = await new_session(http, proxy.url), await new_session(http, proxy.url)
    image_id = (await (await upload(http, proxy.url, mine)).json())["image_id"]
    their_image = (await (await upload(http, proxy.url, theirs)).json())["image_id"]

    status, body = await delete(http, proxy, image_id, {"session_id": mine["session_id"]})  # no token
    assert status == 401 and body["error"]["code"] == "missing_upload_token"
    status, body = await delete(http, proxy, image_id, mine, token=theirs["upload_token"])
    assert status == 403 and body["error"]["code"] == "invalid_upload_token"
    status, body = await delete(http, proxy, image_id, None)  # no session id at all
    assert status == 400 and body["error"]["param"] == "session_id"
    # another session's image, with this session's own token: not found, as if it did not exist anywhere
    status, body = await delete(http, proxy, their_image, mine)
    assert status == 404 and body["error"] == {"message": "This conversation has no such image.",
                                               "type": "not_found_error", "code": "image_not_found",
                                               "param": "image_id"}
    assert (await delete(http, proxy, "0" * 32 + ".jpg", mine))[1]["error"]["code"] == "image_not_found"
    for malformed in ("not-an-id", "ready", "..%2F..%2Fetc%2Fpasswd", "0" * 32 + ".gif"):
        assert (await delete(http, proxy, malformed, mine))[0] == 404

    assert (await delete(http, proxy, image_id, mine)) == (200, {"image_id": image_id, "deleted": True,
                                                                 "images": 0})
    status, body = await delete(http, proxy, image_id, mine)  # twice
    assert status == 404 and body["error"]["code"] == "image_not_found"
    await chat(http, proxy, elevenlabs_body(theirs, conversation("What is this?")))
    assert len(image_parts(upstream.last_messages())) == 1  # theirs is untouched
    text = proxy.metrics.exposition().decode()
    assert "glimpse_images_deleted_total 1.0" in text
    assert 'glimpse_requests_total{route="/v1/images/{image_id}",status="404"}' in text


@pytest.mark.parametrize("form", [False, True])
async def test_the_session_id_may_come_in_the_body(proxy: Proxy, http: aiohttp.ClientSession, form: bool) -> None:
    session = await new_session(http, proxy.url)
    image_id = (await (await upload(http, proxy.url, session)).json())["image_id"]
    fields = {"session_id": session["session_id"], "upload_token": session["upload_token"]}
    async with http.delete(f"{proxy.v1}/images/{image_id}", **({"data": fields} if form else {"json": fields})) as r:
        assert r.status == 200 and (await r.json())["deleted"] is True


async def test_the_pages_origin_may_delete(start_proxy: StartProxy, http: aiohttp.ClientSession) -> None:
    page = "https://page.example"
    proxy = await start_proxy(cors_origins=(page,))
    async with http.options(f"{proxy.v1}/images/{'0' * 32}.jpg", headers={
            "Origin": page, "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "X-Upload-Token"}) as response:
        assert response.status == 204
        assert "DELETE" in response.headers["Access-Control-Allow-Methods"].split(", ")
        assert "X-Upload-Token" in response.headers["Access-Control-Allow-Headers"]
    session = await new_session(http, proxy.url)
    image_id = (await (await upload(http, proxy.url, session)).json())["image_id"]
    async with http.delete(f"{proxy.v1}/images/{image_id}", params={"session_id": session["session_id"]},
                           headers={"X-Upload-Token": session["upload_token"], "Origin": page}) as response:
        assert response.status == 200 and response.headers["Access-Control-Allow-Origin"] == page


async def test_the_route_is_documented(proxy: Proxy, http: aiohttp.ClientSession) -> None:
    async with http.get(proxy.url + "/openapi.json") as response:
        document = json.loads(await response.text())
    operation = document["paths"]["/v1/images/{image_id}"]["delete"]
    assert {p["name"] for p in operation["parameters"]} == {"image_id", "session_id", "X-Upload-Token"}
    assert {"200", "401", "403", "404"} <= set(operation["responses"])


@pytest.fixture
def gcs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GcsEmulator]:
    server = GcsEmulator().start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.endpoint)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(service_account_key(tmp_path)[0]))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "glimpse-test")
    yield server
    server.stop()


async def test_on_gcs_the_object_is_deleted(start_proxy: StartProxy, gcs: GcsEmulator, upstream: FakeOpenAI,
                                            http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(storage_url=f"gs://{BUCKET}/glimpse", image_delivery="url")
    session = await new_session(http, proxy.url)
    uploaded = await upload_two(http, proxy, session)
    first, second = uploaded["first"], uploaded["second"]
    async with http.get(first["url"]) as response:  # a V4 signed URL, straight from storage
        assert response.status == 200
    assert (await delete(http, proxy, first["image_id"], session))[0] == 200
    names = [blob.name for blob in gcs.client().list_blobs(BUCKET)]
    assert names == [f"glimpse/{session['session_id']}/{second['image_id']}"]
    async with http.get(first["url"]) as response:
        assert response.status == 404
    await chat(http, proxy, elevenlabs_body(session, conversation("What is this?")))
    assert injected(upstream, uploaded) == ["second"]
