"""Image upload, readiness signal, deletion and signed serving (plus the seed's route names as aliases)."""

from __future__ import annotations

from typing import Any

from aiohttp import BodyPartReader, web

from ...errors import InvalidRequest, TooLarge, UnsupportedMedia
from ...images.uploads import UploadRequest
from ...resources import IMAGE_UPLOADS, IMAGE_URLS, SETTINGS
from ..base_url import public_base_url
from ..body import form_flag, malformed_form_is_invalid, read_fields
from ..errors import json_response

routes = web.RouteTableDef()

FIELD_LIMIT = 4096
# An upload has a file and a few short fields: a form with more parts (50,000 fields, a dozen files) is refused at
# the part past the limit, not read to its end.
MAX_PARTS = 16


@routes.post("/v1/images")
@routes.post("/upload_image_get_url")
async def upload_image(request: web.Request) -> web.Response:
    limit, base_url = request.app[SETTINGS].image_max_bytes, public_base_url(request)
    result = await request.app[IMAGE_UPLOADS].upload(_read_upload(request, limit), base_url)
    return json_response(result.to_json(), status=201)


@routes.post("/v1/images/ready")
@routes.post("/signal_image_ready")
async def images_ready(request: web.Request) -> web.Response:
    fields = await read_fields(request, 16 * 1024)
    session_id, pending = await request.app[IMAGE_UPLOADS].mark_ready(_session_id_from(fields),
                                                                       _token_from(request, fields))
    return json_response({"session_id": session_id, "pending": pending})


@routes.get("/v1/images/{image_id}")
@routes.get("/serve_image/{image_id}")
async def serve_image(request: web.Request) -> web.StreamResponse:
    image = request.app[IMAGE_URLS].open_signed(request.match_info["image_id"], request.query.get("expires"),
                                                request.query.get("sig"))
    return web.FileResponse(image.path, headers={
        "Content-Type": image.content_type,
        "Cache-Control": "private, max-age=300",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'",
    })


@routes.delete("/v1/images/{image_id}")
async def delete_image(request: web.Request) -> web.Response:
    image_id = request.match_info["image_id"]
    fields = await _read_delete_fields(request)
    remaining = await request.app[IMAGE_UPLOADS].delete(_session_id_from(fields), _token_from(request, fields),
                                                        image_id)
    return json_response({"image_id": image_id, "deleted": True, "images": remaining})


async def _read_delete_fields(request: web.Request) -> dict[str, Any]:
    """The session id from the query (as the page sends it) or from a small JSON or form body; never the token from
    the query, where it would end up in access logs."""
    fields = await read_fields(request, 16 * 1024) if request.body_exists else {}
    return {**fields, **{name: request.query[name] for name in ("session_id", "conversation_id")
                         if request.query.get(name)}}


async def _read_upload(request: web.Request, max_bytes: int) -> UploadRequest:
    with malformed_form_is_invalid():
        fields, data = await _read_form(request, max_bytes)
    return UploadRequest(data=data, session_id=_session_id_from(fields), token=_token_from(request, fields),
                         ready=form_flag(fields, "ready", default=True))


async def _read_form(request: web.Request, max_bytes: int) -> tuple[dict[str, str], bytes | None]:
    if request.content_type == "application/x-www-form-urlencoded":
        return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}, None
    if not request.content_type.startswith("multipart/"):
        raise UnsupportedMedia("Send the image as multipart/form-data with fields `file` and `session_id`.")
    fields: dict[str, str] = {}
    data: bytes | None = None
    reader = await request.multipart()
    parts = 0
    while (part := await reader.next()) is not None:
        parts += 1
        if parts > MAX_PARTS:
            raise InvalidRequest(f"Too many form parts (at most {MAX_PARTS}): send `file`, `session_id` and "
                                 "`ready`.", code="too_many_parts")
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "file":
            if data is not None:
                raise InvalidRequest("Send one `file` per upload.", param="file")
            data = await _read_part(part, max_bytes, "The image")
        elif part.name:
            fields[part.name] = (await _read_part(part, FIELD_LIMIT, f"The field `{part.name}`")).decode(
                "utf-8", "replace")
    return fields, data


async def _read_part(part: BodyPartReader, limit: int, what: str) -> bytes:
    buffer = bytearray()
    while chunk := await part.read_chunk(64 * 1024):
        buffer += chunk
        if len(buffer) > limit:
            raise TooLarge(f"{what} is too large (limit {limit:,} bytes).", param=part.name)
    return bytes(buffer)


def _session_id_from(fields: dict[str, Any]) -> object:
    return fields.get("session_id") or fields.get("conversation_id")


def _token_from(request: web.Request, fields: dict[str, Any]) -> str | None:
    for value in (request.headers.get("X-Upload-Token"), fields.get("upload_token"), fields.get("token")):
        if isinstance(value, str) and value:
            return value
    return None
