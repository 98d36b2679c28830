"""A Responses API request from ElevenLabs (agents whose custom LLM `api_type` is `responses`), translated
into what the upstream's `/responses` gets: the same rules as `completions.py`, on `input` items."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest
from .completions import check_common_fields, check_items, forwarded_fields

INPUT_ROLES = ("user", "assistant", "system", "developer")
_INPUT_ROLES = frozenset(INPUT_ROLES)

# Request fields of the OpenAI Responses API (CreateResponse in OpenAI's OpenAPI document); anything else
# (elevenlabs_extra_body, user_id, …) is dropped.
OPENAI_RESPONSES_FIELDS = frozenset({
    "background", "context_management", "conversation", "include", "input", "instructions", "max_output_tokens",
    "max_tool_calls", "metadata", "model", "moderation", "parallel_tool_calls", "previous_response_id", "prompt",
    "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention", "reasoning", "safety_identifier",
    "service_tier", "store", "stream", "stream_options", "temperature", "text", "tool_choice", "tools",
    "top_logprobs", "top_p", "truncation", "user",
})


def input_items(body: dict[str, Any], max_items: int) -> list[Any]:
    """`input` as a list of items (a plain string is one user message), after checking its shape."""
    value = body.get("input")
    if value is None:
        raise InvalidRequest("`input` is required.", param="input", code="missing_required_parameter")
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise InvalidRequest("`input` must be a string or a non-empty array of items.", param="input")
    if len(value) > max_items:
        raise InvalidRequest(f"Too many input items ({len(value)}; limit {max_items}).", param="input")
    check_items(value, "input", _INPUT_ROLES, role_required=False)  # function-call items carry no role
    check_common_fields(body)
    return value


def upstream_response_request(body: dict[str, Any], items: list[Any], default_model: str) -> dict[str, Any]:
    """The request to forward: Responses fields only, `user_id` mapped to `user`, `input` with the images."""
    payload = forwarded_fields(body, OPENAI_RESPONSES_FIELDS, default_model)
    payload["input"] = items
    return payload
