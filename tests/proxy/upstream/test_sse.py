"""The SSE parser against the event-stream rules, fed in every way a network can split the bytes; what the dialects
record of a response for its span (id, finish reasons)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glimpse.upstream.sse import ChatCompletionsSse, EventTooLarge, RelayState, ResponsesSse, SseParser, frame_data

STREAM = (b": a comment\n"
          b"event: response.created\ndata: {\"a\": 1}\n\n"
          b"data: {\"b\":\ndata:  2}\n\n"  # two data lines joined with LF; one leading space dropped, not two
          b"data:\n\n"  # an empty data buffer: not dispatched
          b"retry: 10\nid: 7\ndata: [DONE]\r\n\r\n")
EVENTS = [(b"response.created", b'{"a": 1}'), (None, b'{"b":\n 2}'), (None, b"[DONE]")]


def parse(pieces: list[bytes]) -> list[tuple[bytes | None, bytes]]:
    parser = SseParser(max_event_bytes=1024)
    events = []
    for piece in pieces:
        events += parser.feed(piece)
    return events + parser.end()


def test_whole_stream() -> None:
    assert parse([STREAM]) == EVENTS


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    pieces = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    assert parse(pieces) == EVENTS


def test_an_unended_last_event_still_counts() -> None:
    assert parse([b"data: last"]) == [(None, b"last")]


def test_an_event_past_the_cap_is_an_error_even_without_line_ends() -> None:
    parser = SseParser(max_event_bytes=100)
    parser.feed(b"data: " + b"x" * 50)
    with pytest.raises(EventTooLarge):
        parser.feed(b"x" * 60)
    parser = SseParser(max_event_bytes=100)
    with pytest.raises(EventTooLarge):
        for _ in range(20):
            parser.feed(b"data: xxxxxxxx\n")


def test_framing_round_trips() -> None:
    for payload in (b'{"a": 1}', b'{"b":\n 2}', b"one\ntwo\nthree"):
        assert parse([frame_data(payload)]) == [(None, payload)]


def test_a_chat_stream_records_its_id_and_how_each_choice_ended() -> None:
    dialect, state = ChatCompletionsSse(hide_usage_chunk=True), RelayState()
    base = '"id":"chatcmpl-9","object":"chat.completion.chunk","model":"gpt-4o-mini","usage":null'
    for payload in (f'{{{base},"choices":[{{"index":0,"delta":{{"content":"Hi"}},"finish_reason":null}}]}}',
                    f'{{{base},"choices":[{{"index":0,"delta":{{}},"finish_reason": "length"}}]}}',
                    '{"id":"chatcmpl-9","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}'):
        dialect.relay(None, payload.encode(), state)
    assert state.finish_reasons == ()  # known once the stream ends
    assert dialect.relay(None, b"[DONE]", state) is None
    assert (state.response_id, state.response_model, state.finish_reasons) == ("chatcmpl-9", "gpt-4o-mini",
                                                                               ("length",))


@pytest.mark.parametrize(("response", "reasons"), [
    ({"id": "resp_1", "status": "completed"}, ("stop",)),
    ({"id": "resp_1", "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}},
     ("max_output_tokens",)),
    ({"id": "resp_1", "status": "failed"}, ("error",)),
    ({"id": "resp_1", "status": "in_progress"}, ()),
])
def test_a_response_status_is_a_finish_reason(response: dict, reasons: tuple[str, ...]) -> None:
    state = RelayState()
    ResponsesSse().record_body(response, state)
    assert state.response_id == "resp_1" and state.finish_reasons == reasons
