from __future__ import annotations

import io

import pytest
from PIL import Image

from glimpse.errors import GlimpseError
from glimpse.images.normalise import normalise_image
from glimpse.web.errors import status_for
from tests.images import decompression_bomb_png, jpeg, png, truncated_jpeg


def test_exif_rotation_applied_and_metadata_stripped() -> None:
    raw = jpeg(64, 32, orientation=6, gps=True)  # 6: rotate 90° clockwise to display
    assert b"GlimpseTestCamera" in raw
    result = normalise_image(raw, max_pixels=10_000_000, max_edge=2048)
    assert (result.width, result.height) == (32, 64)
    assert b"GlimpseTestCamera" not in result.data and b"Exif" not in result.data
    image = Image.open(io.BytesIO(result.data))
    assert not image.getexif()
    r, _, b = image.getpixel((28, 4))[:3]  # the top-left marker is now top-right
    assert b > 150 and r < 100


def test_long_edge_bounded_and_aspect_kept() -> None:
    result = normalise_image(jpeg(4000, 1000), max_pixels=50_000_000, max_edge=1024)
    assert (result.width, result.height) == (1024, 256)
    assert result.content_type == "image/jpeg" and result.extension == "jpg"


def test_alpha_kept_as_png() -> None:
    result = normalise_image(png(10, 10, alpha=True), max_pixels=10_000, max_edge=100)
    assert result.content_type == "image/png"
    assert Image.open(io.BytesIO(result.data)).mode == "RGBA"


@pytest.mark.parametrize(("raw", "status"), [(b"hello", 415), (truncated_jpeg(), 400),
                                             (decompression_bomb_png(), 400), (b"", 400)])
def test_rejections(raw: bytes, status: int) -> None:
    with pytest.raises(GlimpseError) as info:
        normalise_image(raw, max_pixels=50_000_000, max_edge=2048)
    assert status_for(info.value) == status
