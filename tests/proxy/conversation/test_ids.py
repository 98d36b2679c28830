from __future__ import annotations

import pytest

from glimpse.conversation.ids import (
    conversation_id_of,
    elevenlabs_conversation_id_of,
    is_valid_session_id,
    last_message_is_from_user,
)


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


def test_the_rate_limit_keys_on_elevenlabs_conversation_id_only() -> None:
    """Not user_id (shared by a user's conversations), not a session id the page sets (anyone may claim one)."""
    assert elevenlabs_conversation_id_of({"user_id": "u", "elevenlabs_extra_body": {"session_id": "s",
                                                                                    "conversation_id": "c"}}) is None
    assert elevenlabs_conversation_id_of({"user_id": "u", "dynamic_variables": {"system__conversation_id": "d"}}) == "d"
    assert elevenlabs_conversation_id_of({"elevenlabs_extra_body": {
        "session_id": "s", "dynamic_variables": {"system__conversation_id": "e"}}}) == "e"
    assert elevenlabs_conversation_id_of({"system__conversation_id": "f", "user_id": "u"}) == "f"
    assert elevenlabs_conversation_id_of({"dynamic_variables": {"system__conversation_id": "../x"}}) is None
