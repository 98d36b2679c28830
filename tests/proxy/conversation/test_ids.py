from __future__ import annotations

import pytest

from glimpse.conversation.ids import conversation_id_of, is_valid_session_id, last_message_is_from_user


def test_precedence_follows_design() -> None:
    body = {"user_id": "u", "elevenlabs_extra_body": {"session_id": "s", "conversation_id": "c",
                                                      "dynamic_variables": {"system__conversation_id": "d"}}}
    assert conversation_id_of(body) == "s"
    del body["elevenlabs_extra_body"]["session_id"]
    assert conversation_id_of(body) == "c"
    del body["elevenlabs_extra_body"]["conversation_id"]
    assert conversation_id_of(body) == "d"
    del body["elevenlabs_extra_body"]
    assert conversation_id_of(body) == "u"
    assert conversation_id_of({}) is None


def test_invalid_ids_are_skipped() -> None:
    body = {"elevenlabs_extra_body": {"session_id": "../etc"}, "user_id": "fine-id"}
    assert conversation_id_of(body) == "fine-id"
    assert conversation_id_of({"elevenlabs_extra_body": "not a dict"}) is None


@pytest.mark.parametrize("value", ["", ".", "..", "a/b", "x" * 129, 5, None, "sp ace", "ends-in-a-newline\n"])
def test_rejects(value: object) -> None:
    assert not is_valid_session_id(value)


def test_last_message_from_user() -> None:
    assert last_message_is_from_user([{"role": "system"}, {"role": "user"}])
    assert not last_message_is_from_user([{"role": "user"}, {"role": "assistant"}])
    assert not last_message_is_from_user([])
