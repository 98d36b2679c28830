"""What the demo model can really tell about a picture, and its answer: pure, no I/O.

Measured on the picture reduced to a thumbnail: named colours by share of the pixels, and brightness as the mean
HSL lightness (so a saturated red or blue is "medium", black "dark", white "bright").
"""

from __future__ import annotations

import colorsys
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from PIL import Image

FORMATS = ("JPEG", "PNG", "WEBP", "GIF")  # what the proxy stores (JPEG, PNG), and what a caller may add
SAMPLE_EDGE = 96  # colours are counted on a thumbnail this size at most
MIN_SHARE = 0.1  # colours below this share of the picture are not named
MAX_COLOURS = 3
QUESTION_CHARS = 200
ROTATED = (5, 6, 7, 8)  # EXIF orientations that turn the picture a quarter
NO_LLM = "Demo model (no LLM is configured)"


@dataclass(frozen=True)
class Picture:
    """One picture as measured: its size as shown, its named colours by share (largest first), its lightness."""

    width: int
    height: int
    colours: tuple[tuple[str, float], ...]
    lightness: float  # mean HSL lightness, 0 (black) to 1 (white)

    @property
    def orientation(self) -> str:
        if abs(self.width - self.height) <= 0.02 * max(self.width, self.height):
            return "square"
        return "landscape" if self.width > self.height else "portrait"

    @property
    def brightness(self) -> str:
        if self.lightness < 0.3:
            return "dark"
        return "bright" if self.lightness > 0.7 else "medium"

    def describe(self) -> str:
        return f"{self.width} by {self.height}, {self.orientation}, {colour_phrase(self.colours)}, " \
               f"{self.brightness} brightness"


def measure(data: bytes, *, max_pixels: int, max_decode_pixels: int) -> Picture | None:
    """The picture in `data` measured, or None: not an image Pillow reads here, more than `max_pixels` pixels, or
    more than `max_decode_pixels` to decode (a JPEG is decoded at a reduced scale first). Both are judged from
    the header, before decoding."""
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as image:
            width, height = image.size
            if width * height > max_pixels:
                return None
            if image.getexif().get(0x0112) in ROTATED:
                width, height = height, width
            image.draft("RGB", (SAMPLE_EDGE, SAMPLE_EDGE))  # JPEG: decoded at a reduced scale
            if image.width * image.height > max_decode_pixels:
                return None
            sample = _sample(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return _measured(width, height, sample)


def _sample(image: Image.Image) -> Image.Image:
    """A small RGB copy; transparent parts shown on white, as a page shows them."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        rgba.thumbnail((SAMPLE_EDGE, SAMPLE_EDGE), Image.Resampling.BOX)
        return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    rgb = image.convert("RGB")
    rgb.thumbnail((SAMPLE_EDGE, SAMPLE_EDGE), Image.Resampling.BOX)
    return rgb


def _measured(width: int, height: int, sample: Image.Image) -> Picture:
    counts: Counter[str] = Counter()
    lightness = 0.0
    pixels = sample.width * sample.height
    colours = cast(list[tuple[int, tuple[int, int, int]]], sample.getcolors(pixels) or [])
    for count, (red, green, blue) in colours:
        counts[colour_name(red, green, blue)] += count
        lightness += count * (max(red, green, blue) + min(red, green, blue)) / 510
    shares = [(name, count / pixels) for name, count in counts.most_common()]
    named = tuple(share for share in shares[:MAX_COLOURS] if share[1] >= MIN_SHARE) or tuple(shares[:1])
    return Picture(width, height, named, lightness / pixels)


def colour_name(red: int, green: int, blue: int) -> str:
    """The everyday name of a colour: black, white, grey, or a hue (red, orange, brown, yellow, green, turquoise,
    blue, purple, pink)."""
    hue, saturation, value = colorsys.rgb_to_hsv(red / 255, green / 255, blue / 255)
    degrees = hue * 360
    if value < 0.2:
        return "black"
    if saturation < 0.2:
        return "white" if value > 0.85 else "grey"
    if degrees < 15 or degrees >= 345:
        return "pink" if saturation < 0.5 and value > 0.7 else "red"
    if degrees < 45:
        return "brown" if value < 0.65 else "orange"
    if degrees < 70:
        return "yellow"
    if degrees < 165:
        return "green"
    if degrees < 195:
        return "turquoise"
    if degrees < 260:
        return "blue"
    return "purple" if degrees < 310 else "pink"


def colour_phrase(colours: tuple[tuple[str, float], ...]) -> str:
    """`entirely red`, `mostly red (80%)`, `mostly red (52%) and blue (48%)`, `mostly red (50%), blue (30%) and
    green (20%)`."""
    if not colours:
        return "no colour I can name"
    percents = [(name, round(share * 100)) for name, share in colours]
    if percents[0][1] >= 100:
        return f"entirely {percents[0][0]}"
    named = [f"{name} ({percent}%)" for name, percent in percents]
    return "mostly " + (named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1])


def answer(question: str, pictures: Sequence[Picture | None]) -> str:
    """The demo model's whole answer: where it comes from, the question echoed, then what it measured of each
    picture (None: one it could not open)."""
    question = " ".join(question.split())
    if len(question) > QUESTION_CHARS:
        question = question[:QUESTION_CHARS].rstrip() + "…"
    opening = f'{NO_LLM}: you asked "{question}".' if question else f"{NO_LLM}."
    if not pictures:
        return f"{opening} I see no picture yet. Show me a picture and ask again: I can tell its size, shape, " \
               f"main colours and brightness."
    if len(pictures) == 1:
        seen = f"I see 1 picture: {_described(pictures[0])}."
    else:
        seen = f"I see {len(pictures)} pictures." + "".join(
            f" Picture {index}: {_described(picture)}." for index, picture in enumerate(pictures, 1))
    return f"{opening} {seen} I measure pictures; I do not understand them."


def _described(picture: Picture | None) -> str:
    return picture.describe() if picture is not None else "one I could not open"
