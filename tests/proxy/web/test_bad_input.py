"""Bad input gets an OpenAI-style JSON error with the right status, never a stack trace."""

from __future__ import annotations

import io
import json
import time

import aiohttp
import pytest
from PIL import Image

from tests.conftest import SIGNING_SECRET, Proxy, StartProxy
from tests.fakes.openai_upstream import FakeOpenAI
from tests.helpers import conversation, elevenlabs_body, new_session, upload
from tests.images import SVG_WITH_SCRIPT, decompression_bomb_png, heic, jpeg, noisy_jpeg, truncated_jpeg


async def assert_error(response: aiohttp.ClientResponse, status: int, code: str | None = None) -> dict:
    text = await response.text()
    assert response.status == status, text
    assert response.headers["Content-Type"].startswith("application/json")
    assert "Traceback" not in text
    error = json.loads(text)["error"]
    assert isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str)
    if code:
        assert error["code"] == code
    return error


@pytest.mark.parametrize(("raw", "content_type"), [
    (b"{not json", "application/json"),
    (b"", "application/json"),
    (b"[1, 2]", "application/json"),
    (json.dumps({"model": "gpt-4o-mini"}).encode(), "application/json"),
    (json.dumps({"model": "gpt-4o-mini", "messages": "hello"}).encode(), "application/json"),
    (json.dumps({"model": "gpt-4o-mini", "messages": []}).encode(), "application/json"),
    (json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "wizard", "content": "x"}]}).encode(),
     "application/json"),
    (json.dumps({"model": "gpt-4o-mini", "messages": ["hi"]}).encode(), "application/json"),
    (json.dumps({"model": "", "messages": [{"role": {}}]}).encode(), "application/json"),  # found by schemathesis
    (json.dumps({"model": 42, "messages": [{"role": "user", "content": "x"}]}).encode(), "application/json"),
    (json.dumps({"model": "m", "stream": "yes", "messages": [{"role": "user", "content": "x"}]}).encode(),
     "application/json"),
])
async def test_malformed_chat_requests_are_400(proxy: Proxy, upstream: FakeOpenAI, http: aiohttp.ClientSession,
                                               raw: bytes, content_type: str) -> None:
    async with http.post(proxy.v1 + "/chat/completions", data=raw, headers={"Content-Type": content_type}) as r:
        await assert_error(r, 400)
    assert upstream.chat_requests == []


async def test_oversized_chat_body_is_413(proxy: Proxy, upstream: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    body = elevenlabs_body("s", [{"role": "user", "content": "x" * (10 * 1024 * 1024)}])
    async with http.post(proxy.v1 + "/chat/completions", json=body) as response:
        await assert_error(response, 413)
    assert upstream.chat_requests == []


async def test_too_many_messages_is_400(proxy: Proxy, upstream: FakeOpenAI, http: aiohttp.ClientSession) -> None:
    body = elevenlabs_body("s", [{"role": "user", "content": "hi"}] * 10_000)
    async with http.post(proxy.v1 + "/chat/completions", json=body) as response:
        error = await assert_error(response, 400)
    assert "Too many messages" in error["message"]


async def test_unknown_route_and_wrong_method(proxy: Proxy, http: aiohttp.ClientSession) -> None:
    async with http.get(proxy.url + "/v1/nothing-here") as response:
        await assert_error(response, 404)
    async with http.get(proxy.v1 + "/chat/completions") as response:
        await assert_error(response, 405)


async def test_custom_llm_key_is_required_when_set(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                   http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(custom_llm_key="cllm-secret-key")
    body = elevenlabs_body("s", conversation("hi"))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic cllm-secret-key"}):
        async with http.post(proxy.v1 + "/chat/completions", json=body, headers=headers) as response:
            error = await assert_error(response, 401)
            assert "cllm-secret-key" not in json.dumps(error)
    async with http.get(proxy.v1 + "/models") as response:
        await assert_error(response, 401)
    assert upstream.chat_requests == []
    async with http.post(proxy.v1 + "/chat/completions", json=body,
                         headers={"Authorization": "Bearer cllm-secret-key"}) as response:
        assert response.status == 200
        await response.read()


# --- uploads -------------------------------------------------------------------------------------

async def test_upload_checks_what_comes_before_its_file(proxy: Proxy, http: aiohttp.ClientSession) -> None:
    """The upload is checked before its file is read (issue 30): a file before `session_id` is a 400 naming the
    order; the session id may come in the query and the token in a field, both before the file; `ready` may follow
    the file."""
    session = await new_session(http, proxy.url)
    file_first = aiohttp.FormData()
    file_first.add_field("file", jpeg(), filename="photo.jpg", content_type="image/jpeg")
    file_first.add_field("session_id", session["session_id"])
    async with http.post(proxy.v1 + "/images", data=file_first,
                         headers={"X-Upload-Token": session["upload_token"]}) as response:
        error = await assert_error(response, 400, "file_before_session")
        assert "before `file`" in error["message"] and error["param"] == "session_id"
    in_fields = aiohttp.FormData()
    in_fields.add_field("upload_token", session["upload_token"])
    in_fields.add_field("file", jpeg(), filename="photo.jpg", content_type="image/jpeg")
    in_fields.add_field("ready", "false")
    async with http.post(proxy.v1 + "/images", params={"session_id": session["session_id"]},
                         data=in_fields) as response:
        assert response.status == 201, await response.text()
        assert (await response.json())["status"] == "staged"


async def test_upload_without_file_or_session(proxy: Proxy, http: aiohttp.ClientSession) -> None:
    session = await new_session(http, proxy.url)
    form = aiohttp.FormData()
    form.add_field("session_id", session["session_id"])
    async with http.post(proxy.v1 + "/images", data=form, headers={"X-Upload-Token": session["upload_token"]}) as r:
        await assert_error(r, 400)
    response = await upload(http, proxy.url, None, session_id="", token=session["upload_token"])
    await assert_error(response, 400)
    response = await upload(http, proxy.url, None, session_id="../../etc", token=session["upload_token"])
    await assert_error(response, 400)


async def test_upload_token_rules(proxy: Proxy, http: aiohttp.ClientSession) -> None:
    mine, theirs = await new_session(http, proxy.url), await new_session(http, proxy.url)
    await assert_error(await upload(http, proxy.url, {"session_id": mine["session_id"]}), 401,
                       "missing_upload_token")
    await assert_error(await upload(http, proxy.url, mine, token=theirs["upload_token"]), 403, "invalid_upload_token")
    await assert_error(await upload(http, proxy.url, mine, token="9999999999.forged"), 403)
    expired = proxy.signer.upload_token(mine["session_id"], -10)
    await assert_error(await upload(http, proxy.url, mine, token=expired.value), 403)
    async with http.post(proxy.v1 + "/images/ready", json={"session_id": mine["session_id"]},
                         headers={"X-Upload-Token": theirs["upload_token"]}) as response:
        await assert_error(response, 403)


@pytest.mark.parametrize(("data", "status", "filename"), [
    (b"this is plain text, not a picture" * 10, 415, "photo.jpg"),
    (SVG_WITH_SCRIPT, 415, "drawing.svg"),
    (b"%PDF-1.4 fake pdf", 415, "scan.jpg"),
    (truncated_jpeg(), 400, "half.jpg"),
    (decompression_bomb_png(), 400, "bomb.png"),
    (b"", 400, "empty.jpg"),
])
async def test_bad_images_are_rejected_and_nothing_is_stored(proxy: Proxy, upstream: FakeOpenAI,
                                                             http: aiohttp.ClientSession, data: bytes, status: int,
                                                             filename: str) -> None:
    session = await new_session(http, proxy.url)
    response = await upload(http, proxy.url, session, data, filename=filename)
    await assert_error(response, status)
    root = proxy.storage.root  # type: ignore[attr-defined]
    assert not root.exists() or list(root.iterdir()) == []
    async with http.post(proxy.v1 + "/chat/completions",
                         json=elevenlabs_body(session, conversation("hi"))) as r:
        await r.read()
    assert "image_url" not in json.dumps(upstream.last_messages())


async def test_heic_from_a_mac_is_stored_as_a_rotated_jpeg_without_metadata(proxy: Proxy,
                                                                          http: aiohttp.ClientSession) -> None:
    """Dragged from Photos on a Mac: a HEIC, sent as image/heic, with its orientation in the container."""
    session = await new_session(http, proxy.url)
    response = await upload(http, proxy.url, session, heic(64, 32, orientation=6), filename="IMG_0001.HEIC",
                            content_type="image/heic")
    assert response.status == 201, await response.text()
    result = await response.json()
    assert (result["content_type"], result["width"], result["height"]) == ("image/jpeg", 32, 64)
    assert result["image_id"].endswith(".jpg")
    async with http.get(result["url"]) as served:
        assert served.status == 200 and served.headers["Content-Type"] == "image/jpeg"
        data = await served.read()
    assert b"GlimpseTestCamera" not in data and b"Exif" not in data
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG" and image.size == (32, 64) and not image.getexif()
    r, _, b = image.getpixel((28, 4))[:3]  # the top-left marker is now top-right
    assert b > 150 and r < 100


async def test_a_format_we_do_not_take_names_those_we_do(proxy: Proxy, http: aiohttp.ClientSession) -> None:
    session = await new_session(http, proxy.url)
    out = io.BytesIO()
    Image.new("RGB", (16, 16)).save(out, format="TIFF")
    error = await assert_error(await upload(http, proxy.url, session, out.getvalue(), filename="scan.tiff",
                                            content_type="image/tiff"), 415)
    assert "HEIC" in error["message"] and error["param"] == "file"


async def test_oversized_upload_is_413(start_proxy: StartProxy, http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(image_max_bytes=200_000)
    session = await new_session(http, proxy.url)
    big = noisy_jpeg(600, 600)
    assert len(big) > 200_000
    await assert_error(await upload(http, proxy.url, session, big), 413)


async def test_upload_must_be_multipart(proxy: Proxy, http: aiohttp.ClientSession) -> None:
    session = await new_session(http, proxy.url)
    async with http.post(proxy.v1 + "/images", json={"session_id": session["session_id"], "file": "aGVsbG8="},
                         headers={"X-Upload-Token": session["upload_token"]}) as response:
        await assert_error(response, 415)


async def test_ready_flag_takes_boolean_words_only(proxy: Proxy, http: aiohttp.ClientSession) -> None:
    session = await new_session(http, proxy.url)
    form = aiohttp.FormData()
    form.add_field("session_id", session["session_id"])
    form.add_field("file", jpeg(), filename="photo.jpg", content_type="image/jpeg")
    form.add_field("ready", "maybe")
    async with http.post(proxy.v1 + "/images", data=form, headers={"X-Upload-Token": session["upload_token"]}) as r:
        assert (await assert_error(r, 400))["param"] == "ready"
    assert not proxy.storage.root.exists() or list(proxy.storage.root.iterdir()) == []  # type: ignore[attr-defined]
    staged = await upload(http, proxy.url, session, ready=False)
    assert (await staged.json())["status"] == "staged"


async def test_image_limit_per_conversation(start_proxy: StartProxy, http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(images_per_conversation=2)
    session = await new_session(http, proxy.url)
    assert (await upload(http, proxy.url, session)).status == 201
    assert (await upload(http, proxy.url, session)).status == 201
    await assert_error(await upload(http, proxy.url, session), 400, "too_many_images")
    assert len(list(proxy.storage.root.iterdir())) == 2  # type: ignore[attr-defined]


# --- serving ---------------------------------------------------------------------------------------

async def test_image_urls_need_a_valid_unexpired_signature(proxy: Proxy, http: aiohttp.ClientSession) -> None:
    session = await new_session(http, proxy.url)
    result = await (await upload(http, proxy.url, session)).json()
    url, image_id = result["url"], result["image_id"]
    assert result["expires_at"] > time.time()
    async with http.get(url) as response:
        assert response.status == 200 and response.headers["X-Content-Type-Options"] == "nosniff"
    alias = url.replace("/v1/images/", "/serve_image/")
    async with http.get(alias) as response:
        assert response.status == 200
    base = f"{proxy.url}/v1/images/{image_id}"
    async with http.get(base) as response:
        await assert_error(response, 403)
    async with http.get(url.replace("sig=", "sig=x")) as response:
        await assert_error(response, 403)
    expired = proxy.signer.image_query(image_id, -1).value
    async with http.get(f"{base}?{expired}") as response:
        await assert_error(response, 403)
    from glimpse.auth import Signer
    forged = Signer(b"another-secret-that-is-long-enough").image_query(image_id, 600).value
    async with http.get(f"{base}?{forged}") as response:
        await assert_error(response, 403)
    assert SIGNING_SECRET not in json.dumps(result)


@pytest.mark.parametrize("path", [
    "/v1/images/..%2F..%2Fetc%2Fpasswd", "/v1/images/%2e%2e%2fsecrets.jpg", "/serve_image/../../pyproject.toml",
    "/v1/images/0123456789abcdef0123456789abcdef.svg", "/v1/images/0123456789abcdef0123456789abcdef.jpg",
])
async def test_traversal_and_unknown_images_are_404_or_403(proxy: Proxy, http: aiohttp.ClientSession,
                                                           path: str) -> None:
    async with http.get(proxy.url + path + "?expires=9999999999&sig=abc") as response:
        assert response.status in (403, 404)
        assert b"root:" not in await response.read()


# --- upstream failures -----------------------------------------------------------------------------

@pytest.mark.parametrize(("upstream_status", "status"), [(400, 400), (404, 404), (401, 502), (429, 429),
                                                         (500, 502), (503, 502)])
async def test_upstream_errors_before_the_stream_map_to_openai_errors(
        proxy: Proxy, upstream: FakeOpenAI, http: aiohttp.ClientSession, upstream_status: int, status: int) -> None:
    from tests.fakes.openai_upstream import Behaviour
    upstream.default = Behaviour(status=upstream_status, retry_after="7" if upstream_status == 429 else None)
    async with http.post(proxy.v1 + "/chat/completions", json=elevenlabs_body("s", conversation("hi"))) as r:
        error = await assert_error(r, status)
        if status == 429:
            assert r.headers.get("Retry-After") == "7"
    assert "sk-upstream-test-key" not in json.dumps(error)


async def test_unreachable_upstream_is_502(start_proxy: StartProxy, http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(upstream_base_url="http://127.0.0.1:9/v1", upstream_connect_timeout=1)
    async with http.post(proxy.v1 + "/chat/completions", json=elevenlabs_body("s", conversation("hi"))) as r:
        await assert_error(r, 502)


async def test_upstream_retried_before_the_first_byte(start_proxy: StartProxy, upstream: FakeOpenAI,
                                                      http: aiohttp.ClientSession) -> None:
    from tests.fakes.openai_upstream import Behaviour
    proxy = await start_proxy(upstream_max_retries=2)
    upstream.next.extend([Behaviour(status=500), Behaviour(status=429, retry_after="0")])
    async with http.post(proxy.v1 + "/chat/completions", json=elevenlabs_body("s", conversation("hi"))) as r:
        assert r.status == 200
        raw = await r.read()
    assert len(upstream.chat_requests) == 3
    assert raw.count(b"data: [DONE]") == 1


async def test_midstream_drop_ends_with_error_event_and_done(proxy: Proxy, upstream: FakeOpenAI,
                                                             http: aiohttp.ClientSession) -> None:
    from tests.fakes.openai_upstream import Behaviour
    upstream.default = Behaviour(drop_after=3)
    async with http.post(proxy.v1 + "/chat/completions", json=elevenlabs_body("s", conversation("hi"))) as r:
        assert r.status == 200
        raw = await r.read()
    events = raw.decode().strip().split("\n\n")
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2].removeprefix("data: "))["error"]
    assert error["code"] == "stream_interrupted"
    assert len(events) == 4 + 2  # the chunks that made it, then the error, then [DONE]
    assert len(upstream.chat_requests) == 1  # never retried once bytes reached the caller


async def test_jpeg_too_many_pixels(start_proxy: StartProxy, http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(image_max_pixels=1000)
    session = await new_session(http, proxy.url)
    error = await assert_error(await upload(http, proxy.url, session, jpeg(100, 100)), 400, "image_too_large")
    assert "pixels" in error["message"]
