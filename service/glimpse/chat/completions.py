"""A Chat Completions request from ElevenLabs, translated into what the upstream gets.

ElevenLabs' request is OpenAI Chat Completions plus its own fields (`user_id`, `elevenlabs_extra_body`,
…). Here: the shape checks before anything is forwarded, and the translation: OpenAI fields only,
`user_id` mapped to `user`, the conversation's images in `messages`, a default model. `responses.py` is the
same for the Responses API.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_ROLES = frozenset(ROLES)

# Request fields of OpenAI Chat Completions (CreateChatCompletionRequest in OpenAI's OpenAPI document);
# anything else (elevenlabs_extra_body, user_id, …) is dropped.
OPENAI_CHAT_FIELDS = frozenset({
    "model", "messages", "audio", "frequency_penalty", "function_call", "functions", "logit_bias",
    "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities", "moderation", "n",
    "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key", "prompt_cache_options",
    "prompt_cache_retention", "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier",
    "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p",
    "user", "verbosity", "web_search_options",
})


def validate_chat_request(body: dict[str, Any], max_messages: int) -> None:
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest("`messages` is required.", param="messages", code="missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("`messages` must be a non-empty array.", param="messages")
    if len(messages) > max_messages:
        raise InvalidRequest(f"Too many messages ({len(messages)}; limit {max_messages}).", param="messages")
    check_items(messages, "messages", _ROLES, role_required=True)
    check_common_fields(body)


def check_items(items: list[Any], name: str, roles: frozenset[str], *, role_required: bool) -> None:
    """Each of `items` (messages or input items) is an object with a known role."""
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidRequest(f"{name}[{index}] must be an object.", param=f"{name}[{index}]")
        role = item.get("role")
        if (role is not None or role_required) and (not isinstance(role, str) or role not in roles):
            raise InvalidRequest(f"{name}[{index}].role must be one of {', '.join(sorted(roles))}.",
                                 param=f"{name}[{index}].role")


def check_common_fields(body: dict[str, Any]) -> None:
    """The fields both APIs share, and ElevenLabs' `user_id`, have the types they must."""
    for name, kind, label in (("model", str, "a string"), ("stream", bool, "a boolean"),
                              ("tools", list, "an array"), ("user_id", str | int, "a string")):
        if name in body and body[name] is not None and not isinstance(body[name], kind):
            raise InvalidRequest(f"`{name}` must be {label}.", param=name)


def upstream_request(body: dict[str, Any], messages: list[Any], default_model: str) -> dict[str, Any]:
    """The request to forward: OpenAI fields only, `user_id` mapped to `user`, `messages` with the images."""
    payload = forwarded_fields(body, OPENAI_CHAT_FIELDS, default_model)
    payload["messages"] = messages
    return payload


def forwarded_fields(body: dict[str, Any], fields: frozenset[str], default_model: str) -> dict[str, Any]:
    """`body`'s fields the upstream API knows, `user_id` mapped to `user`, the model defaulted."""
    payload = {key: value for key, value in body.items() if key in fields}
    user_id = body.get("user_id")
    if user_id is not None and "user" not in payload:
        payload["user"] = str(user_id)
    if not payload.get("model"):
        if not default_model:
            raise InvalidRequest("`model` is required (or set GLIMPSE_UPSTREAM_MODEL).", param="model")
        payload["model"] = default_model
    return payload
