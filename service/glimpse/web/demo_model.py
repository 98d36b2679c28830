"""The built-in demo model's own HTTP server: an OpenAI-compatible upstream on a loopback port, so the proxy calls
it with the openai SDK like any other and its turns go through the relay, injection, metrics and spans unchanged.

POST /v1/chat/completions and /v1/responses (streamed or not) answer with what `demo/model.py` measures of the
request's `data:` images; GET /v1/models lists its one model. A key drawn at each start keeps other programs on
the machine out.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import orjson
from aiohttp import web
from pydantic import SecretStr

from ..config import DEMO, Settings, UpstreamConfig
from ..demo.model import Picture, answer, measure
from ..demo.request import Asked, data_url_bytes, read_chat, read_response
from ..demo.wire import chat_chunks, chat_completion, error, models, response, response_events

WORD_DELAY = 0.005  # seconds between streamed words: an answer arrives word by word, as a model's does
SHUTDOWN_SECONDS = 0.25  # the proxy's turns are over when its upstreams close: nothing is left to wait for
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class DemoModelServer:
    """The demo model listening on 127.0.0.1 (a free port); `serve` points the demo upstreams at it."""

    def __init__(self, runner: web.AppRunner, base_url: str, api_key: str) -> None:
        self._runner = runner
        self.base_url = base_url
        self._api_key = api_key

    @classmethod
    async def start(cls, settings: Settings, *, word_delay: float = WORD_DELAY) -> DemoModelServer:
        api_key = secrets.token_urlsafe(24)
        # the proxy's own limits: what it stores is at most GLIMPSE_IMAGE_MAX_EDGE a side, and may be larger than the
        # upload was (a lossy WebP with transparency is stored as a lossless PNG): at most 4 bytes a pixel + overhead
        stored_max = max(settings.image_max_bytes, settings.image_max_edge ** 2 * 4 + 64 * 1024)
        routes = _Routes(api_key, max_image_bytes=stored_max, max_pixels=settings.image_max_pixels,
                         max_decode_pixels=settings.image_max_edge ** 2, word_delay=word_delay)
        # a turn's body: the caller's (at most GLIMPSE_CHAT_MAX_BODY_BYTES) and the conversation's images in base64
        image_bytes = settings.images_per_conversation * (stored_max * 4 // 3 + 1024)
        app = web.Application(middlewares=[routes.key_required],
                              client_max_size=settings.chat_max_body_bytes + image_bytes)
        app.router.add_post("/v1/chat/completions", routes.chat)
        app.router.add_post("/v1/responses", routes.responses)
        app.router.add_get("/v1/models", routes.models)
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
        except BaseException:
            await runner.cleanup()
            raise
        return cls(runner, f"http://127.0.0.1:{port}/v1", api_key)

    def serve(self, targets: Sequence[UpstreamConfig]) -> tuple[UpstreamConfig, ...]:
        """`targets` with each demo upstream pointed at this server, with its key."""
        return tuple(target.model_copy(update={"base_url": self.base_url, "api_key": SecretStr(self._api_key)})
                     if target.provider == DEMO else target for target in targets)

    async def close(self) -> None:
        await self._runner.cleanup()


class _Routes:
    def __init__(self, api_key: str, *, max_image_bytes: int, max_pixels: int, max_decode_pixels: int,
                 word_delay: float) -> None:
        self._authorization = f"Bearer {api_key}".encode()
        self._max_image_bytes = max_image_bytes
        self._max_pixels = max_pixels
        self._max_decode_pixels = max_decode_pixels
        self._word_delay = word_delay

    @web.middleware
    async def key_required(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), self._authorization):
            return _json(error("Incorrect API key provided.", "invalid_api_key"), status=401)
        return await handler(request)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        asked = read_chat(body)
        text = await self._answer(asked)
        if not body.get("stream"):
            return _json(chat_completion(text, asked.words))
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return await self._stream(request, chat_chunks(text, asked.words, include_usage), _chat_frame,
                                  b"data: [DONE]\n\n")

    async def responses(self, request: web.Request) -> web.StreamResponse:
        body = await _body(request)
        asked = read_response(body)
        text = await self._answer(asked)
        if not body.get("stream"):
            return _json(response(text, asked.words, body))
        # the Responses API ends with its last event: no [DONE]
        return await self._stream(request, response_events(text, asked.words, body), _responses_frame, b"")

    async def models(self, request: web.Request) -> web.StreamResponse:
        return _json(models())

    async def _answer(self, asked: Asked) -> str:
        pictures = await asyncio.to_thread(self._measure, asked.images)  # decoding is CPU work: off the loop
        return answer(asked.question, pictures)

    def _measure(self, images: Sequence[str]) -> list[Picture | None]:
        measured = []
        for url in images:
            data = data_url_bytes(url, self._max_image_bytes)
            measured.append(None if data is None else measure(data, max_pixels=self._max_pixels,
                                                              max_decode_pixels=self._max_decode_pixels))
        return measured

    async def _stream(self, request: web.Request, events: Iterable[dict[str, Any]],
                      frame: Callable[[dict[str, Any]], bytes], end: bytes) -> web.StreamResponse:
        """`events` as SSE, each word a few milliseconds after the one before, then `end`."""
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await stream.prepare(request)
        words = 0
        for event in events:
            if _is_word(event):
                if words:
                    await asyncio.sleep(self._word_delay)
                words += 1
            await stream.write(frame(event))
        if end:
            await stream.write(end)
        await stream.write_eof()
        return stream


def _chat_frame(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _responses_frame(event: dict[str, Any]) -> bytes:
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def _is_word(event: dict[str, Any]) -> bool:
    if event.get("type") == "response.output_text.delta":
        return True
    return any(choice["delta"].get("content") for choice in event.get("choices", ()))


async def _body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; anything else is OpenAI's 400."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(body=orjson.dumps(error("We could not parse the JSON body of your request.")),
                                 content_type="application/json")
    return body


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
