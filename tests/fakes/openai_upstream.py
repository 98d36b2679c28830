"""A fake OpenAI server on loopback (Chat Completions and the Responses API), speaking the real wire format.

Tests set `next` behaviours (or the default) and read `requests` to see exactly what the proxy sent.
Requests are checked against OpenAI's own schemas (`shared/vendor-spec/openai.json`) and unknown fields are
refused, as OpenAI does. Chat streams are real SSE (`data: <chunk json>\\n\\n` … `data: [DONE]\\n\\n`);
Responses streams are `event:`/`data:` pairs from `response.created` to `response.completed`. Both have
optional tool calls, usage, error statuses with OpenAI's error body, a slow first byte, and a drop in the
middle of the stream. Chat Completions bodies also meet the per-model rules of `provider_rules` (reasoning models
refuse `max_tokens`, a temperature other than 1 …, non-reasoning ones `reasoning_effort`), with OpenAI's own 400s.

`FakeUpstream` is what every fake upstream shares (the Gemini fake too): loopback serving, recorded requests, the
`next`/`default` behaviours and the streaming loop.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from aiohttp import web

from tests.fakes.loopback import serve_app
from tests.fakes.provider_rules import openai_chat_refusal, unrecognized
from tests.fakes.vendor_spec import known_fields, validator

DEFAULT_WORDS = ["The ", "picture ", "shows ", "a ", "red ", "bicycle", "."]


@dataclass
class Behaviour:
    words: list[str] = field(default_factory=lambda: list(DEFAULT_WORDS))
    chunk_delay: float = 0.0
    first_byte_delay: float = 0.0
    status: int | None = None  # answer with this error status instead
    drop_after: int | None = None  # close the connection after this many content chunks
    tool_call: dict[str, Any] | None = None  # {"name": ..., "arguments": "..."} streamed in pieces
    retry_after: str | None = None
    junk: tuple[int, bytes] | None = None  # (after this many content chunks, these raw bytes): a broken event


# A caller in another process picks a fault by model name (the soak test does).
FAULT_MODELS = {
    "fault-500": Behaviour(status=500),
    "fault-401": Behaviour(status=401),
    "fault-429": Behaviour(status=429, retry_after="0"),
    "fault-drop": Behaviour(drop_after=2),
    "fault-slow-first-byte": Behaviour(first_byte_delay=1.5),
    "fault-slow-first-byte-5s": Behaviour(first_byte_delay=5.0),
}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    peer: Any = None  # the client's (host, port): one value per TCP connection it used
    raw: bytes = b""  # the body as it came over the wire


class FakeUpstream:
    """A fake LLM server on loopback: requests recorded, behaviours picked from `next`, else `default`."""

    prefix: ClassVar[str] = ""  # the API's root path, which `base_url` ends with

    def __init__(self) -> None:
        self.default = Behaviour()
        self.next: deque[Behaviour] = deque()
        self.requests: list[Received] = []
        self.disconnects = 0
        self.disconnected = asyncio.Event()
        self.streams_started = asyncio.Event()
        self._ids = itertools.count(1)
        self.app = web.Application()
        self.runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> Self:
        self.runner, port = await serve_app(self.app)
        self.base_url = f"http://127.0.0.1:{port}{self.prefix}"
        return self

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()

    @property
    def chat_requests(self) -> list[Received]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def last_messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.chat_requests[-1].body["messages"]
        return messages

    def _record(self, request: web.Request, body: Any, raw: bytes = b"") -> None:
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        self.requests.append(Received(request.path, dict(request.headers), body, time.monotonic(), peer, raw))

    def _pick(self, body: dict[str, Any]) -> Behaviour:
        return self.next.popleft() if self.next else FAULT_MODELS.get(str(body.get("model")), self.default)

    async def _stream(self, request: web.Request, frames: Iterable[bytes], behaviour: Behaviour,
                      drop_at: int | None, end: bytes = b"data: [DONE]\n\n") -> web.StreamResponse:
        """Writes `frames` as they come (with the behaviour's delay), then `end`; closes the connection abruptly
        instead of writing frame `drop_at`."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        self.streams_started.set()
        try:
            for index, frame in enumerate(frames):
                if drop_at is not None and index >= drop_at:
                    assert request.transport is not None
                    request.transport.close()  # abrupt: no terminating chunk, no [DONE]
                    return response
                await response.write(frame)
                if behaviour.chunk_delay:
                    await asyncio.sleep(behaviour.chunk_delay)
            if end:
                await response.write(end)
            await response.write_eof()
        except (asyncio.CancelledError, ConnectionResetError):
            self.disconnects += 1
            self.disconnected.set()
            raise
        return response


class FakeOpenAI(FakeUpstream):
    prefix = "/v1"

    def __init__(self) -> None:
        super().__init__()
        self.models = ["gpt-4o-mini", "gpt-4o"]
        self.models_status: int | None = None  # answer GET /models with this error status instead
        self.app.router.add_post("/v1/chat/completions", self._chat)
        self.app.router.add_post("/v1/responses", self._responses)
        self.app.router.add_get("/v1/models", self._models)

    @property
    def response_requests(self) -> list[Received]:
        return [r for r in self.requests if r.path.endswith("/responses")]

    def last_input(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.response_requests[-1].body["input"]
        return items

    @staticmethod
    def _refusal(body: Any, definition: str) -> web.Response | None:
        """OpenAI's 400 for a body its schema does not allow, for a field it does not know, or (Chat Completions)
        for a field or value the model named refuses."""
        if not isinstance(body, dict):
            return _invalid("We could not parse the JSON body of your request.", None)
        unknown = sorted(set(body) - known_fields("openai", definition))
        if unknown:
            refusal = unrecognized(unknown[0])
            return _invalid(refusal.message, refusal.param, refusal.code)
        error = next(iter(validator("openai", definition).iter_errors(body)), None)
        if error is not None:
            param = ".".join(str(part) for part in error.absolute_path) or None
            return _invalid(f"Invalid value for '{param}': {error.message[:300]}", param, "invalid_value")
        if definition == "CreateChatCompletionRequest" and (model_refusal := openai_chat_refusal(body)):
            return _invalid(model_refusal.message, model_refusal.param, model_refusal.code)
        return None

    async def _models(self, request: web.Request) -> web.Response:
        self._record(request, {})
        if (unauthenticated := _unauthenticated(request)) is not None:
            return unauthenticated
        if self.models_status:
            return self._error(Behaviour(status=self.models_status))
        return web.json_response({"object": "list", "data": [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake"} for m in self.models]})

    async def _accept(self, request: web.Request, schema: str) -> tuple[dict[str, Any], Behaviour] | web.Response:
        """Record the request, refuse it as OpenAI would, or pick how to answer it (an error status too)."""
        if (unauthenticated := _unauthenticated(request)) is not None:  # OpenAI checks the key before the body
            self._record(request, {})
            return unauthenticated
        body = await request.json()
        self._record(request, body, await request.read())  # read() is the body json() already read
        refusal = self._refusal(body, schema)
        if refusal is not None:
            return refusal
        behaviour = self._pick(body)
        if behaviour.first_byte_delay:
            await asyncio.sleep(behaviour.first_byte_delay)
        if behaviour.status:
            return self._error(behaviour)
        return body, behaviour

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        accepted = await self._accept(request, "CreateChatCompletionRequest")
        if isinstance(accepted, web.Response):
            return accepted
        body, behaviour = accepted
        model = body.get("model", "gpt-4o-mini")
        completion_id = f"chatcmpl-fake{next(self._ids)}"
        if not body.get("stream"):
            return web.json_response(self._completion(completion_id, model, behaviour))
        frames: Iterable[bytes] = (b"data: " + json.dumps(chunk).encode() + b"\n\n"
                                   for chunk in self._chunks(completion_id, model, behaviour, body))
        if behaviour.junk is not None:
            listed = list(frames)
            listed.insert(behaviour.junk[0] + 1, behaviour.junk[1])  # after the role chunk and that many more
            frames = listed
        drop_at = None if behaviour.drop_after is None else behaviour.drop_after + 1  # after the role chunk
        return await self._stream(request, frames, behaviour, drop_at)

    def _error(self, behaviour: Behaviour) -> web.Response:
        kinds = {400: ("invalid_request_error", "invalid_value", "Invalid value for 'model'."),
                 401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
                 404: ("invalid_request_error", "model_not_found", "The model does not exist."),
                 429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
                 500: ("server_error", None, "The server had an error while processing your request."),
                 503: ("server_error", None, "The engine is currently overloaded.")}
        status = behaviour.status or 500
        kind, code, message = kinds.get(status, ("server_error", None, "error"))
        headers = {"retry-after": behaviour.retry_after} if behaviour.retry_after else None
        return web.json_response({"error": {"message": message, "type": kind, "param": None, "code": code}},
                                 status=status, headers=headers)

    @staticmethod
    def _base(completion_id: str, model: str) -> dict[str, Any]:
        return {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model, "system_fingerprint": "fp_fake"}

    def _chunks(self, completion_id: str, model: str, behaviour: Behaviour,
                body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        base = self._base(completion_id, model)
        if (body.get("stream_options") or {}).get("include_usage"):
            base["usage"] = None  # as OpenAI does: every chunk carries "usage": null, the last one the numbers

        def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

        yield choice({"role": "assistant", "content": ""})
        if behaviour.tool_call:
            name, arguments = behaviour.tool_call["name"], behaviour.tool_call["arguments"]
            yield choice({"tool_calls": [{"index": 0, "id": "call_fake1", "type": "function",
                                          "function": {"name": name, "arguments": ""}}]})
            for start in range(0, len(arguments), 8):
                yield choice({"tool_calls": [{"index": 0, "function": {"arguments": arguments[start:start + 8]}}]})
            finish = "tool_calls"
        else:
            for word in behaviour.words:
                yield choice({"content": word})
            finish = "stop"
        yield choice({}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            yield {**base, "choices": [], "usage": self._usage(body, behaviour)}

    @staticmethod
    def _usage(body: dict[str, Any], behaviour: Behaviour) -> dict[str, int]:
        prompt = sum(len(json.dumps(m)) // 4 for m in body.get("messages", []))
        completion = len(behaviour.words)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _completion(self, completion_id: str, model: str, behaviour: Behaviour) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(behaviour.words), "refusal": None}
        finish = "stop"
        if behaviour.tool_call:
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_fake1", "type": "function", "function": dict(behaviour.tool_call)}]}
            finish = "tool_calls"
        return {"id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": {"prompt_tokens": 12, "completion_tokens": len(behaviour.words),
                          "total_tokens": 12 + len(behaviour.words)}}

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        accepted = await self._accept(request, "CreateResponse")
        if isinstance(accepted, web.Response):
            return accepted
        body, behaviour = accepted
        events = list(self._response_events(f"resp_fake{next(self._ids)}", body.get("model", "gpt-4o-mini"),
                                            behaviour, body))
        if not body.get("stream"):
            return web.json_response(events[-1]["response"])
        frames = (f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode() for event in events)
        # a drop comes after the preamble (created, in_progress, the item and its part) and no response.completed
        drop_at = None if behaviour.drop_after is None else behaviour.drop_after + 5
        return await self._stream(request, frames, behaviour, drop_at, end=b"")  # the Responses API sends no [DONE]

    def _response_events(self, response_id: str, model: str, behaviour: Behaviour,
                         body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The event sequence of a streamed Responses API answer, numbered from 0 as OpenAI numbers them."""
        sequence = itertools.count()
        created = int(time.time())

        def response(status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None) -> dict[str, Any]:
            return {"id": response_id, "object": "response", "created_at": created, "status": status,
                    "model": model, "output": output, "usage": usage, "error": None, "incomplete_details": None,
                    "instructions": body.get("instructions"), "tools": body.get("tools", []),
                    "parallel_tool_calls": True, "tool_choice": body.get("tool_choice", "auto")}

        def event(kind: str, **fields: Any) -> dict[str, Any]:
            return {"type": kind, "sequence_number": next(sequence), **fields}

        yield event("response.created", response=response("in_progress", [], None))
        yield event("response.in_progress", response=response("in_progress", [], None))
        if behaviour.tool_call:
            name, arguments = behaviour.tool_call["name"], behaviour.tool_call["arguments"]
            item = {"id": "fc_fake1", "type": "function_call", "call_id": "call_fake1", "name": name,
                    "arguments": "", "status": "in_progress"}
            yield event("response.output_item.added", output_index=0, item=item)
            for start in range(0, len(arguments), 8):
                yield event("response.function_call_arguments.delta", item_id="fc_fake1", output_index=0,
                            delta=arguments[start:start + 8])
            yield event("response.function_call_arguments.done", item_id="fc_fake1", output_index=0,
                        arguments=arguments)
            item = {**item, "arguments": arguments, "status": "completed"}
            yield event("response.output_item.done", output_index=0, item=item)
        else:
            text = "".join(behaviour.words)
            item = {"id": "msg_fake1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}
            yield event("response.output_item.added", output_index=0, item=item)
            part = {"type": "output_text", "text": "", "annotations": []}
            yield event("response.content_part.added", item_id="msg_fake1", output_index=0, content_index=0,
                        part=part)
            for word in behaviour.words:
                yield event("response.output_text.delta", item_id="msg_fake1", output_index=0, content_index=0,
                            delta=word, logprobs=[])
            yield event("response.output_text.done", item_id="msg_fake1", output_index=0, content_index=0,
                        text=text, logprobs=[])
            part = {**part, "text": text}
            yield event("response.content_part.done", item_id="msg_fake1", output_index=0, content_index=0,
                        part=part)
            item = {**item, "status": "completed", "content": [part]}
            yield event("response.output_item.done", output_index=0, item=item)
        prompt = len(json.dumps(body.get("input"))) // 4
        usage = {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": len(behaviour.words), "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": prompt + len(behaviour.words)}
        yield event("response.completed", response=response("completed", [item], usage))


# OpenAI API reference, "Authentication": keys are sent as `Authorization: Bearer`; the 401's message as captured in
# github.com/yihong0618/bilingual_book_maker/issues/137 (type invalid_request_error, no param or code).
NO_API_KEY = ("You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer "
              "auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're "
              "accessing the API from your browser and are prompted for a username and password. You can obtain an "
              "API key from https://beta.openai.com.")


def _unauthenticated(request: web.Request) -> web.Response | None:
    """OpenAI's 401 for a request without a bearer key; any non-empty key passes (tests use many)."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme == "Bearer" and key.strip():
        return None
    return web.json_response({"error": {"message": NO_API_KEY, "type": "invalid_request_error", "param": None,
                                        "code": None}}, status=401)


def _invalid(message: str, param: str | None, code: str | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error", "param": param,
                                         "code": code}}, status=400)
