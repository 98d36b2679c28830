"""The proxy's own URL as callers reach it, for links it hands out (signed image URLs)."""

from __future__ import annotations

import re

from aiohttp import web

from ..errors import InvalidRequest
from ..resources import SETTINGS

# A DNS name or IPv4 address, or a bracketed IPv6 address, with an optional port (RFC 9110 §7.2, RFC 3986 §3.2.2).
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                   r"[A-Za-z0-9])?)*\.?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


def public_base_url(request: web.Request) -> str:
    """GLIMPSE_PUBLIC_BASE_URL when set (behind an ingress), else the scheme and host of this request; a Host
    header that is no host is refused before anything is done with the request."""
    configured = request.app[SETTINGS].public_base_url
    if configured:
        return configured
    host = request.host
    if not _HOST.fullmatch(host):
        raise InvalidRequest("The Host header is not a host name.", param="Host")
    return f"{request.scheme}://{host}"
