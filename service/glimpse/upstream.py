"""The real LLM behind the proxy, reached with the `openai` SDK (auth, retries, base URL handling).

The proxy relays the upstream's SSE bytes event by event instead of re-serialising parsed chunks:
each `data:` payload goes out as soon as it arrives, unchanged, in order.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import openai
import orjson

from .config import Settings
from .errors import ApiError

log = logging.getLogger(__name__)

# Request fields of OpenAI Chat Completions; anything else (elevenlabs_extra_body, user_id, …) is dropped.
OPENAI_CHAT_FIELDS = frozenset({
    "model", "messages", "audio", "frequency_penalty", "function_call", "functions", "logit_bias",
    "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities", "n", "parallel_tool_calls",
    "prediction", "presence_penalty", "prompt_cache_key", "reasoning_effort", "response_format",
    "safety_identifier", "seed", "service_tier", "stop", "store", "stream", "stream_options", "temperature",
    "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
})

DONE = b"[DONE]"


def openai_payload(body: dict[str, Any], messages: list[Any], default_model: str) -> dict[str, Any]:
    """The request to forward: OpenAI fields only, `user_id` mapped to `user`, injected `messages`."""
    payload = {key: value for key, value in body.items() if key in OPENAI_CHAT_FIELDS}
    payload["messages"] = messages
    user_id = body.get("user_id")
    if user_id is not None and "user" not in payload:
        payload["user"] = str(user_id)
    if not payload.get("model"):
        if not default_model:
            raise ApiError(400, "`model` is required (or set GLIMPSE_UPSTREAM_MODEL).", param="model")
        payload["model"] = default_model
    return payload


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @classmethod
    def from_chunk(cls, data: dict[str, Any]) -> Usage | None:
        usage = data.get("usage")
        if not isinstance(usage, dict):
            return None
        return cls(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


@dataclass
class RelayState:
    """What the relay learned while streaming, for metrics and traces."""

    response_model: str | None = None
    usage: Usage | None = None
    chunks: int = 0


class UpstreamStream:
    """One upstream response that is open: relay its events, or read its JSON body, then close it."""

    def __init__(self, manager: Any, response: Any, strip_usage_chunk: bool) -> None:
        self._manager = manager
        self._response = response
        self._strip_usage_chunk = strip_usage_chunk
        self.state = RelayState()
        self._events: AsyncIterator[bytes] | None = None

    async def first_event(self) -> bytes | None:
        """The first `data:` payload (None when the stream held none); `remaining_events` goes on from there."""
        self._events = self.events()
        return await anext(self._events, None)

    async def remaining_events(self) -> AsyncIterator[bytes]:
        assert self._events is not None, "call first_event() first"
        async for payload in self._events:
            yield payload

    async def read_json(self) -> bytes:
        body: bytes = await self._response.read()
        try:
            data = orjson.loads(body)
            self.state.usage = Usage.from_chunk(data)
            self.state.response_model = data.get("model")
        except (orjson.JSONDecodeError, AttributeError):
            pass
        return body

    async def events(self) -> AsyncIterator[bytes]:
        """Yield each SSE `data:` payload as raw bytes, ending before `[DONE]`."""
        buffer = b""
        async for chunk in self._response.iter_bytes():
            buffer += chunk
            if b"\r" in buffer:
                buffer = buffer.replace(b"\r\n", b"\n")
            while (end := buffer.find(b"\n\n")) >= 0:
                block, buffer = buffer[:end], buffer[end + 2:]
                payload = _data_of(block)
                if payload is None:
                    continue
                if payload == DONE:
                    return
                if self._keep(payload):
                    self.state.chunks += 1
                    yield payload
        if buffer.strip():
            payload = _data_of(buffer)
            if payload == DONE:
                return
            if payload is not None and self._keep(payload):
                yield payload
        raise UpstreamDropped("the upstream closed the stream before [DONE]")

    def _keep(self, payload: bytes) -> bool:
        if self.state.response_model is None and b'"model"' in payload:
            self.state.response_model = _field(payload, "model")
        if not _may_carry_usage(payload):
            return True
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return True
        usage = Usage.from_chunk(data) if isinstance(data, dict) else None
        if usage is None:
            return True
        self.state.usage = usage
        # The usage-only chunk we asked for on the caller's behalf is not theirs to see.
        return not (self._strip_usage_chunk and not data.get("choices"))

    async def close(self) -> None:
        await self._manager.__aexit__(None, None, None)


class UpstreamDropped(Exception):
    pass


def _may_carry_usage(payload: bytes) -> bool:
    """Cheap test before parsing: with include_usage, OpenAI sends `"usage":null` on every chunk."""
    return b'"usage"' in payload and b'"usage":null' not in payload and b'"usage": null' not in payload


def _data_of(block: bytes) -> bytes | None:
    data_lines = [line[5:].removeprefix(b" ") for line in block.split(b"\n") if line.startswith(b"data:")]
    if not data_lines:
        return None
    return data_lines[0] if len(data_lines) == 1 else b"\n".join(data_lines)


def _field(payload: bytes, name: str) -> str | None:
    try:
        value = orjson.loads(payload).get(name)
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) else None


class Upstream:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        timeout = openai.Timeout(settings.upstream_read_timeout, connect=settings.upstream_connect_timeout)
        self.client = openai.AsyncOpenAI(
            base_url=settings.upstream_base_url,
            api_key=settings.upstream_api_key or "no-key-configured",
            max_retries=settings.upstream_max_retries,
            timeout=timeout,
            # aiohttp as the SDK's transport: one pooled keep-alive connector, and a fraction of the CPU the
            # default transport spends per request (measured with bench/run.py)
            http_client=openai.DefaultAioHttpClient(timeout=timeout),
        )

    async def open(self, payload: dict[str, Any], extra_headers: dict[str, str] | None = None) -> UpstreamStream:
        """Send the request; errors before the first byte become ApiError with an OpenAI-style body."""
        payload = dict(payload)
        model, messages, stream = payload.pop("model"), payload.pop("messages"), bool(payload.pop("stream", False))
        strip_usage = False
        if stream and self.settings.upstream_stream_usage:
            options = payload.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage")):
                payload["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
                strip_usage = True
        # `messages` travels in extra_body: the SDK then sends it as it is instead of walking every message
        # through its typed-dict transform, which cost more per request than the rest of the proxy (bench/).
        # The caller's messages were already validated; the bytes on the wire are the same.
        manager = self.client.chat.completions.with_streaming_response.create(
            model=model, messages=[], stream=stream, extra_body={**payload, "messages": messages},
            extra_headers=extra_headers)
        try:
            response = await manager.__aenter__()
        except openai.APIError as exc:
            raise upstream_error(exc) from None
        return UpstreamStream(manager, response, strip_usage)

    async def models(self) -> bytes:
        try:
            async with self.client.models.with_streaming_response.list() as response:
                body: bytes = await response.read()
                return body
        except openai.APIError as exc:
            raise upstream_error(exc) from None

    async def close(self) -> None:
        await self.client.close()


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def upstream_error(exc: openai.APIError) -> ApiError:
    # The SDK's aiohttp transport reports a refused connection as a connect *timeout*; look at the cause.
    if isinstance(exc, openai.APITimeoutError) and not _caused_by(exc, aiohttp.ClientConnectorError):
        return ApiError(504, "The upstream LLM did not answer in time.")
    if isinstance(exc, openai.APIConnectionError):
        return ApiError(502, "Could not reach the upstream LLM.")
    if not isinstance(exc, openai.APIStatusError):
        return ApiError(502, f"The upstream LLM answered unexpectedly: {exc.message}")
    status = exc.status_code
    message = _upstream_message(exc)
    if status in (401, 403):
        log.error("upstream rejected the proxy's credentials (%s): check GLIMPSE_UPSTREAM_API_KEY", status)
        return ApiError(502, "The upstream LLM rejected the proxy's credentials.", code="upstream_auth")
    if status == 429:
        retry_after = exc.response.headers.get("retry-after")
        return ApiError(429, f"The upstream LLM is rate limiting: {message}",
                        headers={"Retry-After": retry_after} if retry_after else None)
    if status in (400, 404, 409, 422):
        return ApiError(400 if status == 422 else status, message, code=_upstream_code(exc))
    return ApiError(502, f"The upstream LLM failed ({status}): {message}")


def _upstream_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
    return exc.message


def _upstream_code(exc: openai.APIStatusError) -> str | None:
    body = exc.body
    inner = body.get("error", body) if isinstance(body, dict) else None
    code = inner.get("code") if isinstance(inner, dict) else None
    return code if isinstance(code, str) else None
