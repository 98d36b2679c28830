"""The whole seed flow in a real browser: speak → ElevenLabs → proxy with the image → LLM → voice back.

The ElevenLabs agent is the one the operator's own code makes for a VoiceAgent (`desired_agent`, created with
`AgentsClient` through the strict fake ElevenLabs, its custom-LLM key a workspace secret), once with
`llm.apiType: chatCompletions` and once with `responses`. Its custom LLM URL is the operator's
`https://<ingress host>/v1`; the fake resolves that host to the proxy on loopback, as the ingress would.
The proxy serves the built page over real HTTP; Chromium (fake microphone) opens it, starts a conversation
through `/v1/session` and the fake ElevenLabs' signed URL, uploads a photo (picker) and a picture dropped off
target, and the fake ElevenLabs, having "heard" a question on the microphone stream, calls the proxy's
`/v1/chat/completions` or `/v1/responses` as that agent says. The fake OpenAI upstream must receive both
pictures (the photo downscaled in the browser), and the page must show the answer and the agent speaking.
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

from glimpse_operator.agents import AgentsClient
from glimpse_operator.render import desired_agent
from glimpse_operator.spec import with_defaults
from tests.conftest import Proxy, StartProxy
from tests.fakes.elevenlabs_api import AGENT_ID, API_KEY, FakeElevenLabs
from tests.fakes.elevenlabs_conversation import FakeConversations
from tests.fakes.openai_upstream import DEFAULT_WORDS, FakeOpenAI
from tests.helpers import image_parts
from tests.processes import ROOT
from tests.unit.test_operator_render import voice_agent

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
INGRESS_HOST = "voice.glimpse.test"  # .test never resolves (RFC 6761): only the fake's ingress map reaches it
FIRST_MESSAGE = "Hi! Show me something."


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


async def _operator_agent(elevenlabs: FakeElevenLabs, api_type: str) -> str:
    """The ElevenLabs agent the operator creates for a VoiceAgent: its workspace secret holding the custom-LLM
    key, then `desired_agent` of the spec with defaults, through the operator's own client."""
    spec = with_defaults(voice_agent(agent__firstMessage=FIRST_MESSAGE, ingress__host=INGRESS_HOST,
                                     llm__apiType=api_type)["spec"])

    def create() -> str:
        client = AgentsClient(API_KEY, elevenlabs.base_url)
        secret_id = client.create_secret("glimpse-voice-museum-guide-llm-key", CUSTOM_LLM_KEY)
        return client.create_agent(desired_agent(spec, secret_id))

    return await asyncio.to_thread(create)  # the client blocks; the fake serves on this loop


async def _voice_proxy(start_proxy: StartProxy, elevenlabs: FakeElevenLabs, dist: Path,
                       agent_id: str = AGENT_ID) -> Proxy:
    """The proxy serving the built page, with an agent on the fake ElevenLabs and a custom-LLM key."""
    proxy = await start_proxy(static_dir=str(dist), custom_llm_key=CUSTOM_LLM_KEY, elevenlabs_api_key=API_KEY,
                              elevenlabs_agent_id=agent_id, elevenlabs_base_url=elevenlabs.base_url)
    if elevenlabs.conversations:
        elevenlabs.conversations.ingress[INGRESS_HOST] = proxy.url
    return proxy


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


@pytest.mark.parametrize(("dist", "api_type"), [
    pytest.param(DIST, "chatCompletions", id="production-build-chat-completions"),
    pytest.param(DIST, "responses", id="production-build-responses"),
    pytest.param(DEV_DIST, "chatCompletions", id="development-build-strict-mode"),
])
async def test_speak_show_and_hear_the_answer(start_proxy: StartProxy, upstream: FakeOpenAI,
                                              elevenlabs_with_conversations: FakeElevenLabs,
                                              tmp_path: Path, dist: Path, api_type: str) -> None:
    node = _require_browser_setup(dist)
    if dist == DEV_DIST:
        assert any("runWithFiberInDEV" in script.read_text() for script in (dist / "assets").glob("index-*.js"))
    elevenlabs = elevenlabs_with_conversations
    agent_id = await _operator_agent(elevenlabs, api_type)
    proxy = await _voice_proxy(start_proxy, elevenlabs, dist, agent_id)
    conversations = elevenlabs.conversations
    assert conversations is not None
    photo = tmp_path / "photo.jpg"
    _two_colour_photo(photo)

    code, report, stderr = await _drive_browser(node, {
        "PAGE_URL": proxy.url + "/", "IMAGE_PATH": str(photo), "TURN_URL": elevenlabs.base_url + "/_fake/turn",
        "SAID": SAID, "EXPECT_ANSWER": ANSWER, "ARTIFACTS_DIR": str(ARTIFACTS / f"{dist.name}-{api_type}"),
        "CHROMIUM": CHROMIUM, "FRONTEND_DIR": str(FRONTEND),
        "SECRETS": ",".join((API_KEY, CUSTOM_LLM_KEY, UPSTREAM_KEY)),
    })
    assert code == 0, f"browser run failed: {json.dumps(report, indent=1)}\n{stderr[-3000:]}"

    # The page started exactly one conversation, through the fake's signed URL for the operator's agent, with
    # its session id (the agent permits that override, or the conversation would have been refused).
    assert len(conversations.conversations) == 1, conversations.rejected
    conversation = conversations.conversations[0]
    session_calls = [c for c in elevenlabs.calls if c.path == "/v1/convai/conversation/get-signed-url"]
    assert len(session_calls) == 1 and session_calls[0].headers["xi-api-key"] == API_KEY
    assert session_calls[0].query == {"agent_id": agent_id}
    extra_body = conversation.initiation["custom_llm_extra_body"]
    session_id = extra_body["session_id"]
    assert session_id and conversation.agent_id == agent_id and conversation.close_code is None
    assert conversation.audio_chunks > 0 and conversation.audio_bytes > 0, "the microphone never streamed"
    assert conversation.pongs, "the page did not answer the ping"

    # ElevenLabs called the proxy where the agent's api_type says, with the key from the agent's workspace
    # secret; and the proxy's call reached the LLM with the photo in it.
    [turn] = conversation.turns
    [attempt] = turn.attempts
    endpoint = "/v1/responses" if api_type == "responses" else "/v1/chat/completions"
    assert attempt.url == proxy.url + endpoint
    assert attempt.headers["Authorization"] == f"Bearer {CUSTOM_LLM_KEY}"
    assert turn.llm_status == 200 and turn.agent_response == ANSWER
    assert turn.llm_request["elevenlabs_extra_body"] == {"session_id": session_id,
                                                         "session_key": extra_body["session_key"]}
    if api_type == "responses":
        assert upstream.chat_requests == []
        [sent] = upstream.response_requests
        items = sent.body["input"]
        assert items[-1] == {"role": "user", "content": SAID}
        pictures = [part["image_url"] for item in items if isinstance(item.get("content"), list)
                    for part in item["content"] if part.get("type") == "input_image"]
    else:
        assert upstream.response_requests == []
        [sent] = upstream.chat_requests
        assert sent.body["messages"][-1] == {"role": "user", "content": SAID}
        pictures = [part["image_url"]["url"] for _, part in image_parts(sent.body["messages"])]
    assert sent.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    photo_url, dropped_url = pictures
    received = _decode(photo_url)
    assert received.size == (1600, 1200), "the page should have downscaled the 3200x2400 photo"
    red, blue = received.getpixel((400, 600)), received.getpixel((1200, 600))
    assert red[0] > 180 and red[2] < 80 and blue[2] > 180 and blue[0] < 80  # the same picture, the right way round
    dropped = _decode(dropped_url)
    assert dropped.size == (400, 300)  # small enough to go as it was
    assert dropped.getpixel((200, 150)) == (30, 180, 30)

    # What the person saw: their words, the answer, the picture shared, no secret anywhere, no sideways scroll.
    assert {"role": "agent", "text": FIRST_MESSAGE} in report["transcript"]
    assert {"role": "user", "text": SAID} in report["transcript"]
    assert {"role": "agent", "text": ANSWER} in report["transcript"]
    assert report["thumbnailStates"] == ["uploaded", "uploaded"]
    assert report["leaks"] == []
    assert report["horizontalOverflow"] is False
    assert (ARTIFACTS / f"{dist.name}-{api_type}" / "full-loop.png").stat().st_size > 10_000
    errors = [line for line in report["console"] if line.startswith(("error", "pageerror"))]
    assert errors == [], errors
    _assert_accessible(report)


def _decode(data_url: str) -> Image.Image:
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
