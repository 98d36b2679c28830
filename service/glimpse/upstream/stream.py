"""One open upstream response: its SSE events relayed as they arrive, or its JSON body.

The proxy relays the upstream's SSE payloads event by event instead of re-serialising parsed chunks: each
goes out as soon as it arrives, unchanged, in order, framed in its API's dialect (`sse.py`). On the way
the stream notes the response's model and token usage for metrics and traces.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import orjson

from ..errors import UpstreamError, UpstreamTimedOut
from ..observability.tracing import exception_type
from .http import finish
from .sse import RelayState, SseDialect, SseParser


class UpstreamDropped(Exception):
    """The upstream ended the stream without its API's end of stream."""


class UpstreamStream:
    """One upstream response that is open: relay its events, or read its JSON body, then close it."""

    def __init__(self, response: aiohttp.ClientResponse, dialect: SseDialect, max_event_bytes: int) -> None:
        self._max_event_bytes = max_event_bytes
        self._response = response
        self.dialect = dialect
        self.state = RelayState()
        self._events: AsyncIterator[bytes] | None = None
        self._output_started = False
        self._body_read = False  # a non-streamed answer was read whole

    async def first_event(self) -> bytes | None:
        """The caller's first bytes: the events up to and including the first that carries output (None when
        the stream held none); `remaining_events` goes on from there."""
        self._events = self.events()
        first = b""
        async for events in self._events:
            first += events
            if self._output_started:
                break
        return first or None

    def remaining_events(self) -> AsyncIterator[bytes]:
        """The same iterator `first_event` started (no wrapper: each layer would cost every chunk a step)."""
        assert self._events is not None, "call first_event() first"
        return self._events

    async def read_json(self) -> bytes:
        """The whole answer of a non-streamed request; anything but a JSON object is the upstream's failure."""
        try:
            body: bytes = await self._response.read()
        except TimeoutError:
            raise UpstreamTimedOut("The upstream LLM stopped sending its answer.") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError("The upstream LLM's answer broke off.", error_type=exception_type(exc)) from None
        self._body_read = True
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamError("The upstream LLM answered with something that is not a JSON object.")
        self.dialect.record_body(data, self.state)
        return self.dialect.answer_body(body, data)

    async def events(self) -> AsyncIterator[bytes]:
        """Yield the events each upstream read completes, framed for the caller and joined (one write for what
        arrived together), ending with the API's end of stream."""
        parser = SseParser(self._max_event_bytes)
        chunks = self._response.content.iter_any()
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except TimeoutError:  # aiohttp's read timeout: GLIMPSE_UPSTREAM_READ_TIMEOUT without a byte
                raise UpstreamTimedOut("The upstream LLM stopped sending.") from None
            framed = self._relay(parser.feed(chunk))
            if framed:
                yield framed
            if self.state.finished:
                return  # the API's end of stream: nothing after it is the caller's
        framed = self._relay(parser.end())
        if framed:
            yield framed
        if not self.state.finished:
            raise UpstreamDropped("the upstream closed the stream before its end")

    def _relay(self, events: list[tuple[bytes | None, bytes]]) -> bytes:
        dialect, state = self.dialect, self.state
        out = b""
        for name, payload in events:
            framed = dialect.relay(name, payload, state)
            if framed is not None:
                state.chunks += 1
                self._output_started = self._output_started or dialect.carries_output(name)
                out = framed if not out else out + framed
            if state.finished:
                break
        return out

    async def close(self) -> None:
        """Release the response: its connection goes back to the pool when the answer ended as its API ends."""
        await finish(self._response, ended=self.state.finished or self._body_read)
