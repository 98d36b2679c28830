"""Which conversation a chat request belongs to, and which ids a client may use for one."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from ..errors import InvalidRequest

_SESSION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
SESSION_ID_REGEX = f"^{_SESSION_ID.pattern}$"  # for JSON Schema (ECMA-262: `$` is the end of the string there)


def is_valid_session_id(value: object) -> bool:
    return isinstance(value, str) and _SESSION_ID.fullmatch(value) is not None and value not in (".", "..")


def require_session_id(value: object) -> str:
    if not is_valid_session_id(value):
        raise InvalidRequest("`session_id` is required: 1-128 characters of letters, digits, '-', '_', '.', ':'.",
                             param="session_id")
    return str(value)


def conversation_id_of(body: dict[str, Any]) -> str | None:
    """The first usable id, in this order; None means: forward without injection.

    1. `elevenlabs_extra_body.session_id` (the page's session, via `customLlmExtraBody`)
    2. `elevenlabs_extra_body.conversation_id`
    3. the `system__conversation_id` dynamic variable
    4. `user_id`
    """
    extra = _extra_body(body)
    candidates = [extra.get("session_id"), extra.get("conversation_id"), *_system_conversation_ids(body),
                  body.get("user_id")]
    return _first_valid(candidates)


def elevenlabs_conversation_id_of(body: dict[str, Any]) -> str | None:
    """ElevenLabs' own id of the conversation (the `system__conversation_id` dynamic variable), or None: what the
    per-conversation rate limit keys on. Neither `user_id` (the same for every conversation of a user, or of an app
    with a fixed id) nor a session id the page sets (not secret: anyone could claim a victim's and drain its
    bucket)."""
    return _first_valid(_system_conversation_ids(body))


def _extra_body(body: dict[str, Any]) -> dict[str, Any]:
    extra = body.get("elevenlabs_extra_body")
    return extra if isinstance(extra, dict) else {}


def _system_conversation_ids(body: dict[str, Any]) -> list[object]:
    candidates = []
    for holder in (_extra_body(body), body):
        variables = holder.get("dynamic_variables")
        if isinstance(variables, dict):
            candidates.append(variables.get("system__conversation_id"))
    candidates.append(body.get("system__conversation_id"))
    return candidates


def _first_valid(candidates: list[object]) -> str | None:
    for candidate in candidates:
        if is_valid_session_id(candidate):
            return str(candidate)
    return None


def session_key_of(body: dict[str, Any]) -> object:
    """The session key the page passed with its session id (`customLlmExtraBody.session_key`)."""
    extra = body.get("elevenlabs_extra_body")
    return extra.get("session_key") if isinstance(extra, dict) else None


def last_message_is_from_user(messages: list[Any]) -> bool:
    return bool(messages) and isinstance(messages[-1], dict) and messages[-1].get("role") == "user"


def turn_key(messages: object) -> str:
    """What identifies one turn of a conversation: its messages as the caller sent them. ElevenLabs retries a
    failed custom-LLM request with identical messages; every new turn adds one."""
    return hashlib.sha256(orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
