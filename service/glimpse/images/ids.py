"""Image ids: a fresh uuid and the extension of the normalised format, so a URL says nothing else."""

from __future__ import annotations

import re
import uuid

CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png"}
_IMAGE_ID = re.compile(r"[0-9a-f]{32}\.(jpg|png)")


def new_image_id(extension: str) -> str:
    return f"{uuid.uuid4().hex}.{extension}"


def content_type_of(image_id: str) -> str | None:
    """The content type an image id stands for; None when it is not an id this proxy makes."""
    match = _IMAGE_ID.fullmatch(image_id)
    return CONTENT_TYPES[match.group(1)] if match else None
