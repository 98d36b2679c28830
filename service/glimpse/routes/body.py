"""Reading request bodies within a limit, with OpenAI-style errors for anything malformed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from ..errors import ApiError


async def read_limited(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"Request body too large (limit {limit} bytes).")
    raw = bytearray()
    async for chunk in request.content.iter_chunked(256 * 1024):
        raw += chunk
        if len(raw) > limit:
            raise ApiError(413, f"Request body too large (limit {limit} bytes).")
    return bytes(raw)


async def read_json_object(request: web.Request, limit: int) -> dict[str, Any]:
    raw = await read_limited(request, limit)
    if not raw.strip():
        raise ApiError(400, "The request body is empty; send a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"The request body is not valid JSON ({exc.msg} at position {exc.pos}).") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body


@contextlib.contextmanager
def malformed_form_is_400() -> Iterator[None]:
    """aiohttp reports a malformed multipart or urlencoded body as ValueError, AssertionError or RuntimeError."""
    try:
        yield
    except (ValueError, AssertionError, RuntimeError) as exc:
        raise ApiError(400, f"The form body is malformed ({exc}).") from None
