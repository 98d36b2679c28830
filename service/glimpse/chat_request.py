"""Shape checks for an incoming chat request, before anything is forwarded."""

from __future__ import annotations

from typing import Any

from .errors import ApiError

VALID_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def validate_chat_request(body: dict[str, Any], max_messages: int) -> None:
    messages = body.get("messages")
    if messages is None:
        raise ApiError(400, "`messages` is required.", param="messages", code="missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "`messages` must be a non-empty array.", param="messages")
    if len(messages) > max_messages:
        raise ApiError(400, f"Too many messages ({len(messages)}; limit {max_messages}).", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ApiError(400, f"messages[{index}] must be an object.", param=f"messages[{index}]")
        role = message.get("role")
        if not isinstance(role, str) or role not in VALID_ROLES:
            raise ApiError(400, f"messages[{index}].role must be one of {', '.join(sorted(VALID_ROLES))}.",
                           param=f"messages[{index}].role")
    for name, kind, label in (("model", str, "a string"), ("stream", bool, "a boolean"),
                              ("tools", list, "an array"), ("user_id", str | int, "a string")):
        if name in body and body[name] is not None and not isinstance(body[name], kind):
            raise ApiError(400, f"`{name}` must be {label}.", param=name)
