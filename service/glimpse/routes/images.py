"""Image upload, readiness signal and signed serving (plus the seed's route names as aliases)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import BodyPartReader, web

from ..errors import ApiError, json_response
from ..services import SERVICES
from ..uploads import ImageUploads, require_session_id
from .body import malformed_form_is_400, read_json_object

routes = web.RouteTableDef()

IMAGE_ID = re.compile(r"^[0-9a-f]{32}\.(jpg|png)$")
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png"}
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def _token_from(request: web.Request, fields: dict[str, Any]) -> str | None:
    for value in (request.headers.get("X-Upload-Token"), fields.get("upload_token"), fields.get("token")):
        if isinstance(value, str) and value:
            return value
    return None


@routes.post("/v1/images")
@routes.post("/upload_image_get_url")
async def upload_image(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    try:
        fields, raw = await _read_upload(request, services.settings.image_max_bytes)
    except ApiError:
        services.metrics.images_uploaded.labels("rejected").inc()
        raise
    try:
        if raw is None:
            raise ApiError(400, "The multipart field `file` is required.", param="file")
        session_id = require_session_id(fields.get("session_id") or fields.get("conversation_id"))
        ready = str(fields.get("ready", "true")).strip().lower() not in FALSE_WORDS
        result = await ImageUploads(services).upload(session_id, _token_from(request, fields), raw, ready=ready,
                                                     public_base_url=services.public_base_url(request))
    except ApiError as exc:
        services.metrics.images_uploaded.labels("failed" if exc.status >= 500 else "rejected").inc()
        raise
    services.metrics.images_uploaded.labels("stored").inc()
    return json_response(result.to_json(), status=201)


async def _read_upload(request: web.Request, max_bytes: int) -> tuple[dict[str, str], bytes | None]:
    with malformed_form_is_400():
        return await _parse_upload(request, max_bytes)


async def _parse_upload(request: web.Request, max_bytes: int) -> tuple[dict[str, str], bytes | None]:
    if request.content_type == "application/x-www-form-urlencoded":
        return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}, None
    if not request.content_type.startswith("multipart/"):
        raise ApiError(415, "Send the image as multipart/form-data with fields `file` and `session_id`.")
    fields: dict[str, str] = {}
    data: bytes | None = None
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "file":
            data = await _read_part(part, max_bytes)
        elif part.name:
            fields[part.name] = (await _read_part(part, 4096)).decode("utf-8", "replace")
    return fields, data


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    buffer = bytearray()
    while chunk := await part.read_chunk(64 * 1024):
        buffer += chunk
        if len(buffer) > limit:
            raise ApiError(413, f"The image is too large (limit {limit:,} bytes).", param=part.name)
    return bytes(buffer)


@routes.post("/v1/images/ready")
@routes.post("/signal_image_ready")
async def images_ready(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    if request.content_type.startswith(("multipart/", "application/x-www-form-urlencoded")):
        with malformed_form_is_400():
            fields: dict[str, Any] = dict(await request.post())
    else:
        fields = await read_json_object(request, 16 * 1024)
    session_id = require_session_id(fields.get("session_id") or fields.get("conversation_id"))
    pending = await ImageUploads(services).mark_ready(session_id, _token_from(request, fields))
    return json_response({"session_id": session_id, "pending": pending})


@routes.get("/v1/images/{image_id}")
@routes.get("/serve_image/{image_id}")
async def serve_image(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    image_id = request.match_info["image_id"]
    match = IMAGE_ID.match(image_id)
    if match is None or services.storage.serves_urls:
        raise ApiError(404, "No such image.")
    if not services.signer.image_signature_valid(image_id, request.query.get("expires"), request.query.get("sig")):
        raise ApiError(403, "This image link is not valid or has expired.", code="invalid_signature")
    file_path = services.storage.local_path(services.storage.key_for("", image_id))
    if file_path is None:
        raise ApiError(404, "No such image (it may have expired).")
    return web.FileResponse(file_path, headers={
        "Content-Type": CONTENT_TYPES[match.group(1)],
        "Cache-Control": "private, max-age=300",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'",
    })
