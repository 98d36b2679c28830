"""The demo model's answer in OpenAI's wire shapes: Chat Completions (chunks, or one completion) and the Responses
API (events, or one response), as OpenAI's API reference defines them. Streamed word by word: each word is one
delta, and the usage counts words, since the demo model has no tokenizer."""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

from ..config import DEMO_MODEL

WORD = re.compile(r"\S+\s*")


def words(text: str) -> list[str]:
    """`text` in pieces that join back to it: each word with the spaces after it."""
    return WORD.findall(text)


def chat_chunks(text: str, prompt_words: int, include_usage: bool) -> Iterator[dict[str, Any]]:
    """The `chat.completion.chunk`s of a streamed answer: the role, a delta per word, the finish reason, then
    (when asked for with `stream_options.include_usage`) the usage in a chunk without choices."""
    base: dict[str, Any] = {"id": _id("chatcmpl-"), "object": "chat.completion.chunk", "created": int(time.time()),
                            "model": DEMO_MODEL}
    if include_usage:
        base["usage"] = None  # as OpenAI does: null on every chunk, the numbers on the last

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    pieces = words(text)
    for piece in pieces:
        yield chunk({"content": piece})
    yield chunk({}, "stop")
    if include_usage:
        yield {**base, "choices": [], "usage": _chat_usage(prompt_words, len(pieces))}


def chat_completion(text: str, prompt_words: int) -> dict[str, Any]:
    """A non-streamed `chat.completion`."""
    return {"id": _id("chatcmpl-"), "object": "chat.completion", "created": int(time.time()), "model": DEMO_MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": _chat_usage(prompt_words, len(words(text)))}


def response_events(text: str, prompt_words: int, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The events of a streamed Responses API answer, numbered from 0: created, in progress, the message item and
    its text part added, a delta per word, everything done, then `response.completed` with the whole response."""
    sequence = itertools.count()
    response_id, message_id = _id("resp_"), _id("msg_")
    created = int(time.time())
    pieces = words(text)

    def event(kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "sequence_number": next(sequence), **fields}

    def text_event(kind: str, **fields: Any) -> dict[str, Any]:
        return event(kind, item_id=message_id, output_index=0, content_index=0, **fields)

    started = _response(response_id, created, "in_progress", [], None, request)
    yield event("response.created", response=started)
    yield event("response.in_progress", response=started)
    item: dict[str, Any] = {"id": message_id, "type": "message", "status": "in_progress", "role": "assistant",
                            "content": []}
    yield event("response.output_item.added", output_index=0, item=item)
    yield text_event("response.content_part.added", part=_text_part(""))
    for piece in pieces:
        yield text_event("response.output_text.delta", delta=piece, logprobs=[])
    yield text_event("response.output_text.done", text=text, logprobs=[])
    yield text_event("response.content_part.done", part=_text_part(text))
    item = _message(message_id, text)
    yield event("response.output_item.done", output_index=0, item=item)
    yield event("response.completed", response=_response(response_id, created, "completed", [item],
                                                           _response_usage(prompt_words, len(pieces)), request))


def response(text: str, prompt_words: int, request: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed Responses API answer: the response object `response.completed` carries."""
    return _response(_id("resp_"), int(time.time()), "completed", [_message(_id("msg_"), text)],
                     _response_usage(prompt_words, len(words(text))), request)


def models() -> dict[str, Any]:
    """GET /v1/models: the one model."""
    return {"object": "list", "data": [{"id": DEMO_MODEL, "object": "model", "created": 0, "owned_by": "glimpse"}]}


def error(message: str, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error body."""
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


def _message(message_id: str, text: str) -> dict[str, Any]:
    return {"id": message_id, "type": "message", "status": "completed", "role": "assistant",
            "content": [_text_part(text)]}


def _response(response_id: str, created: int, status: str, output: list[dict[str, Any]],
              usage: dict[str, Any] | None, request: dict[str, Any]) -> dict[str, Any]:
    return {"id": response_id, "object": "response", "created_at": created, "status": status, "model": DEMO_MODEL,
            "output": output, "usage": usage, "error": None, "incomplete_details": None,
            "instructions": request.get("instructions"), "metadata": {}, "temperature": None, "top_p": None,
            "parallel_tool_calls": False, "tool_choice": "none", "tools": []}


def _chat_usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _response_usage(prompt: int, completion: int) -> dict[str, Any]:
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion}


def _id(prefix: str) -> str:
    return prefix + "demo" + secrets.token_hex(12)
