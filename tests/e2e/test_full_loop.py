"""The whole seed flow in a real browser: speak → ElevenLabs → proxy with the image → LLM → voice back.

The proxy serves the built page over real HTTP; Chromium (fake microphone) opens it, starts a
conversation through `/v1/session` and the fake ElevenLabs' signed URL, uploads a photo (picker) and
a picture dropped off target, and the fake ElevenLabs, having "heard" a question on the microphone
stream, calls the proxy's `/v1/chat/completions` the way ElevenLabs does. The fake OpenAI upstream
must receive both pictures (the photo downscaled in the browser), and the page must show the answer
and the agent speaking.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import Proxy, StartProxy
from tests.fakes.elevenlabs_api import AGENT_ID, API_KEY, FakeElevenLabs
from tests.fakes.elevenlabs_conversation import CustomLlm, FakeConversations
from tests.fakes.openai_upstream import DEFAULT_WORDS, FakeOpenAI
from tests.helpers import image_parts
from tests.processes import ROOT

FRONTEND = ROOT / "frontend"
DIST = FRONTEND / "dist"
DEV_DIST = FRONTEND / "dist-dev"  # React's development build: StrictMode mounts, unmounts and remounts
DRIVER = Path(__file__).with_name("full_loop.mjs")
ARTIFACTS = Path(__file__).with_name("artifacts")
CHROMIUM = os.environ.get("GLIMPSE_TEST_CHROMIUM", "/usr/bin/chromium")
CUSTOM_LLM_KEY = "custom-llm-key-e2e-0123456789"
UPSTREAM_KEY = "sk-upstream-test-key"
SAID = "What do you see in this picture?"
ANSWER = "".join(DEFAULT_WORDS)
PHOTO_SIZE = (3200, 2400)  # a phone photo; the page sends it at most 1600 px on the long edge


def _require_browser_setup(dist: Path = DIST) -> str:
    node = shutil.which("node")
    missing = [what for what, ok in (
        ("node", node is not None),
        ("chromium", Path(CHROMIUM).exists()),
        ("frontend/node_modules (npm ci)", (FRONTEND / "node_modules" / "playwright-core").is_dir()),
        (f"frontend/{dist.name} (make test builds it)", (dist / "index.html").is_file()),
    ) if not ok]
    if missing:
        message = f"the browser test needs {', '.join(missing)}; `make test` builds the page, `.ci/run` installs them"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    assert node is not None
    return node


def _two_colour_photo(path: Path) -> None:
    image = Image.new("RGB", PHOTO_SIZE, (220, 30, 30))
    image.paste((30, 30, 220), (PHOTO_SIZE[0] // 2, 0, PHOTO_SIZE[0], PHOTO_SIZE[1]))
    image.save(path, "JPEG", quality=90)


@pytest.fixture
async def elevenlabs_with_conversations() -> AsyncIterator[FakeElevenLabs]:
    fake = await FakeElevenLabs(conversations=FakeConversations()).start()
    yield fake
    await fake.stop()


async def _voice_proxy(start_proxy: StartProxy, elevenlabs: FakeElevenLabs, dist: Path) -> Proxy:
    """The proxy serving the built page, with an agent on the fake ElevenLabs and a custom-LLM key."""
    return await start_proxy(static_dir=str(dist), custom_llm_key=CUSTOM_LLM_KEY, elevenlabs_api_key=API_KEY,
                             elevenlabs_agent_id=AGENT_ID, elevenlabs_base_url=elevenlabs.base_url)


async def _drive_browser(node: str, env: dict[str, str]) -> tuple[int, dict[str, Any], str]:
    process = await asyncio.create_subprocess_exec(
        node, str(DRIVER), env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=150)
    except TimeoutError:
        process.kill()
        stdout, stderr = await process.communicate()
    lines = stdout.decode(errors="replace").strip().splitlines()
    report = json.loads(lines[-1]) if lines else {}
    return process.returncode or 0, report, stderr.decode(errors="replace")


@pytest.mark.parametrize("dist", [DIST, DEV_DIST], ids=["production-build", "development-build-strict-mode"])
async def test_speak_show_and_hear_the_answer(start_proxy: StartProxy, upstream: FakeOpenAI,
                                              elevenlabs_with_conversations: FakeElevenLabs,
                                              tmp_path: Path, dist: Path) -> None:
    node = _require_browser_setup(dist)
    if dist == DEV_DIST:
        assert any("runWithFiberInDEV" in script.read_text() for script in (dist / "assets").glob("index-*.js"))
    elevenlabs = elevenlabs_with_conversations
    proxy = await _voice_proxy(start_proxy, elevenlabs, dist)
    conversations = elevenlabs.conversations
    assert conversations is not None
    conversations.custom_llm = CustomLlm(url=proxy.v1, api_key=CUSTOM_LLM_KEY)
    photo = tmp_path / "photo.jpg"
    _two_colour_photo(photo)

    code, report, stderr = await _drive_browser(node, {
        "PAGE_URL": proxy.url + "/", "IMAGE_PATH": str(photo), "TURN_URL": elevenlabs.base_url + "/_fake/turn",
        "SAID": SAID, "EXPECT_ANSWER": ANSWER, "ARTIFACTS_DIR": str(ARTIFACTS / dist.name), "CHROMIUM": CHROMIUM,
        "FRONTEND_DIR": str(FRONTEND), "SECRETS": ",".join((API_KEY, CUSTOM_LLM_KEY, UPSTREAM_KEY)),
    })
    assert code == 0, f"browser run failed: {json.dumps(report, indent=1)}\n{stderr[-3000:]}"

    # The page started exactly one conversation, through the fake's signed URL, with its session id.
    assert len(conversations.conversations) == 1, conversations.rejected
    conversation = conversations.conversations[0]
    session_calls = [c for c in elevenlabs.calls if c.path == "/v1/convai/conversation/get-signed-url"]
    assert len(session_calls) == 1 and session_calls[0].headers["xi-api-key"] == API_KEY
    session_id = conversation.initiation["custom_llm_extra_body"]["session_id"]
    assert session_id and conversation.agent_id == AGENT_ID
    assert conversation.audio_chunks > 0 and conversation.audio_bytes > 0, "the microphone never streamed"
    assert conversation.pongs, "the page did not answer the ping"

    # ElevenLabs' call reached the proxy, and the proxy's call reached the LLM with the photo in it.
    [turn] = conversation.turns
    assert turn.llm_status == 200 and turn.agent_response == ANSWER
    assert turn.llm_request["elevenlabs_extra_body"] == {"session_id": session_id}
    [chat] = upstream.chat_requests
    assert chat.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert chat.body["messages"][-1] == {"role": "user", "content": SAID}
    photo_part, dropped_part = (part for _, part in image_parts(chat.body["messages"]))
    received = _decode(photo_part)
    assert received.size == (1600, 1200), "the page should have downscaled the 3200x2400 photo"
    red, blue = received.getpixel((400, 600)), received.getpixel((1200, 600))
    assert red[0] > 180 and red[2] < 80 and blue[2] > 180 and blue[0] < 80  # the same picture, the right way round
    dropped = _decode(dropped_part)
    assert dropped.size == (400, 300)  # small enough to go as it was
    assert dropped.getpixel((200, 150)) == (30, 180, 30)

    # What the person saw: their words, the answer, the picture shared, no secret anywhere, no sideways scroll.
    assert {"role": "user", "text": SAID} in report["transcript"]
    assert {"role": "agent", "text": ANSWER} in report["transcript"]
    assert report["thumbnailStates"] == ["uploaded", "uploaded"]
    assert report["leaks"] == []
    assert report["horizontalOverflow"] is False
    assert (ARTIFACTS / dist.name / "full-loop.png").stat().st_size > 10_000
    errors = [line for line in report["console"] if line.startswith(("error", "pageerror"))]
    assert errors == [], errors
    _assert_accessible(report)


def _decode(part: dict[str, Any]) -> Image.Image:
    data_url = part["image_url"]["url"]
    assert data_url.startswith("data:image/"), data_url[:40]
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB")


def _assert_accessible(report: dict[str, Any]) -> None:
    """axe-core ran in the page before connecting and mid-conversation (or after a refusal)."""
    assert len(report["axe_runs"]) == 2
    serious = [v for v in report["accessibility"] if v["impact"] in ("serious", "critical")]
    assert serious == [], json.dumps(serious, indent=1)


async def test_a_refused_microphone_is_explained_and_starts_nothing(
        start_proxy: StartProxy, upstream: FakeOpenAI, elevenlabs_with_conversations: FakeElevenLabs) -> None:
    node = _require_browser_setup()
    elevenlabs = elevenlabs_with_conversations
    proxy = await _voice_proxy(start_proxy, elevenlabs, DIST)
    code, report, stderr = await _drive_browser(node, {
        "SCENARIO": "mic-refused", "PAGE_URL": proxy.url + "/", "ARTIFACTS_DIR": str(ARTIFACTS),
        "CHROMIUM": CHROMIUM, "FRONTEND_DIR": str(FRONTEND),
    })
    assert code == 0, f"browser run failed: {json.dumps(report, indent=1)}\n{stderr[-3000:]}"
    assert "Microphone access was refused" in report["alert"]
    assert report["status"] == "error"
    _assert_accessible(report)
    # Nothing was asked of ElevenLabs: no signed URL minted, no conversation opened.
    assert elevenlabs.calls == [] and elevenlabs.conversations and elevenlabs.conversations.conversations == []
