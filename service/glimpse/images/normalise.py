"""Image validation and normalisation, by content (Pillow), never by file name or client content type.

An accepted image is decoded, EXIF-rotated, bounded to a maximum edge and re-encoded from pixels
only, so no metadata (EXIF GPS, comments, ICC-embedded payloads) survives. Photos become JPEG,
images with transparency PNG.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InvalidRequest, UnsupportedMedia
from .ids import CONTENT_TYPES

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "MPO"})


@dataclass(frozen=True)
class NormalisedImage:
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int


def normalise_image(raw: bytes, *, max_pixels: int, max_edge: int) -> NormalisedImage:
    """Validate `raw` and return a clean re-encoded copy; raise InvalidRequest or UnsupportedMedia for bad input."""
    if not raw:
        raise InvalidRequest("The uploaded file is empty.", code="empty_file", param="file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
    except UnidentifiedImageError:
        raise UnsupportedMedia("The uploaded file is not an image we accept (JPEG, PNG, WebP, GIF).",
                               param="file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels(max_pixels) from None
    with image:
        if image.format not in ACCEPTED_FORMATS:
            raise UnsupportedMedia(f"Image format {image.format} is not accepted (JPEG, PNG, WebP, GIF).",
                                   param="file")
        width, height = image.size
        if width * height > max_pixels:
            raise _too_many_pixels(max_pixels)
        if image.format in ("JPEG", "MPO"):
            image.draft("RGB", (max_edge, max_edge))  # decode at a reduced scale: much faster for big photos
        try:
            image.load()
            upright = ImageOps.exif_transpose(image)
        except (OSError, SyntaxError, ValueError) as exc:
            raise InvalidRequest(f"The image could not be decoded ({exc}).", code="corrupt_image",
                                 param="file") from None
        return _encode(upright, max_edge)


def _too_many_pixels(max_pixels: int) -> InvalidRequest:
    return InvalidRequest(f"The image has too many pixels (limit {max_pixels:,}).", code="image_too_large",
                          param="file")


def _encode(image: Image.Image, max_edge: int) -> NormalisedImage:
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    image = image.convert("RGBA" if has_alpha else "RGB")
    if max(image.size) > max_edge:
        image.thumbnail((max_edge, max_edge), Image.Resampling.LANCZOS, reducing_gap=2.0)
    out = io.BytesIO()
    if has_alpha:
        image.save(out, format="PNG", optimize=False, compress_level=6)
        extension = "png"
    else:
        image.save(out, format="JPEG", quality=85, optimize=False, progressive=False)
        extension = "jpg"
    return NormalisedImage(out.getvalue(), CONTENT_TYPES[extension], extension, image.width, image.height)
