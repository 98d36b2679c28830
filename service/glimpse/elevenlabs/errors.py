"""Reading an ElevenLabs error body: one rule for the proxy and the operator alike.

ElevenLabs answers errors as `{"detail": {"status": …, "message": …}}`, `{"detail": "…"}`, or (validation
errors) `{"detail": [{"loc": …, "msg": …}, …]}`; anything else is shown as its first characters.
"""

from __future__ import annotations

import json

MAX_DETAIL_CHARS = 200


def error_detail(body: str) -> str:
    """A short, human-readable reason from an ElevenLabs error response body."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body[:MAX_DETAIL_CHARS]
    detail = parsed.get("detail") if isinstance(parsed, dict) else None
    if detail is None:
        return body[:MAX_DETAIL_CHARS]
    if isinstance(detail, dict):
        detail = detail.get("message") or detail.get("status") or detail
    return str(detail)[:MAX_DETAIL_CHARS]
