"""A fake OpenAI upstream tuned for load: precomputed chunks, N per stream, fixed first-byte and
inter-chunk delays. Runs as its own process so its CPU is not charged to the proxy under test.

    python bench/upstream.py PORT CHUNKS CHUNK_DELAY_MS FIRST_BYTE_DELAY_MS
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiohttp import web


def chunk(content: str | None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def make_app(chunks: int, chunk_delay: float, first_byte_delay: float) -> web.Application:
    role = chunk("")
    words = [chunk(f"word{i} ") for i in range(chunks)]
    finish = chunk(None, "stop")
    usage = (b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,'
             b'"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":50,"completion_tokens":'
             + str(chunks).encode() + b',"total_tokens":' + str(50 + chunks).encode() + b"}}\n\n")

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if first_byte_delay:
            await asyncio.sleep(first_byte_delay)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(role)
        for word in words:
            await response.write(word)
            if chunk_delay:
                await asyncio.sleep(chunk_delay)
        await response.write(finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            await response.write(usage)
        await response.write(b"data: [DONE]\n\n")
        return response

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_get("/v1/models", models)
    return app


if __name__ == "__main__":
    port, chunks, delay_ms, first_ms = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(make_app(chunks, delay_ms / 1000, first_ms / 1000), host="127.0.0.1", port=port, print=None,
                access_log=None, backlog=2048)
