"""Image upload, readiness signal, deletion and signed serving (plus the seed's route names as aliases)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...resources import IMAGE_UPLOADS, IMAGE_URLS, SETTINGS
from ..base_url import public_base_url
from ..body import read_fields
from ..errors import json_response
from ..upload_form import MultipartUpload

routes = web.RouteTableDef()


@routes.post("/v1/images")
@routes.post("/upload_image_get_url")
async def upload_image(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    form = MultipartUpload(request, max_bytes=settings.image_max_bytes, deadline_seconds=settings.upload_deadline)
    result = await request.app[IMAGE_UPLOADS].upload(form, public_base_url(request))
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


def _session_id_from(fields: dict[str, Any]) -> object:
    return fields.get("session_id") or fields.get("conversation_id")


def _token_from(request: web.Request, fields: dict[str, Any]) -> str | None:
    for value in (request.headers.get("X-Upload-Token"), fields.get("upload_token"), fields.get("token")):
        if isinstance(value, str) and value:
            return value
    return None
