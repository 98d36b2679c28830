from __future__ import annotations

import io

import pytest
from PIL import Image

from glimpse.errors import GlimpseError, UnsupportedMedia
from glimpse.images.normalise import normalise_image, read_header
from glimpse.web.errors import status_for
from tests.images import decompression_bomb_png, heic, jpeg, png, truncated_jpeg


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
    assert (result.width, result.height) == (1000, 250)  # decoded at a quarter: within 90 % of the edge
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


def test_heic_is_rotated_stripped_and_becomes_jpeg() -> None:
    """A Mac's or an iPhone's HEIC: its rotation applied once (the container's; the EXIF tag is reset), no metadata."""
    raw = heic(64, 32, orientation=6)
    assert b"GlimpseTestCamera" in raw
    assert read_header(raw, max_pixels=10_000_000, max_edge=2048).format == "HEIF"
    result = normalise_image(raw, max_pixels=10_000_000, max_edge=2048)
    assert (result.content_type, result.extension, result.width, result.height) == ("image/jpeg", "jpg", 32, 64)
    assert b"GlimpseTestCamera" not in result.data and b"Exif" not in result.data
    image = Image.open(io.BytesIO(result.data))
    assert image.format == "JPEG" and not image.getexif()
    r, _, b = image.getpixel((28, 4))[:3]  # the top-left marker is now top-right
    assert b > 150 and r < 100


def test_heic_bounded_and_with_alpha() -> None:
    result = normalise_image(heic(1200, 300), max_pixels=10_000_000, max_edge=600)
    assert (result.width, result.height) == (600, 150) and result.content_type == "image/jpeg"
    transparent = normalise_image(heic(40, 20, alpha=True), max_pixels=10_000, max_edge=100)
    assert transparent.content_type == "image/png" and Image.open(io.BytesIO(transparent.data)).mode == "RGBA"


def encoded(format: str, **options: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 20, 30)).save(out, format=format, **options)
    return out.getvalue()


@pytest.mark.parametrize("format", ["TIFF", "ICO", "PPM", "TGA", "QOI"])
def test_other_pillow_formats_are_never_parsed(format: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the accepted formats' parsers are tried: the dozens of others Pillow registers never see an upload."""
    raw = encoded(format)
    assert Image.open(io.BytesIO(raw)).format == format  # Pillow itself would read it
    Image.init()

    def refuse(*args: object) -> None:
        raise AssertionError(f"the {format} parser was reached")

    monkeypatch.setitem(Image.OPEN, format, (refuse, None))
    with pytest.raises(UnsupportedMedia) as info:
        normalise_image(raw, max_pixels=10_000, max_edge=64)
    assert status_for(info.value) == 415 and "HEIC" in info.value.message


@pytest.mark.parametrize(("size", "normalised"), [((4032, 3024), (2016, 1512)), ((8064, 6048), (2016, 1512)),
                                                  ((3000, 2250), (2048, 1536)), ((3024, 4032), (1512, 2016))])
def test_a_big_jpeg_is_decoded_at_a_reduced_scale_when_that_keeps_most_of_the_edge(
        size: tuple[int, int], normalised: tuple[int, int]) -> None:
    """A phone photo comes out of the JPEG decoder at half (or a quarter) size, at least 90 % of the edge, and is not
    resampled; one that halving would shrink further is decoded whole and resampled to the edge."""
    out = io.BytesIO()
    Image.linear_gradient("L").resize(size).convert("RGB").save(out, format="JPEG", quality=80)
    result = normalise_image(out.getvalue(), max_pixels=50_000_000, max_edge=2048)
    assert (result.width, result.height) == normalised
