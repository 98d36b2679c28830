"""The two SSE dialects the proxy relays: Chat Completions and the Responses API.

A dialect says what one API's stream means: which event ends it, which events carry the first token,
what the relay passes on (and how it frames it for the caller), what it records (response model, token
usage), and how the proxy itself says "the stream broke" in that API's terms.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import orjson

DONE = b"[DONE]"


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @classmethod
    def of(cls, usage: dict[str, Any], prompt: str = "prompt_tokens", completion: str = "completion_tokens") -> Usage:
        """From an API's usage object (the Responses API names them input_tokens and output_tokens)."""
        return cls(int(usage.get(prompt) or 0), int(usage.get(completion) or 0))


@dataclass
class RelayState:
    """What the relay learned while streaming, for metrics and traces."""

    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: tuple[str, ...] = ()  # one per choice, as the upstream ended it
    usage: Usage | None = None
    chunks: int = 0
    finished: bool = False  # the API's own end of stream was seen


class SseDialect(ABC):
    #: what the caller gets after the last event
    closing: bytes = b""

    @abstractmethod
    def relay(self, name: bytes | None, payload: bytes, state: RelayState) -> bytes | None:
        """The event framed for the caller, or None to hold it back (the end marker, a chunk the caller
        did not ask for). Records the model, usage and end of stream on the way."""

    def carries_output(self, name: bytes | None) -> bool:
        """Whether the caller should be answered once this event is in (the first token, or an end)."""
        return True

    @abstractmethod
    def error_event(self, message: str, code: str, error_type: str, state: RelayState) -> bytes:
        """The proxy's own last event when the upstream broke off after the first token."""

    @abstractmethod
    def record_body(self, data: dict[str, Any], state: RelayState) -> None:
        """Model and usage of a non-streamed answer."""

    def answer_body(self, body: bytes, data: dict[str, Any]) -> bytes:
        """A non-streamed answer as the caller gets it (`data`: `body` parsed): unchanged, unless the dialect
        rewrites answers (`think.py`)."""
        return body


class ChatCompletionsSse(SseDialect):
    """`data: <chunk>` events ending with `data: [DONE]`; usage in a last chunk with no choices."""

    closing = b"data: [DONE]\n\n"

    def __init__(self, hide_usage_chunk: bool) -> None:
        self._hide_usage_chunk = hide_usage_chunk
        # The last chunk with choices: the one that ends them, once [DONE] comes. Parsed then, once, rather than
        # searching every chunk for a finish reason (its choices' earlier ends, when n > 1, go unrecorded).
        self._last_choices = b""

    def relay(self, name: bytes | None, payload: bytes, state: RelayState) -> bytes | None:
        if payload == DONE:
            state.finished = True
            self._record_finish(self._last_choices, state)
            return None
        if payload[0] != 0x7B or payload[-1] != 0x7D:  # `{`, `}` as literals (no lookup); never empty (parser)
            check_object(payload)
        if state.response_model is None and b'"model"' in payload:
            self._record_first(payload, state)
        if _may_carry_usage(payload) and self._record_usage(payload, state):
            # the usage-only chunk asked for on the caller's behalf is not theirs to see
            return None if self._hide_usage_chunk else frame_data(payload)
        self._last_choices = payload
        return frame_data(payload)

    @staticmethod
    def _record_first(payload: bytes, state: RelayState) -> None:
        """The response's model and id, from the first chunk that names them (every chunk repeats them)."""
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if isinstance(data, dict):
            model, response_id = data.get("model"), data.get("id")
            state.response_model = model if isinstance(model, str) else None
            state.response_id = response_id if isinstance(response_id, str) else None

    @staticmethod
    def _record_finish(payload: bytes, state: RelayState) -> None:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        state.finish_reasons = _finish_reasons(data)

    @staticmethod
    def _record_usage(payload: bytes, state: RelayState) -> bool:
        """Record the chunk's usage; True when it carries usage only (no choices)."""
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return False
        usage = data.get("usage") if isinstance(data, dict) else None
        if not isinstance(usage, dict):
            return False
        state.usage = Usage.of(usage)
        return not data.get("choices")

    def error_event(self, message: str, code: str, error_type: str, state: RelayState) -> bytes:
        body = {"error": {"message": message, "type": error_type, "code": code, "param": None}}
        return frame_data(orjson.dumps(body))

    def record_body(self, data: dict[str, Any], state: RelayState) -> None:
        usage = data.get("usage")
        if isinstance(usage, dict):
            state.usage = Usage.of(usage)
        model, response_id = data.get("model"), data.get("id")
        state.response_model = model if isinstance(model, str) else None
        state.response_id = response_id if isinstance(response_id, str) else None
        state.finish_reasons = _finish_reasons(data)


# The Responses API ends a stream with one of these; nothing follows them (no [DONE]).
RESPONSES_TERMINAL_EVENTS = frozenset({b"response.completed", b"response.failed", b"response.incomplete", b"error"})
# Lifecycle events that come before any output: the caller is answered only once output (or an end) arrives.
RESPONSES_PREAMBLE_EVENTS = frozenset({b"response.created", b"response.in_progress", b"response.queued"})


# A finished response's status as a GenAI finish reason (gen_ai.response.finish_reasons, in Chat Completions' words).
RESPONSES_FINISH_REASONS = {"completed": "stop", "incomplete": "incomplete", "failed": "error", "cancelled": "error"}


class ResponsesSse(SseDialect):
    """`event: <type>` + `data: <json>` events; the model in `response.created`, usage in `response.completed`."""

    def relay(self, name: bytes | None, payload: bytes, state: RelayState) -> bytes | None:
        if payload[0] != 0x7B or payload[-1] != 0x7D:  # `{`, `}` as literals (no lookup); never empty (parser)
            check_object(payload)
        if name in RESPONSES_TERMINAL_EVENTS:
            state.finished = True
            if name == b"response.completed":
                self._record_response(payload, state)
        elif state.response_model is None and name == b"response.created":
            self._record_response(payload, state)
        return b"event: " + name + b"\n" + frame_data(payload) if name else frame_data(payload)

    def carries_output(self, name: bytes | None) -> bool:
        return name not in RESPONSES_PREAMBLE_EVENTS

    def error_event(self, message: str, code: str, error_type: str, state: RelayState) -> bytes:
        # ResponseErrorEvent: type, code, message, param, sequence_number (the upstream numbers from 0)
        body = {"type": "error", "code": code, "message": message, "param": None, "sequence_number": state.chunks}
        return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"

    def record_body(self, data: dict[str, Any], state: RelayState) -> None:
        self._take_response(data, state)

    def _record_response(self, payload: bytes, state: RelayState) -> None:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        response = data.get("response") if isinstance(data, dict) else None
        if isinstance(response, dict):
            self._take_response(response, state)

    @staticmethod
    def _take_response(response: dict[str, Any], state: RelayState) -> None:
        model, response_id = response.get("model"), response.get("id")
        if isinstance(model, str):
            state.response_model = model
        if isinstance(response_id, str):
            state.response_id = response_id
        status = response.get("status")
        finish = RESPONSES_FINISH_REASONS.get(status) if isinstance(status, str) else None
        if finish == "incomplete":  # why: max_output_tokens or content_filter
            details = response.get("incomplete_details")
            reason = details.get("reason") if isinstance(details, dict) else None
            finish = reason if isinstance(reason, str) else finish
        if finish is not None:
            state.finish_reasons = (finish,)
        usage = response.get("usage")
        if isinstance(usage, dict):
            state.usage = Usage.of(usage, "input_tokens", "output_tokens")


class EventTooLarge(Exception):
    """One upstream event grew past the limit without ending."""


class NotAnObject(Exception):
    """An upstream `data:` event that is not a JSON object: no client of either API could read it."""


def check_object(payload: bytes) -> None:
    """Refuse an event that is plainly not a JSON object (an HTML error page, plain text, a cut-off chunk), by its
    first and last bytes besides whitespace (the dialects look at those two bytes first, and call this only when they
    are not braces): the relay parses no chunk it need not, so a well-framed object is passed on unread. An
    OpenAI client fails on such an event (the SDK parses every `data:`), so the stream ends there, as a broken one
    does: in-band error before `[DONE]`, or the next upstream while nothing reached the caller."""
    body = payload.strip()
    if not (body.startswith(b"{") and body.endswith(b"}")):
        raise NotAnObject(f"the upstream sent a data: event of {len(payload)} bytes that is not a JSON object")


class SseParser:
    """The SSE rules (WHATWG HTML, "Server-sent events", event stream interpretation), in linear time: lines end
    with LF or CRLF; `data:` lines of one event are joined with LF; a blank line ends the event; `:` lines are
    comments; one leading space after the colon is dropped. An event larger than `max_event_bytes` is an error."""

    def __init__(self, max_event_bytes: int) -> None:
        self._max = max_event_bytes
        self._partial = bytearray()  # a line not yet ended by LF
        self._name: bytes | None = None
        self._data: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[tuple[bytes | None, bytes]]:
        """The events `chunk` completes, as (event name, data)."""
        lines = chunk.split(b"\n")
        if len(lines) == 1:  # no line ends here: keep it (without copying what came before)
            self._partial += chunk
            self._check_size()
            return []
        if self._partial:
            self._partial += lines[0]
            lines[0] = bytes(self._partial)
            self._partial.clear()
        self._partial += lines.pop()  # the unended rest (empty when the chunk ended with LF)
        events: list[tuple[bytes | None, bytes]] = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
                if data:  # an event with an empty data buffer is not dispatched
                    events.append((self._name, data))
                self._name, self._data, self._size = None, [], 0
            elif line.startswith(b"data:"):
                self._data.append(line[6:] if line.startswith(b"data: ") else line[5:])
                self._size += len(line)
            elif line.startswith(b"event:"):
                self._name = line[6:].strip()
        self._check_size()
        return events

    def _check_size(self) -> None:
        if self._size + len(self._partial) > self._max:
            raise EventTooLarge(f"an upstream event passed {self._max} bytes without ending")

    def end(self) -> list[tuple[bytes | None, bytes]]:
        """At the end of the stream: an event whose blank line never came still counts."""
        return self.feed(b"\n\n") if (self._partial or self._data) else []


def frame_data(payload: bytes) -> bytes:
    """`data:` lines for a payload, one per line it holds, then the blank line that ends the event."""
    if b"\n" in payload:
        payload = payload.replace(b"\n", b"\ndata: ")
    return b"data: " + payload + b"\n\n"


def _may_carry_usage(payload: bytes) -> bool:
    """Cheap test before parsing: with include_usage, OpenAI sends `"usage":null` on every chunk."""
    return b'"usage"' in payload and b'"usage":null' not in payload and b'"usage": null' not in payload


def _finish_reasons(data: object) -> tuple[str, ...]:
    """The finish reasons of a Chat Completions chunk or answer, one per choice that has one."""
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list):
        return ()
    return tuple(reason for choice in choices if isinstance(choice, dict)
                 and isinstance(reason := choice.get("finish_reason"), str))
