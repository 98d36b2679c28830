"""Test images made on the fly with Pillow (no binary fixtures in the repo)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def jpeg(width: int = 64, height: int = 32, color: tuple[int, int, int] = (200, 30, 30), *,
         orientation: int | None = None, gps: bool = False) -> bytes:
    image = Image.new("RGB", (width, height), color)
    image.paste((0, 0, 255), (0, 0, min(16, width), min(16, height)))  # top-left marker, to check rotation
    exif = Image.Exif()
    exif[0x010F] = "GlimpseTestCamera"  # Make
    if orientation:
        exif[0x0112] = orientation
    if gps:
        exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 18.0)}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes(), quality=90)
    return out.getvalue()


def heic(width: int = 64, height: int = 32, color: tuple[int, int, int] = (200, 30, 30), *,
         orientation: int | None = None, alpha: bool = False, quality: int = 90) -> bytes:
    """A HEIC as a Mac or an iPhone makes one (pillow-heif's encoder: libheif with x265), with a top-left marker and
    EXIF; pillow-heif writes an EXIF `orientation` as the container's rotation, as Apple's cameras do."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    image = Image.new("RGBA" if alpha else "RGB", (width, height), (*color, 128) if alpha else color)
    image.paste((0, 0, 255), (0, 0, min(16, width), min(16, height)))
    exif = Image.Exif()
    exif[0x010F] = "GlimpseTestCamera"  # Make
    if orientation:
        exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, format="HEIF", exif=exif.tobytes(), quality=quality)
    return out.getvalue()


def png(width: int = 32, height: int = 32, *, alpha: bool = False) -> bytes:
    image = Image.new("RGBA" if alpha else "RGB", (width, height), (10, 200, 10, 128) if alpha else (10, 200, 10))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def noisy_jpeg(width: int, height: int, quality: int = 95) -> bytes:
    """A photo-like JPEG that does not compress away (for size limits and benchmarks)."""
    import os

    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def decompression_bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG file whose header claims a huge canvas of one-bit pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def truncated_jpeg() -> bytes:
    data = jpeg(256, 256)
    return data[: len(data) // 2]


SVG_WITH_SCRIPT = (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
                   b'<script>alert(1)</script><rect width="10" height="10"/></svg>')
