"""GET /v1/session against a fake ElevenLabs API; the API key never leaves the server."""

from __future__ import annotations

import json
import logging

import aiohttp
import pytest

from tests.conftest import StartProxy
from tests.fakes.elevenlabs_api import AGENT_ID, API_KEY, FakeElevenLabs


@pytest.fixture
def configured(elevenlabs: FakeElevenLabs) -> dict[str, str]:
    return {"elevenlabs_api_key": API_KEY, "elevenlabs_agent_id": AGENT_ID, "elevenlabs_base_url": elevenlabs.base_url}


async def test_signed_url_session(start_proxy: StartProxy, elevenlabs: FakeElevenLabs, configured: dict,
                                  http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    proxy = await start_proxy(**configured)
    async with http.get(proxy.v1 + "/session") as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        raw = await response.text()
    body = json.loads(raw)
    assert body["signed_url"].startswith("wss://") and f"agent_id={AGENT_ID}" in body["signed_url"]
    assert body["agent_id"] == AGENT_ID and body["session_id"] and body["upload_token"]
    proxy.signer.check_upload_token(body["session_id"], body["upload_token"])
    assert elevenlabs.calls[-1].headers["xi-api-key"] == API_KEY
    assert elevenlabs.calls[-1].query == {"agent_id": AGENT_ID}
    # The current path: `get_signed_url` is deprecated in ElevenLabs' OpenAPI document.
    assert elevenlabs.calls[-1].path == "/v1/convai/conversation/get-signed-url"
    assert API_KEY not in raw and API_KEY not in caplog.text
    async with http.get(proxy.v1 + "/session") as response:  # each call a new session
        assert (await response.json())["session_id"] != body["session_id"]


async def test_webrtc_token(start_proxy: StartProxy, elevenlabs: FakeElevenLabs, configured: dict,
                            http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(**configured)
    async with http.get(proxy.v1 + "/session?transport=webrtc") as response:
        body = await response.json()
    assert body["conversation_token"].startswith("eyJ") and "signed_url" not in body
    assert elevenlabs.calls[-1].path == "/v1/convai/conversation/token"
    async with http.get(proxy.v1 + "/session?transport=carrier-pigeon") as response:
        assert response.status == 400


@pytest.mark.parametrize("case", ["wrong_key", "unknown_agent", "server_error", "unreachable"])
async def test_elevenlabs_errors_are_502(start_proxy: StartProxy, elevenlabs: FakeElevenLabs, configured: dict,
                                         http: aiohttp.ClientSession, case: str,
                                         caplog: pytest.LogCaptureFixture) -> None:
    settings = dict(configured)
    if case == "wrong_key":
        settings["elevenlabs_api_key"] = "xi-wrong-key-should-not-leak"
    elif case == "unknown_agent":
        settings["elevenlabs_agent_id"] = "agent_missing"
    elif case == "server_error":
        elevenlabs.fail_with = 500
    else:
        settings["elevenlabs_base_url"] = "http://127.0.0.1:9"
    proxy = await start_proxy(**settings)
    async with http.get(proxy.v1 + "/session") as response:
        text = await response.text()
        assert response.status == 502, text
    error = json.loads(text)["error"]
    assert "ElevenLabs" in error["message"]
    for secret in (API_KEY, "xi-wrong-key-should-not-leak"):
        assert secret not in text and secret not in caplog.text


async def test_without_elevenlabs_the_session_still_allows_uploads(start_proxy: StartProxy,
                                                                   http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy()
    async with http.get(proxy.v1 + "/session") as response:
        body = await response.json()
    assert "signed_url" not in body and "warning" in body and body["upload_token"]


async def test_the_session_tells_the_page_how_many_pictures_a_conversation_holds(start_proxy: StartProxy,
                                                                                 http: aiohttp.ClientSession) -> None:
    proxy = await start_proxy(images_per_conversation=3)
    async with http.get(proxy.v1 + "/session") as response:
        assert (await response.json())["max_images"] == 3


async def test_a_session_without_voice_mints_nothing_but_says_whether_voice_is_there(
        start_proxy: StartProxy, elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession) -> None:
    """The page asks whether voice exists when it opens, and typed conversations need no signed URL: neither spends
    the ElevenLabs key."""
    proxy = await start_proxy(elevenlabs_api_key=API_KEY, elevenlabs_agent_id=AGENT_ID,
                              elevenlabs_base_url=elevenlabs.base_url)
    async with http.get(proxy.v1 + "/session?voice=false") as response:
        body = await response.json()
    assert body["voice"] is True and "signed_url" not in body and "conversation_token" not in body
    assert body["session_key"] and body["upload_token"] and elevenlabs.calls == []
    async with http.get(proxy.v1 + "/session") as response:
        assert (await response.json())["signed_url"] and len(elevenlabs.calls) == 1
    async with http.get(proxy.v1 + "/session?voice=maybe") as response:
        assert response.status == 400
    plain = await start_proxy()
    async with http.get(plain.v1 + "/session?voice=false") as response:
        assert (await response.json())["voice"] is False
