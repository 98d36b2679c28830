"""Reading request bodies within a limit; anything malformed is an InvalidRequest, never a 500."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from ..config import BOOLEAN
from ..errors import InvalidRequest, RequestTimedOut, TooLarge
from ..limits.bodies import BodyBudget


async def read_limited(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"Request body too large (limit {limit} bytes).")
    raw = bytearray()
    async for chunk in request.content.iter_chunked(256 * 1024):
        raw += chunk
        if len(raw) > limit:
            raise TooLarge(f"Request body too large (limit {limit} bytes).")
    return bytes(raw)


async def read_json_object_within(request: web.Request, limit: int, *, bodies: BodyBudget,
                                  deadline_seconds: float) -> dict[str, Any]:
    """`read_json_object`, holding its Content-Length (or `limit`, when it sends none) of `bodies` until the body is
    read and parsed (503 `request_bodies_busy` when that much is not free), the whole body within
    `deadline_seconds` (408 `request_body_timeout`)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise TooLarge(f"Request body too large (limit {limit} bytes).")
    with bodies.reserve(limit if declared is None else declared, upload=False):
        try:
            async with asyncio.timeout(deadline_seconds):
                raw = await read_limited(request, limit)
        except TimeoutError:
            raise RequestTimedOut(f"The request body did not arrive within {deadline_seconds:g} seconds.",
                                  code="request_body_timeout") from None
        return _json_object(raw)


async def read_json_object(request: web.Request, limit: int) -> dict[str, Any]:
    return _json_object(await read_limited(request, limit))


def _json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise InvalidRequest("The request body is empty; send a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON ({exc.msg} at position {exc.pos}).") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


async def read_fields(request: web.Request, limit: int) -> dict[str, Any]:
    """A small form or JSON object, whichever the client sent. A form must say its length (browsers do): aiohttp
    would read one up to the app's client_max_size, an upload's, before the route checks a thing."""
    if request.content_type.startswith(("multipart/", "application/x-www-form-urlencoded")):
        if request.content_length is None or request.content_length > limit:
            raise TooLarge(f"Send at most {limit} bytes of form, with a Content-Length.")
        with malformed_form_is_invalid():
            return dict(await request.post())
    return await read_json_object(request, limit)


def form_flag(fields: dict[str, Any], name: str, default: bool) -> bool:
    value = fields.get(name)
    if value is None:
        return default
    try:
        return BOOLEAN.validate_python(value.strip() if isinstance(value, str) else value)
    except ValidationError:
        raise InvalidRequest(f"`{name}` must be true or false.", param=name) from None


@contextlib.contextmanager
def malformed_form_is_invalid() -> Iterator[None]:
    """aiohttp reports a malformed multipart or urlencoded body as ValueError, AssertionError or RuntimeError."""
    try:
        yield
    except (ValueError, AssertionError, RuntimeError) as exc:
        raise InvalidRequest(f"The form body is malformed ({exc}).") from None
