"""Reasoning some models write into the answer itself, as `<think>…</think>` in `content`, taken out before
ElevenLabs speaks it.

Open-weights reasoning models (DeepSeek-R1 and its distills, QwQ, Qwen3, MiniMax-M2) put their reasoning between
these tags; a serving engine started without its reasoning parser (vLLM's `--reasoning-parser`, SGLang's, llama.cpp's
`--reasoning-format none`, Groq's `reasoning_format: raw`) leaves it in `content` (vLLM, "Reasoning Outputs";
SGLang, "Reasoning Parser"). Only a turn whose model matches GLIMPSE_STRIP_THINK_MODELS gets `ThinkStrippingChatSse`
(or `ThinkStrippingResponsesSse`); every other turn keeps the plain dialect and pays nothing.

Only a block that opens with `<think>` is taken out: a stream that starts thinking without the opening tag (the
first DeepSeek-R1 release, a chat template that puts `<think>` in the prompt) cannot be told from an answer until
`</think>` comes, and holding every answer back for it would silence the turn; such models need the engine's parser.
"""

from __future__ import annotations

import fnmatch
import functools
from typing import Any

import orjson

from .sse import DONE, ChatCompletionsSse, RelayState, ResponsesSse

OPEN, CLOSE = "<think>", "</think>"


@functools.lru_cache(maxsize=256)
def strips_think(model: str, patterns: tuple[str, ...]) -> bool:
    """Whether `model` (any case) matches one of the (lower-case, shell-style) patterns; once per model name."""
    name = model.lower()
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


class ThinkFilter:
    """One choice's content without its think blocks, as it streams. A tag may be split across chunks: a tail that
    could begin one is held until the next chunk (or the choice's end) says; the whitespace a model puts after
    `</think>` is dropped with it."""

    def __init__(self) -> None:
        self._inside = False
        self._held = ""
        self._trim = False  # after `</think>`: leading whitespace of the answer is not the caller's

    @property
    def busy(self) -> bool:
        """Whether the next chunk must pass through the filter even if it holds no `<`."""
        return self._inside or self._trim or bool(self._held)

    def feed(self, text: str) -> str:
        buffer, self._held = self._held + text, ""
        visible: list[str] = []
        while buffer:
            if self._inside:
                end = buffer.find(CLOSE)
                if end < 0:
                    self._held = buffer[len(buffer) - _partial(buffer, CLOSE):]
                    break
                buffer, self._inside, self._trim = buffer[end + len(CLOSE):], False, True
                continue
            start = buffer.find(OPEN)
            if start < 0:
                keep = _partial(buffer, OPEN)
                shown, self._held, buffer = buffer[:len(buffer) - keep], buffer[len(buffer) - keep:], ""
            else:
                shown, buffer, self._inside = buffer[:start], buffer[start + len(OPEN):], True
            if self._trim:
                shown = shown.lstrip()
                self._trim = not shown
            visible.append(shown)
        return "".join(visible)

    def end(self) -> str:
        """The held tail at the choice's end: text, unless it is inside a block that never closed."""
        held, self._held, self._trim = self._held, "", False
        return "" if self._inside else held


def _partial(text: str, tag: str) -> int:
    """The length of the longest end of `text` that is a beginning of `tag` (shorter than the tag)."""
    for length in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:length]):
            return length
    return 0


class ThinkStrippingChatSse(ChatCompletionsSse):
    """Chat Completions, each choice's `delta.content` without its think blocks. A chunk is parsed only when it may
    hold a tag (`<`, or `\\u003c` from a server that escapes it) or a choice is inside one."""

    def __init__(self, hide_usage_chunk: bool) -> None:
        super().__init__(hide_usage_chunk)
        self._filters: dict[int, ThinkFilter] = {}

    def relay(self, name: bytes | None, payload: bytes, state: RelayState) -> bytes | None:
        if payload != DONE and (b"<" in payload or b"\\u003" in payload
                                or any(f.busy for f in self._filters.values())):
            payload = self._strip(payload)
        return super().relay(name, payload, state)

    def _strip(self, payload: bytes) -> bytes:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return payload  # not a chunk: the dialect refuses it
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list):
            return payload
        changed = False
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            index = choice.get("index")
            index = index if isinstance(index, int) else 0
            shown = None
            if isinstance(content, str) and content:
                shown = self._filters.setdefault(index, ThinkFilter()).feed(content)
            if choice.get("finish_reason") is not None and (ending := self._filters.pop(index, None)):
                shown = (shown or "") + ending.end()
            if shown is not None and shown != content:
                choice["delta"] = {**(delta if isinstance(delta, dict) else {}), "content": shown}
                changed = True
        return orjson.dumps(data) if changed else payload

    def answer_body(self, body: bytes, data: dict[str, Any]) -> bytes:
        """A non-streamed answer: each choice's `message.content` without its think blocks."""
        changed = False
        for choice in data.get("choices") or ():
            message = choice.get("message") if isinstance(choice, dict) else None
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(message, dict) and isinstance(content, str) and OPEN in content:
                message["content"] = strip_all(content)
                changed = True
        return orjson.dumps(data) if changed else body


def strip_all(text: str) -> str:
    """A whole text without its think blocks."""
    think = ThinkFilter()
    return think.feed(text) + think.end()


# Responses API events that repeat a finished text whole: each carries `<think>` only if its deltas did.
WHOLE_TEXT_EVENTS = frozenset({b"response.output_text.done", b"response.content_part.done",
                               b"response.output_item.done", b"response.completed"})


class ThinkStrippingResponsesSse(ResponsesSse):
    """The Responses API, each output text's deltas (per item and content part) without their think blocks, and
    the events that repeat the finished text likewise. A tail held back as a possible tag when its text ends (an
    answer ending in `<`) is not sent as a delta of its own: the finished text keeps it."""

    def __init__(self) -> None:
        super().__init__()
        self._filters: dict[tuple[object, object], ThinkFilter] = {}

    def relay(self, name: bytes | None, payload: bytes, state: RelayState) -> bytes | None:
        if name == b"response.output_text.delta":
            if b"<" in payload or b"\\u003" in payload or any(f.busy for f in self._filters.values()):
                payload = self._strip_delta(payload)
        elif name in WHOLE_TEXT_EVENTS and (b"<" in payload or b"\\u003" in payload):
            payload = self._strip_whole(name, payload)
        return super().relay(name, payload, state)

    def _strip_delta(self, payload: bytes) -> bytes:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return payload
        delta = data.get("delta") if isinstance(data, dict) else None
        if not isinstance(delta, str):
            return payload
        key = (data.get("item_id"), data.get("content_index"))
        shown = self._filters.setdefault(key, ThinkFilter()).feed(delta)
        if shown == delta:
            return payload
        data["delta"] = shown
        return orjson.dumps(data)

    def _strip_whole(self, name: bytes, payload: bytes) -> bytes:
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return payload
        if not isinstance(data, dict):
            return payload
        if name == b"response.output_text.done":
            changed = _strip_field(data, "text")
            self._filters.pop((data.get("item_id"), data.get("content_index")), None)
        elif name == b"response.content_part.done":
            changed = _strip_field(data.get("part"), "text")
        elif name == b"response.output_item.done":
            changed = _strip_item(data.get("item"))
        else:
            changed = _strip_output(data.get("response"))
        return orjson.dumps(data) if changed else payload

    def answer_body(self, body: bytes, data: dict[str, Any]) -> bytes:
        """A non-streamed response: each output text without its think blocks."""
        return orjson.dumps(data) if _strip_output(data) else body


def _strip_field(holder: object, field: str) -> bool:
    text = holder.get(field) if isinstance(holder, dict) else None
    if not isinstance(holder, dict) or not isinstance(text, str) or OPEN not in text:
        return False
    holder[field] = strip_all(text)
    return True


def _strip_item(item: object) -> bool:
    """A message item's output texts."""
    content = item.get("content") if isinstance(item, dict) else None
    return any([_strip_field(part, "text") for part in content]) if isinstance(content, list) else False


def _strip_output(response: object) -> bool:
    """Every message item's output texts in a response object."""
    output = response.get("output") if isinstance(response, dict) else None
    return any([_strip_item(item) for item in output]) if isinstance(output, list) else False
