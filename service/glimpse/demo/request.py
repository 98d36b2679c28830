"""What the demo model reads from a request, in either API: the question (the last user message's text), the
pictures (every image part, in order) and a rough size of the prompt."""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Any

IMAGE_PART_TYPES = ("image_url", "input_image")
TEXT_PART_TYPES = ("text", "input_text")


@dataclass(frozen=True)
class Asked:
    question: str
    images: tuple[str, ...]  # each image part's URL (a data: URL when the proxy inlined it)
    words: int  # words of text in the request: the demo model's "prompt tokens"


def read_chat(body: dict[str, Any]) -> Asked:
    """A Chat Completions request's `messages`."""
    messages = body.get("messages")
    return _read(messages if isinstance(messages, list) else [])


def read_response(body: dict[str, Any]) -> Asked:
    """A Responses API request's `input` (a string is one user message)."""
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    return _read(items if isinstance(items, list) else [])


def _read(messages: list[Any]) -> Asked:
    question, images, words = "", [], 0
    for message in messages:
        if not isinstance(message, dict):
            continue
        texts = []
        content = message.get("content")
        for part in [{"type": "text", "text": content}] if isinstance(content, str) else content or []:
            if not isinstance(part, dict):
                continue
            if part.get("type") in TEXT_PART_TYPES and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif part.get("type") in IMAGE_PART_TYPES:
                images.append(_image_url(part))
        words += sum(len(text.split()) for text in texts)
        if message.get("role") == "user":
            question = " ".join(texts)
    return Asked(question, tuple(images), words)


def _image_url(part: dict[str, Any]) -> str:
    url = part.get("image_url")
    if isinstance(url, dict):  # Chat Completions: {"url": …, "detail": …}; the Responses API: the URL itself
        url = url.get("url")
    return url if isinstance(url, str) else ""


def data_url_bytes(url: str, max_bytes: int) -> bytes | None:
    """The bytes of a base64 `data:` URL, or None: another kind of URL (the demo model fetches nothing), malformed,
    or more than `max_bytes` (judged from its length, before decoding)."""
    header, comma, encoded = url.partition(",")
    if not (comma and header.startswith("data:") and header.endswith(";base64")):
        return None
    if len(encoded) // 4 * 3 > max_bytes + 2:
        return None
    try:
        return binascii.a2b_base64(encoded, strict_mode=True)
    except binascii.Error:
        return None
