"""SIGTERM with turns that outlast the grace period: the process is gone inside the grace (Kubernetes would
SIGKILL it at terminationGracePeriodSeconds), and no caller is cut off without being told."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp

from tests.helpers import conversation, elevenlabs_body, parse_sse
from tests.processes import start_fake_upstream, start_glimpse

GRACE = 3.0


async def test_turns_outlasting_the_grace_end_with_an_error_event_and_the_process_exits_inside_it(
        tmp_path: Path) -> None:
    fake, fake_url = await asyncio.to_thread(start_fake_upstream, 0.5)  # 20 chunks: a 10 s answer
    glimpse, base = await asyncio.to_thread(start_glimpse, tmp_path, upstream_base_url=fake_url,
                                            upstream_api_key="sk-test", shutdown_grace_seconds=str(GRACE))
    try:
        async with aiohttp.ClientSession() as http:
            chat = base + "/v1/chat/completions"
            streams = [await http.post(chat, json=elevenlabs_body("s", conversation(f"Go {n}"))) for n in range(3)]
            responses = await http.post(base + "/v1/responses", json={
                "model": "gpt-4o-mini", "input": [{"role": "user", "content": "Go"}], "stream": True})
            heard = {}
            for response in [*streams, responses]:
                assert response.status == 200
                heard[id(response)] = await response.content.readline()
            # a turn still waiting for its first token when the grace ends (the fake answers it after 5 s)
            waiting = asyncio.create_task(http.post(chat, json=elevenlabs_body(
                "s", conversation("Slow"), model="fault-slow-first-byte-5s")))
            await asyncio.sleep(0.2)
            signalled = time.monotonic()
            glimpse.popen.send_signal(15)
            code = await asyncio.to_thread(glimpse.popen.wait, 15)
            exited = time.monotonic() - signalled

            assert code == 0
            assert exited <= GRACE, f"exited {exited:.2f} s after SIGTERM, past the {GRACE} s grace"
            for stream in streams:
                payloads = parse_sse(heard[id(stream)] + await stream.read())
                assert payloads[-1] == "[DONE]"
                assert json.loads(payloads[-2])["error"]["code"] == "server_shutting_down"
            events = (heard[id(responses)] + await responses.read()).decode()
            assert '"type":"error"' in events.replace(" ", "") and "server_shutting_down" in events
            late = await waiting
            assert late.status == 503 and late.headers["Retry-After"] == "1"
            assert (await late.json())["error"]["message"].startswith("The server is shutting down")
    finally:
        await asyncio.to_thread(glimpse.stop)
        await asyncio.to_thread(fake.stop)
