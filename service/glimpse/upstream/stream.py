"""One open upstream response: its SSE events relayed as they arrive, or its JSON body.

The proxy relays the upstream's SSE payloads event by event instead of re-serialising parsed chunks: each
goes out as soon as it arrives, unchanged, in order, framed in its API's dialect (`sse.py`). On the way
the stream notes the response's model and token usage for metrics and traces.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from ..errors import UpstreamError
from .sse import RelayState, SseDialect, SseParser


class UpstreamDropped(Exception):
    """The upstream ended the stream without its API's end of stream."""


class UpstreamStream:
    """One upstream response that is open: relay its events, or read its JSON body, then close it."""

    def __init__(self, manager: Any, response: Any, dialect: SseDialect, max_event_bytes: int) -> None:
        self._manager = manager
        self._max_event_bytes = max_event_bytes
        self._response = response
        self.dialect = dialect
        self.state = RelayState()
        self._events: AsyncIterator[bytes] | None = None
        self._last_carried_output = False

    async def first_event(self) -> bytes | None:
        """The caller's first bytes: the events up to and including the first that carries output (None when
        the stream held none); `remaining_events` goes on from there."""
        self._events = self.events()
        first = b""
        async for event in self._events:
            first += event
            if self._last_carried_output:
                break
        return first or None

    async def remaining_events(self) -> AsyncIterator[bytes]:
        assert self._events is not None, "call first_event() first"
        async for event in self._events:
            yield event

    async def read_json(self) -> bytes:
        """The whole answer of a non-streamed request; anything but a JSON object is the upstream's failure."""
        body: bytes = await self._response.read()
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamError("The upstream LLM answered with something that is not a JSON object.")
        self.dialect.record_body(data, self.state)
        return body

    async def events(self) -> AsyncIterator[bytes]:
        """Yield each event framed for the caller, ending with the API's end of stream."""
        dialect, state, parser = self.dialect, self.state, SseParser(self._max_event_bytes)
        async for chunk in self._response.iter_bytes():
            for name, payload in parser.feed(chunk):
                framed = dialect.relay(name, payload, state)
                if framed is not None:
                    state.chunks += 1
                    self._last_carried_output = dialect.carries_output(name)
                    yield framed
                if state.finished:
                    return  # the API's end of stream: nothing after it is the caller's
        for name, payload in parser.end():
            framed = dialect.relay(name, payload, state)
            if framed is not None:
                self._last_carried_output = dialect.carries_output(name)
                yield framed
        if not state.finished:
            raise UpstreamDropped("the upstream closed the stream before its end")

    async def close(self) -> None:
        await self._manager.__aexit__(None, None, None)
