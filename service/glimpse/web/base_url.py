"""The proxy's own URL as callers reach it, for links it hands out (signed image URLs)."""

from __future__ import annotations

from aiohttp import web

from ..resources import SETTINGS


def public_base_url(request: web.Request) -> str:
    """GLIMPSE_PUBLIC_BASE_URL when set (behind an ingress), else the scheme and host of this request."""
    return request.app[SETTINGS].public_base_url or f"{request.scheme}://{request.host}"
