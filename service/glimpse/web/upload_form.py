"""An upload's multipart body, read in two steps so that the upload is checked before its file is read.

`head()` reads the fields before the file part and stops at that part's headers: the session id and the token (the
token in X-Upload-Token, as the page sends it, or a field before the file) are then checked, the conversation's
picture cap and quotas too, and the body's bytes reserved (`images/uploads.py`), while the file is still unread, in
the socket. `body()` reads the file and any fields after it. A file before the session id is refused with a 400:
reading it first is what let an unauthenticated caller hold megabytes.

Every read happens before the upload's deadline (GLIMPSE_UPLOAD_DEADLINE_SECONDS, from the handler's start),
besides the connection's idle timeout between bytes: a body trickled a byte at a time is cut there with a 408.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web

from ..errors import InvalidRequest, RequestTimedOut, TooLarge, UnsupportedMedia
from ..images.uploads import UploadBody, UploadHead
from ..sizing import upload_body_bytes
from .body import form_flag, malformed_form_is_invalid

FIELD_LIMIT = 4096
# An upload has a file and a few short fields: a form with more parts (50,000 fields, a dozen files) is refused at
# the part past the limit, not read to its end.
MAX_PARTS = 16
CHUNK_BYTES = 64 * 1024
# aiohttp's part reader waits for a boundary's length of data past each read: a field read in small reads leaves the
# file's first bytes waiting in the stream, instead of waiting for more of them.
FIELD_CHUNK_BYTES = 1024
SESSION_FIELDS = ("session_id", "conversation_id")


class MultipartUpload:
    """`max_bytes`: the largest file; `deadline_seconds`: for the whole body, from now."""

    def __init__(self, request: web.Request, *, max_bytes: int, deadline_seconds: float) -> None:
        self._request = request
        self._max_bytes = max_bytes
        self._deadline = asyncio.get_running_loop().time() + deadline_seconds
        self._deadline_seconds = deadline_seconds
        self._fields: dict[str, str] = {}
        self._reader: MultipartReader | None = None
        self._file: BodyPartReader | None = None
        self._parts = 0

    async def head(self) -> UploadHead:
        """The fields before the file part, which is left unread."""
        request = self._request
        if request.content_type == "application/x-www-form-urlencoded":  # no file in it: nothing to read
            raise InvalidRequest("The multipart field `file` is required: send the image as multipart/form-data.",
                                 param="file")
        if not request.content_type.startswith("multipart/"):
            raise UnsupportedMedia("Send the image as multipart/form-data with fields `session_id` and `file`.")
        most = upload_body_bytes(self._max_bytes)
        declared = request.content_length
        if declared is not None and declared > most:
            raise TooLarge(f"The upload is too large (limit {self._max_bytes:,} bytes for the image).", param="file")
        async with self._reading():
            self._reader = await request.multipart()
            self._file = await self._read_fields_until_file()
        session_id = self._session_id()
        if self._file is not None and session_id is None:  # it may come after the file: too late to check it
            raise InvalidRequest("The form's `file` came before `session_id`: send `session_id` (and the token, "
                                 "unless in the X-Upload-Token header) before `file`, as the page does.",
                                 code="file_before_session", param="session_id")
        return UploadHead(session_id=session_id, token=_token(request, self._fields),
                          body_bytes=declared if declared is not None else most)

    async def body(self) -> UploadBody:
        """The file, and the fields after it."""
        if self._file is None:
            return UploadBody(data=None, ready=form_flag(self._fields, "ready", default=True))
        async with self._reading():
            data = await _read_part(self._file, self._max_bytes, "The image")
            if await self._read_fields_until_file() is not None:
                raise InvalidRequest("Send one `file` per upload.", param="file")
        return UploadBody(data=data, ready=form_flag(self._fields, "ready", default=True))

    async def _read_fields_until_file(self) -> BodyPartReader | None:
        assert self._reader is not None
        while (part := await self._reader.next()) is not None:
            self._parts += 1
            if self._parts > MAX_PARTS:
                raise InvalidRequest(f"Too many form parts (at most {MAX_PARTS}): send `session_id`, `file` and "
                                     "`ready`.", code="too_many_parts")
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                return part
            if part.name:
                self._fields[part.name] = (await _read_part(part, FIELD_LIMIT, f"The field `{part.name}`",
                                                           FIELD_CHUNK_BYTES)).decode(
                    "utf-8", "replace")
        return None

    def _session_id(self) -> str | None:
        for name in SESSION_FIELDS:
            if value := self._fields.get(name) or self._request.query.get(name):
                return value
        return None

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[None]:
        try:
            with malformed_form_is_invalid():
                async with asyncio.timeout_at(self._deadline):
                    yield
        except TimeoutError:
            raise RequestTimedOut(f"The upload did not arrive within {self._deadline_seconds:g} seconds.",
                                  code="upload_timeout") from None


async def _read_part(part: BodyPartReader, limit: int, what: str, chunk_bytes: int = CHUNK_BYTES) -> bytes:
    buffer = bytearray()
    while chunk := await part.read_chunk(chunk_bytes):
        buffer += chunk
        if len(buffer) > limit:
            raise TooLarge(f"{what} is too large (limit {limit:,} bytes).", param=part.name)
    return bytes(buffer)


def _token(request: web.Request, fields: dict[str, Any]) -> str | None:
    for value in (request.headers.get("X-Upload-Token"), fields.get("upload_token"), fields.get("token")):
        if isinstance(value, str) and value:
            return value
    return None
