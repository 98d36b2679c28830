"""The demo model (pure): what it measures of generated pictures of known sizes and colours, what it reads from a
request, its answer, and its answer's wire shapes against OpenAI's schemas."""

from __future__ import annotations

import base64
import io
import json
import typing
from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from PIL import Image

from glimpse.config import DEFAULT_UPSTREAM_BASE_URL, DEMO, DEMO_MODEL, ConfigError, Settings
from glimpse.demo.model import Picture, answer, colour_name, colour_phrase, measure
from glimpse.demo.request import data_url_bytes, read_chat, read_response
from glimpse.demo.wire import chat_chunks, chat_completion, response, response_events, words
from tests.fakes.vendor_spec import validator
from tests.images import jpeg

MAX_PIXELS, MAX_DECODE_PIXELS = 50_000_000, 2048 * 2048
# the SDK's Responses stream events by their `type` (its union is discriminated by the SDK, not by pydantic)
EVENTS = {typing.get_args(event.model_fields["type"].annotation)[0]: event
          for event in typing.get_args(typing.get_args(ResponseStreamEvent)[0])}
RED, BLUE, YELLOW, BLACK, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 0), (0, 0, 0), (255, 255, 255)


def picture(width: int, height: int, colour: tuple[int, int, int], *, fmt: str = "PNG",
            second: tuple[int, int, int] | None = None) -> bytes:
    """A picture of one colour, or its left half `colour` and right half `second`."""
    image = Image.new("RGB", (width, height), colour)
    if second is not None:
        image.paste(second, (width // 2, 0, width, height))
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def measured(data: bytes) -> Picture:
    result = measure(data, max_pixels=MAX_PIXELS, max_decode_pixels=MAX_DECODE_PIXELS)
    assert result is not None
    return result


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def test_a_red_landscape() -> None:
    red = measured(picture(400, 300, RED))
    assert (red.width, red.height, red.orientation) == (400, 300, "landscape")
    assert red.colours == (("red", 1.0),)
    assert red.brightness == "medium"
    assert red.describe() == "400 by 300, landscape, entirely red, medium brightness"


def test_a_half_blue_half_yellow_portrait() -> None:
    halves = measured(picture(300, 400, BLUE, second=YELLOW))
    assert (halves.width, halves.height, halves.orientation) == (300, 400, "portrait")
    assert {name for name, _ in halves.colours} == {"blue", "yellow"}
    assert all(share == pytest.approx(0.5, abs=0.03) for _, share in halves.colours)
    assert "mostly blue (50%) and yellow (50%)" in halves.describe() \
        or "mostly yellow (50%) and blue (50%)" in halves.describe()


@pytest.mark.parametrize(("colour", "name", "brightness"), [(BLACK, "black", "dark"), (WHITE, "white", "bright")])
def test_black_is_dark_and_white_is_bright(colour: tuple[int, int, int], name: str, brightness: str) -> None:
    result = measured(picture(200, 200, colour))
    assert result.colours == ((name, 1.0),) and result.brightness == brightness and result.orientation == "square"


def test_a_jpeg_is_measured_from_a_reduced_decode_and_its_exif_rotation_is_shown() -> None:
    photo = measured(jpeg(1600, 1200, (220, 20, 20)))  # a small blue marker in a corner
    assert (photo.width, photo.height) == (1600, 1200) and photo.colours[0][0] == "red"
    turned = measured(jpeg(1600, 1200, (220, 20, 20), orientation=6))  # shown a quarter turned: a portrait
    assert (turned.width, turned.height, turned.orientation) == (1200, 1600, "portrait")


def test_transparency_is_seen_on_white() -> None:
    out = io.BytesIO()
    Image.new("RGBA", (64, 64), (255, 0, 0, 0)).save(out, format="PNG")
    assert measured(out.getvalue()).colours == (("white", 1.0),)


def test_what_it_cannot_open_or_will_not_decode() -> None:
    assert measure(b"not an image", max_pixels=MAX_PIXELS, max_decode_pixels=MAX_DECODE_PIXELS) is None
    assert measure(jpeg()[:100], max_pixels=MAX_PIXELS, max_decode_pixels=MAX_DECODE_PIXELS) is None
    red = picture(400, 300, RED)
    assert measure(red, max_pixels=400 * 300 - 1, max_decode_pixels=MAX_DECODE_PIXELS) is None  # the proxy's limit
    assert measure(red, max_pixels=MAX_PIXELS, max_decode_pixels=400 * 300 - 1) is None  # too much to decode
    # a large JPEG is decoded at an eighth of its size: measured, within the decode bound
    large = measure(jpeg(4000, 3000), max_pixels=MAX_PIXELS, max_decode_pixels=500 * 375)
    assert large is not None and (large.width, large.height) == (4000, 3000)


@pytest.mark.parametrize(("rgb", "name"), [
    ((255, 0, 0), "red"), ((200, 30, 30), "red"), ((255, 165, 0), "orange"), ((150, 75, 0), "brown"),
    ((255, 215, 0), "yellow"), ((0, 128, 0), "green"), ((0, 200, 200), "turquoise"), ((135, 206, 235), "blue"),
    ((128, 0, 128), "purple"), ((255, 192, 203), "pink"), ((128, 128, 128), "grey"), ((10, 10, 10), "black"),
    ((250, 250, 250), "white"),
])
def test_colour_names(rgb: tuple[int, int, int], name: str) -> None:
    assert colour_name(*rgb) == name


def test_colour_phrases() -> None:
    assert colour_phrase((("red", 1.0),)) == "entirely red"
    assert colour_phrase((("red", 0.8),)) == "mostly red (80%)"
    assert colour_phrase((("red", 0.52), ("blue", 0.48))) == "mostly red (52%) and blue (48%)"
    assert colour_phrase((("red", 0.5), ("blue", 0.3), ("green", 0.2))) == \
        "mostly red (50%), blue (30%) and green (20%)"


def test_the_answer_echoes_the_question_says_demo_and_names_the_colours() -> None:
    red, halves = measured(picture(400, 300, RED)), measured(picture(300, 400, BLUE, second=YELLOW))
    one = answer("What colour is this?", [red])
    assert one.startswith('Demo model (no LLM is configured): you asked "What colour is this?".')
    assert "I see 1 picture: 400 by 300, landscape, entirely red, medium brightness." in one
    assert "I do not understand them" in one
    several = answer("  And these?\n", [red, halves, None])
    assert 'you asked "And these?"' in several and "I see 3 pictures." in several
    assert "Picture 1: 400 by 300" in several and "Picture 2: 300 by 400, portrait" in several
    assert "Picture 3: one I could not open." in several
    none = answer("What do you see?", [])
    assert "demo model" in none.lower() and "Show me a picture and ask again" in none
    assert len(answer("why " * 200, [])) < 400  # a long question is cut


def test_what_it_reads_from_a_chat_request() -> None:
    red = data_url(picture(8, 8, RED))
    asked = read_chat({"messages": [
        {"role": "system", "content": "You are a guide."},
        {"role": "user", "content": [{"type": "text", "text": "The person shared 1 image."},
                                     {"type": "image_url", "image_url": {"url": red, "detail": "auto"}}]},
        {"role": "user", "content": "What colour is this?"}]})
    assert asked.question == "What colour is this?" and asked.images == (red,) and asked.words == 13
    listed = read_chat({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "And"}, {"type": "text", "text": "this?"},
        {"type": "image_url", "image_url": {"url": "https://example.test/a.jpg"}}]}]})
    assert listed.question == "And this?" and listed.images == ("https://example.test/a.jpg",)
    assert read_chat({"messages": "nonsense"}).images == ()


def test_what_it_reads_from_a_responses_request() -> None:
    red = data_url(picture(8, 8, RED))
    assert read_response({"input": "Hello there"}).question == "Hello there"
    asked = read_response({"input": [
        {"role": "user", "content": [{"type": "input_text", "text": "Shared."},
                                     {"type": "input_image", "image_url": red, "detail": "auto"}]},
        {"type": "function_call_output", "call_id": "c1", "output": "{}"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Which colour?"}]}]})
    assert asked.question == "Which colour?" and asked.images == (red,)


def test_data_urls_only_and_bounded() -> None:
    png = picture(8, 8, RED)
    assert data_url_bytes(data_url(png), max_bytes=10_000) == png
    assert data_url_bytes(data_url(png), max_bytes=len(png) - 10) is None  # too large, judged before decoding
    assert data_url_bytes("https://example.test/a.png", max_bytes=10_000) is None
    assert data_url_bytes("data:image/png;base64,not base64!", max_bytes=10_000) is None
    assert data_url_bytes("data:image/png,rawbytes", max_bytes=10_000) is None


TEXT = 'Demo model (no LLM is configured): you asked "What colour is this?". I see 1 picture.'


def test_chat_chunks_are_openai_chunks() -> None:
    assert "".join(words(TEXT)) == TEXT
    chunks = list(chat_chunks(TEXT, prompt_words=5, include_usage=True))
    schema = validator("openai", "CreateChatCompletionStreamResponse")
    for chunk in chunks:
        schema.validate(json.loads(json.dumps(chunk)))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == TEXT
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == len(words(TEXT))
    assert all(c["usage"] is None for c in chunks[:-1]) and {c["id"] for c in chunks} == {chunks[0]["id"]}
    without = list(chat_chunks(TEXT, prompt_words=5, include_usage=False))
    assert all("usage" not in c for c in without) and without[-1]["choices"][0]["finish_reason"] == "stop"
    completion = chat_completion(TEXT, prompt_words=5)
    validator("openai", "CreateChatCompletionResponse").validate(completion)
    assert completion["choices"][0]["message"]["content"] == TEXT and completion["model"] == DEMO_MODEL


def test_responses_events_are_openai_events() -> None:
    request = {"model": "gpt-4o", "input": "hi", "instructions": "Be brief."}
    events: list[Any] = [EVENTS[e["type"]].model_validate(e) for e in response_events(TEXT, 3, request)]
    assert [e.type for e in events[:4]] == ["response.created", "response.in_progress",
                                            "response.output_item.added", "response.content_part.added"]
    assert events[-1].type == "response.completed" and events[-1].response.output_text == TEXT
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == TEXT
    whole = Response.model_validate(response(TEXT, 3, request))
    assert whole.output_text == TEXT and whole.model == DEMO_MODEL and whole.status == "completed"
    assert whole.instructions == "Be brief." and whole.usage is not None and whole.usage.input_tokens == 3


@pytest.mark.parametrize(("env", "demo"), [
    ({}, True),
    ({"OPENAI_API_KEY": "sk-x"}, False),  # a key with the default URL: OpenAI, as before
    ({"GLIMPSE_UPSTREAM_API_KEY": "sk-x"}, False),
    ({"GLIMPSE_UPSTREAM_BASE_URL": "http://vllm:8000/v1"}, False),  # a server of one's own needs no key
    ({"GLIMPSE_UPSTREAM_BASE_URL": DEFAULT_UPSTREAM_BASE_URL}, True),
    ({"GLIMPSE_UPSTREAMS": '[{"name": "a", "base_url": "http://a/v1"}]'}, False),
    ({"GLIMPSE_UPSTREAM_PROVIDER": "demo", "OPENAI_API_KEY": "sk-x"}, True),  # chosen explicitly
])
def test_the_demo_model_answers_only_when_no_upstream_is_configured(env: dict[str, str], demo: bool) -> None:
    settings = Settings.load(env=env)
    targets = settings.upstream_targets
    assert settings.demo_model is demo
    if demo:
        assert [(t.name, t.provider, t.model) for t in targets] == [(DEMO, DEMO, DEMO_MODEL)]
    else:
        assert all(t.provider != DEMO for t in targets)
    assert settings.upstream_configured is not (env == {} or env == {"GLIMPSE_UPSTREAM_BASE_URL":
                                                                     DEFAULT_UPSTREAM_BASE_URL})


def test_the_demo_model_is_never_a_fallback() -> None:
    listed = '[{"name": "a", "base_url": "http://a/v1"}, {"name": "d", "base_url": "http://d/v1", "provider": "demo"}]'
    with pytest.raises(ConfigError, match=r"^GLIMPSE_UPSTREAMS: the demo model is no fallback"):
        Settings.load(env={"GLIMPSE_UPSTREAMS": listed})
