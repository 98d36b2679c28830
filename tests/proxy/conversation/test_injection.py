from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from glimpse.conversation.injection import image_note, insert_image_message, insertion_index

roles = st.sampled_from(["system", "developer", "user", "assistant", "tool"])
messages_strategy = st.lists(
    st.fixed_dictionaries({"role": roles, "content": st.text(max_size=20)}), max_size=30)
urls_strategy = st.lists(st.text(min_size=1, max_size=30).map(lambda s: "data:image/jpeg;base64," + s), max_size=5)


@given(messages_strategy, urls_strategy)
def test_injection_never_loses_reorders_or_duplicates_a_callers_message(messages: list[dict[str, Any]],
                                                                          urls: list[str]) -> None:
    snapshot = [dict(m) for m in messages]
    result = insert_image_message(messages, urls, "auto")
    assert messages == snapshot  # the input is not mutated
    if not urls:
        assert result == messages
        return
    index = insertion_index(messages)
    inserted = result[index]
    assert result[:index] + result[index + 1:] == messages
    assert len(result) == len(messages) + 1
    assert all(m.get("role") in ("system", "developer") for m in result[:index])
    assert [p["image_url"]["url"] for p in inserted["content"][1:]] == urls
    assert inserted["role"] == "user" and inserted["content"][0]["type"] == "text"


def test_inserted_after_all_leading_system_messages() -> None:
    messages = [{"role": "system", "content": "a"}, {"role": "developer", "content": "b"},
                {"role": "user", "content": "c"}, {"role": "system", "content": "late"}]
    result = insert_image_message(messages, ["u1", "u2"], "high")
    assert [m["role"] for m in result] == ["system", "developer", "user", "user", "system"]
    assert result[2]["content"][1] == {"type": "image_url", "image_url": {"url": "u1", "detail": "high"}}


def test_no_system_prompt_inserts_first() -> None:
    assert insertion_index([{"role": "user", "content": "hi"}]) == 0


def test_note_counts_images() -> None:
    assert "an image" in image_note(1)
    assert "2 images" in image_note(2)
