"""One open upstream response: its SSE `data:` payloads relayed as raw bytes, or its JSON body.

The proxy relays the upstream's SSE bytes event by event instead of re-serialising parsed chunks: each
payload goes out as soon as it arrives, unchanged, in order. On the way the stream notes the response's
model and token usage for metrics and traces.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

DONE = b"[DONE]"


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


class UpstreamDropped(Exception):
    """The upstream ended the stream without `[DONE]`."""


class UpstreamStream:
    """One upstream response that is open: relay its events, or read its JSON body, then close it."""

    def __init__(self, manager: Any, response: Any, hide_usage_chunk: bool) -> None:
        self._manager = manager
        self._response = response
        self._hide_usage_chunk = hide_usage_chunk
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
                if self._passes(payload):
                    self.state.chunks += 1
                    yield payload
        if buffer.strip():
            payload = _data_of(buffer)
            if payload == DONE:
                return
            if payload is not None and self._passes(payload):
                yield payload
        raise UpstreamDropped("the upstream closed the stream before [DONE]")

    def _passes(self, payload: bytes) -> bool:
        """Note the payload's model and usage; False for the usage-only chunk the caller did not ask for."""
        usage_only = self._record_model_and_usage(payload)
        return not (usage_only and self._hide_usage_chunk)

    def _record_model_and_usage(self, payload: bytes) -> bool:
        """Record the response model (first seen) and token usage; True when the chunk carries usage only."""
        if self.state.response_model is None and b'"model"' in payload:
            self.state.response_model = _field(payload, "model")
        if not _may_carry_usage(payload):
            return False
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return False
        usage = Usage.from_chunk(data) if isinstance(data, dict) else None
        if usage is None:
            return False
        self.state.usage = usage
        return not data.get("choices")

    async def close(self) -> None:
        await self._manager.__aexit__(None, None, None)


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
