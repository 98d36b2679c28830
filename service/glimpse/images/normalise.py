"""Image validation and normalisation, by content (Pillow), never by file name or client content type.

An accepted image is decoded, EXIF-rotated, bounded to a maximum edge and re-encoded from pixels
only, so no metadata (EXIF GPS, comments, ICC-embedded payloads) survives. Photos become JPEG,
images with transparency PNG. Only the parsers of the accepted formats ever see an upload. HEIC/HEIF (photos from
iPhones and Macs) is read by pillow-heif's Pillow plugin: libheif applies the container's rotation and mirroring
while decoding and the plugin resets the EXIF orientation to 1, so it is never applied twice.

Memory stays within what `read_header` announces (decoding.py's estimate) before a pixel is decoded: JPEGs are
decoded at a reduced scale, other images are reduced (and converted) a strip at a time, so the full-size pixels
exist once (HEIF: libheif's own full-size copy too, until it is handed to Pillow) and are released before the small
result is rotated, converted and encoded.
"""

from __future__ import annotations

import io
import math
import threading
import warnings
from dataclasses import dataclass

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from ..errors import InvalidRequest, UnsupportedMedia
from .decoding import (
    HEIF_SCRATCH_PIXEL_BYTES,
    NATIVE_MODES,
    WEBP_SCRATCH_PIXEL_BYTES,
    DecodeShape,
    decode_memory,
    fit,
    jpeg_coefficient_bytes,
    reduce_factors,
    strip_rows,
)
from .ids import CONTENT_TYPES

# The only parsers Image.open may try (most common first): none of the dozens of others Pillow has reads an upload.
# JPEG's also reads MPO (a JPEG with more pictures after the first, as phones and stereo cameras make).
OPEN_FORMATS = ("JPEG", "PNG", "HEIF", "WEBP", "GIF", "BMP")
ACCEPTED_FORMATS = frozenset({*OPEN_FORMATS, "MPO"})
ACCEPTED_NAMES = "JPEG, PNG, HEIC, WebP, GIF"  # for people: BMP and MPO are taken but not worth a mention
# Pillow keeps a PNG's (decompressed) text chunks, up to 64 MiB by default; they are dropped here anyway.
PNG_TEXT_BYTES = 4 * 1024 * 1024
PngImagePlugin.MAX_TEXT_MEMORY = PNG_TEXT_BYTES
ORIENTATION = 0x0112
# What ImageOps.exif_transpose does for each EXIF orientation, applied here to the small result.
TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
DRAFT_EDGE_SHARE = 0.9  # a JPEG decoded at a reduced scale keeps at least this share of the long edge asked for
# Raised by Pillow's decoders for a truncated or malformed image.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)


@dataclass(frozen=True)
class NormalisedImage:
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int
    memory_bytes: int  # what normalise_image will need at its peak


def read_header(raw: bytes, *, max_pixels: int, max_edge: int) -> ImageHeader:
    """What `raw` is and what normalising it will take, from its header alone; raises like normalise_image."""
    image = _open(raw, max_pixels)
    try:
        width, height = image.size
        _draft(image, max_edge)
        shape = DecodeShape(image.width, image.height, image.mode, _scratch(image, raw, width, height))
        return ImageHeader(str(image.format), width, height, decode_memory(shape, max_edge))
    finally:
        image.close()


def normalise_image(raw: bytes, *, max_pixels: int, max_edge: int) -> NormalisedImage:
    """Validate `raw` and return a clean re-encoded copy; raise InvalidRequest or UnsupportedMedia for bad input."""
    small, orientation, alpha = _decode_small(raw, max_pixels, max_edge)
    return _encode(small, orientation, alpha)


_heif_lock = threading.Lock()
_heif_registered = False


def _register_heif() -> None:
    """pillow-heif's parser, registered when the first image is opened (libheif is not loaded by a replica that never
    sees one); embedded thumbnails, depth maps and auxiliary images are never read, only the primary image."""
    global _heif_registered
    with _heif_lock:
        if not _heif_registered:
            import pillow_heif

            pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
            _heif_registered = True


def _open(raw: bytes, max_pixels: int) -> Image.Image:
    if not _heif_registered:
        _register_heif()
    if not raw:
        raise InvalidRequest("The uploaded file is empty.", code="empty_file", param="file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw), formats=OPEN_FORMATS)
    except UnidentifiedImageError:
        raise UnsupportedMedia(f"The uploaded file is not an image we accept ({ACCEPTED_NAMES}).",
                               param="file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels(max_pixels) from None
    except DECODE_ERRORS as exc:
        raise _corrupt(exc) from None
    if image.format not in ACCEPTED_FORMATS:
        image.close()
        raise UnsupportedMedia(f"Image format {image.format} is not accepted ({ACCEPTED_NAMES}).", param="file")
    if image.width * image.height > max_pixels:
        image.close()
        raise _too_many_pixels(max_pixels)
    return image


def _draft(image: Image.Image, max_edge: int) -> None:
    """A JPEG is decoded at the smallest scale (1/2, 1/4, 1/8) whose long edge is still at least DRAFT_EDGE_SHARE of
    `max_edge`: a 12 MP phone photo (4032 wide) comes out of the decoder at 2016 and is not resampled at all, which
    takes a fifth of the time of decoding it whole and resampling to 2048 (bench/). The vision models see no
    difference: they scale a picture's short side to 768 before they look (OpenAI's image inputs guide)."""
    if image.format in ("JPEG", "MPO"):
        image.draft("RGB", fit(image.width, image.height, math.ceil(max_edge * DRAFT_EDGE_SHARE)))


def _scratch(image: Image.Image, raw: bytes, width: int, height: int) -> int:
    """What decoding holds besides the pixels: copies of the file's metadata (or, for WebP, of the whole file) are
    never bigger than the file, plus the codec's full-size buffers."""
    scratch = len(raw)
    if image.format == "PNG":
        scratch += PNG_TEXT_BYTES
    elif image.format == "WEBP":
        scratch += WEBP_SCRATCH_PIXEL_BYTES * width * height
    elif image.format == "HEIF":
        scratch += HEIF_SCRATCH_PIXEL_BYTES * width * height
    elif image.format in ("JPEG", "MPO") and _jpeg_keeps_coefficients(raw):
        sampling = [(layer[1], layer[2]) for layer in getattr(image, "layer", [])]
        scratch += jpeg_coefficient_bytes(width, height, sampling)
    return scratch


def _jpeg_keeps_coefficients(raw: bytes) -> bool:
    """Whether libjpeg must buffer the whole image's coefficients: a progressive JPEG, or one whose first scan does
    not carry every component. Pillow's header reading stops at that scan without telling; this walks the same
    markers (skipping stray bytes between them, as Pillow does)."""
    components, position = 0, 2
    while position >= 0 and position + 4 < len(raw):
        if raw[position] != 0xFF:
            position = raw.find(b"\xff", position)
            continue
        marker = raw[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            position += 2
            continue
        if marker in (0xC2, 0xC6, 0xCA, 0xCE):  # progressive frames
            return True
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and position + 9 < len(raw):
            components = raw[position + 9]
        if marker == 0xDA:
            return raw[position + 4] < components
        position += 2 + int.from_bytes(raw[position + 2:position + 4], "big")
    return True


def _decode_small(raw: bytes, max_pixels: int, max_edge: int) -> tuple[Image.Image, object, bool]:
    """The image at its final size, in RGB, L or RGBa (premultiplied alpha, so that reducing does not bleed the
    colour of transparent pixels), with its EXIF orientation and whether it has alpha. Every full-size buffer is
    released when this returns."""
    image = _open(raw, max_pixels)
    try:
        _draft(image, max_edge)
        alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
        image.load()
        orientation = image.getexif().get(ORIENTATION)
        return _shrink(image, fit(image.width, image.height, max_edge), alpha), orientation, alpha
    except DECODE_ERRORS as exc:
        raise _corrupt(exc) from None
    finally:
        image.close()


def _shrink(image: Image.Image, target: tuple[int, int], alpha: bool) -> Image.Image:
    """A new image of size `target` from the loaded `image`; its full-size pixels are released as soon as a
    reduced copy exists."""
    factors = reduce_factors(image.size, target)
    if image.mode in NATIVE_MODES:
        reduced = image.reduce(factors) if factors != (1, 1) else image
    else:
        reduced = _convert_in_strips(image, "RGBa" if alpha else "RGB", factors)
    if reduced is not image:
        image.close()
    if reduced.size == target:
        return reduced.copy() if reduced is image else reduced
    return reduced.resize(target, Image.Resampling.LANCZOS)


def _convert_in_strips(image: Image.Image, mode: str, factors: tuple[int, int]) -> Image.Image:
    """`image` converted to `mode` and box-reduced by `factors`, a strip of rows at a time (a multiple of the
    vertical factor, so the result is the same as reducing it whole)."""
    width, height = image.size
    factor_x, factor_y = factors
    result = Image.new(mode, (-(-width // factor_x), -(-height // factor_y)))
    rows = strip_rows(width, factor_y)
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(top + rows, height)))
        if mode == "RGBa":
            strip = (strip if strip.mode == "RGBA" else strip.convert("RGBA")).convert("RGBa")
        else:
            strip = strip.convert(mode)
        if factors != (1, 1):
            strip = strip.reduce(factors)
        result.paste(strip, (0, top // factor_y))
    return result


def _too_many_pixels(max_pixels: int) -> InvalidRequest:
    return InvalidRequest(f"The image has too many pixels (limit {max_pixels:,}).", code="image_too_large",
                          param="file")


def _corrupt(exc: BaseException) -> InvalidRequest:
    return InvalidRequest(f"The image could not be decoded ({exc}).", code="corrupt_image", param="file")


def _encode(image: Image.Image, orientation: object, alpha: bool) -> NormalisedImage:
    transpose = TRANSPOSE_FOR_ORIENTATION.get(orientation) if isinstance(orientation, int) else None
    if transpose is not None:
        image = image.transpose(transpose)
    mode = "RGBA" if alpha else "RGB"
    if image.mode != mode:
        image = image.convert(mode)
    out = io.BytesIO()
    if alpha:
        image.save(out, format="PNG", optimize=False, compress_level=6)
        extension = "png"
    else:
        image.save(out, format="JPEG", quality=85, optimize=False, progressive=False)
        extension = "jpg"
    return NormalisedImage(out.getvalue(), CONTENT_TYPES[extension], extension, image.width, image.height)
