"""`glimpse serve` as a real process: starts on its embedded defaults, reports bad config clearly,
stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import sysconfig
import tempfile
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.elevenlabs_api import AGENT_ID, API_KEY, FakeElevenLabs
from tests.fakes.openai_upstream import FakeOpenAI
from tests.helpers import contents, conversation, elevenlabs_body, image_parts, new_session, parse_sse, upload
from tests.images import jpeg
from tests.paths import ROOT
from tests.processes import clean_env, free_port

GLIMPSE = [sys.executable, "-m", "glimpse"]


async def test_bad_config_is_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        *GLIMPSE, "serve", env=clean_env(GLIMPSE_STORE_URL="mongodb://db:27017"), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    text = stderr.decode()
    assert "Traceback" not in text
    assert "GLIMPSE_STORE_URL" in text and "mongodb" in text
    assert len(text.strip().splitlines()) == 1


async def test_an_aiohttp_without_the_guards_internals_is_refused_in_one_line(tmp_path: Path) -> None:
    """`glimpse serve` on an aiohttp whose RequestHandler lacks `_request_in_progress`, as a release that renamed it:
    one line naming it, no traceback, before anything listens."""
    refuse = ("import sys, aiohttp.web_protocol; del aiohttp.web_protocol.RequestHandler._request_in_progress; "
              "from glimpse.cli import main; sys.exit(main(['serve']))")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", refuse, env=clean_env(GLIMPSE_PORT=str(free_port())), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    text = stderr.decode()
    assert process.returncode == 1, text
    assert len(text.strip().splitlines()) == 1 and "Traceback" not in text, text
    assert text.startswith(f"glimpse: aiohttp {aiohttp.__version__} lacks RequestHandler._request_in_progress, "
                           "which Glimpse's connection guard reads (checked on aiohttp "), text


async def test_serve_on_defaults_then_sigterm(tmp_path: Path, upstream: FakeOpenAI, elevenlabs: FakeElevenLabs) -> None:
    port = free_port()
    metrics_port = free_port()  # the default, 9090, may be taken on a shared machine
    env = clean_env(GLIMPSE_PORT=str(port), GLIMPSE_METRICS_PORT=str(metrics_port),
                    GLIMPSE_UPSTREAM_BASE_URL=upstream.base_url,
                    OPENAI_API_KEY="sk-from-env-test", GLIMPSE_CUSTOM_LLM_KEY="cllm-process-key",
                    GLIMPSE_ELEVENLABS_API_KEY=API_KEY, GLIMPSE_ELEVENLABS_AGENT_ID=AGENT_ID,
                    GLIMPSE_ELEVENLABS_BASE_URL=elevenlabs.base_url, GLIMPSE_LOG_LEVEL="DEBUG")
    process = await asyncio.create_subprocess_exec(*GLIMPSE, "serve", env=env, cwd=tmp_path,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await _healthy(http, base)
            async with http.get(base + "/readyz") as response:
                assert response.status == 200
            session = await new_session(http, base)
            assert session["signed_url"].startswith("wss://")
            assert (await upload(http, base, session)).status == 201
            body = elevenlabs_body(session, conversation("What is this?"))
            async with http.post(base + "/v1/chat/completions", json=body,
                                 headers={"Authorization": "Bearer cllm-process-key"}) as response:
                assert response.status == 200
                assert (await response.read()).endswith(b"data: [DONE]\n\n")
            async with http.get(base + "/metrics") as response:  # not beside the API: on its own port
                assert response.status == 404
            async with http.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
                assert response.status == 200 and "glimpse_requests_total" in await response.text()
        assert len(image_parts(upstream.last_messages())) == 1
        # the embedded default: local disk under ./data/images of the working directory
        assert len(list((tmp_path / "data" / "images").iterdir())) == 1
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    assert any(line.get("route") == "/v1/chat/completions" and line.get("status") == 200 for line in lines)
    text = stderr.decode()
    for secret in ("sk-from-env-test", "cllm-process-key", API_KEY, "data:image", session["upload_token"]):
        assert secret not in text


async def test_serve_with_no_keys_at_all_answers_with_the_demo_model(tmp_path: Path) -> None:
    """A fresh clone's `make run`: nothing configured, yet a picture and a question get an answer about it (#20)."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(*GLIMPSE, "serve", env=clean_env(GLIMPSE_PORT=str(port),
                                                                                 GLIMPSE_METRICS_PORT=str(free_port())),
                                                   cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await _healthy(http, base)
            session = await new_session(http, base)
            assert session["demo_model"] is True
            assert (await upload(http, base, session, jpeg(400, 300, (220, 20, 20)))).status == 201
            body = elevenlabs_body(session, conversation("What colour is this?"))
            async with http.post(base + "/v1/chat/completions", json=body) as response:
                assert response.status == 200  # it was 502: "Could not reach the upstream LLM"
                text = contents(parse_sse(await response.read()))
        assert text.startswith('Demo model (no LLM is configured): you asked "What colour is this?".')
        assert "400 by 300, landscape" in text and "red" in text
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    messages = [json.loads(line).get("msg", "") for line in stderr.decode().splitlines() if line.startswith("{")]
    assert any(message.startswith("No upstream LLM configured: answering with the built-in demo model")
               for message in messages), stderr.decode()[-2000:]


async def _healthy(http: aiohttp.ClientSession, base: str) -> None:
    """Waits (up to ~10 s) until the process answers /healthz."""
    for _ in range(100):
        try:
            async with http.get(base + "/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            await asyncio.sleep(0.1)


ARBITRARY_UID = 1_000_680_000  # as OpenShift's restricted-v2 draws one from a namespace's range; no passwd entry


async def test_serve_as_an_arbitrary_uid_in_group_0(upstream: FakeOpenAI) -> None:
    """OpenShift runs the image as a UID of the namespace's range, in group 0, with no passwd entry and HOME=/: the
    proxy starts, stores a picture under the image's data dir (group 0 may write it: the Dockerfile's
    `chgrp -R 0 /data && chmod -R g=u /data`, done here to a directory of its own) and answers a turn with it."""
    if os.geteuid() != 0:
        pytest.skip("starting a process as another UID needs root (CI runs as root)")
    # This venv's interpreter may live where another UID cannot reach it (pyenv under /root, 0700): the distribution's
    # own CPython of the same version runs the same code with this venv's packages.
    python = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not python.is_file():
        pytest.skip(f"{python} is not installed: no interpreter another UID can run")
    workdir = Path(tempfile.mkdtemp(prefix="glimpse-uid-", dir="/tmp"))
    try:
        (workdir / "data" / "images").mkdir(parents=True)
        for path in (workdir, workdir / "data", workdir / "data" / "images"):
            os.chown(path, 0, 0)
            path.chmod(0o770)  # chmod g=u of root's rwx: the owner's bits for group 0, nothing for others
        port = free_port()
        env = clean_env(GLIMPSE_PORT=str(port), GLIMPSE_UPSTREAM_BASE_URL=upstream.base_url,
                        OPENAI_API_KEY="sk-from-env-test", HOME="/",
                        PYTHONPATH=os.pathsep.join([str(ROOT / "service"), sysconfig.get_paths()["purelib"]]))
        process = await asyncio.create_subprocess_exec(
            str(python), "-m", "glimpse", "serve", env=env, cwd=workdir, user=ARBITRARY_UID, group=0, extra_groups=[0],
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as http:
                await _healthy(http, base)
                status = Path(f"/proc/{process.pid}/status").read_text()
                assert f"Uid:\t{ARBITRARY_UID}\t" in status and "Gid:\t0\t" in status
                session = await new_session(http, base)
                assert (await upload(http, base, session)).status == 201
                async with http.post(base + "/v1/chat/completions",
                                     json=elevenlabs_body(session, conversation("What is this?"))) as response:
                    assert response.status == 200
                    assert (await response.read()).endswith(b"data: [DONE]\n\n")
            assert len(image_parts(upstream.last_messages())) == 1
            [stored] = (workdir / "data" / "images").rglob("*.jpg")
            assert stored.stat().st_uid == ARBITRARY_UID
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, stderr.decode()[-2000:]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
