"""OpenAI (api.openai.com): reasoning models refuse what ElevenLabs sends, and a prompt cache key per conversation.

Reasoning models (the o-series and the gpt-5 family, but not the `gpt-5*-chat*` chat models) answer 400 to
`max_tokens` ("Use 'max_completion_tokens' instead"; API reference, Chat Completions, `max_tokens`: "not
compatible with o-series models") and to sampling parameters other than their defaults (platform.openai.com/docs/
guides/reasoning: temperature, top_p, presence_penalty, frequency_penalty, logprobs, top_logprobs and logit_bias
are not supported). ElevenLabs sends `max_tokens` and `temperature` on every turn. Voice wants the first words
fast, so a reasoning model gets a low `reasoning_effort` unless the caller chose one.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .base import Provider, TurnContext

# o1, o3-mini, o4-mini-2025-04-16, gpt-5, gpt-5-mini, gpt-5.1 …; not gpt-5-chat-latest, gpt-5.1-chat-latest
REASONING_MODEL = re.compile(r"^(o\d|gpt-5)(?!.*-chat)")
UNSUPPORTED_SAMPLING_CHAT = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "logprobs",
                             "top_logprobs", "logit_bias")
UNSUPPORTED_SAMPLING_RESPONSES = ("temperature", "top_p", "top_logprobs")
PROMPT_CACHE_KEY_PREFIX = "glimpse-"


def is_reasoning_model(model: object) -> bool:
    return isinstance(model, str) and REASONING_MODEL.match(model.rsplit("/", 1)[-1]) is not None


def prompt_cache_key(conversation_id: str) -> str:
    """Routes every turn of one conversation to the same cache (platform.openai.com/docs/guides/prompt-caching:
    `prompt_cache_key` "influences routing" of requests sharing a prefix); a digest, so the id never leaves."""
    return PROMPT_CACHE_KEY_PREFIX + hashlib.sha256(conversation_id.encode()).hexdigest()[:32]


class OpenAI(Provider):
    name = "openai"
    otel_name = "openai"

    def adapt_chat(self, payload: dict[str, Any], context: TurnContext) -> dict[str, Any]:
        adapted = self._cache_key(payload, context)
        if not is_reasoning_model(payload.get("model")):
            return adapted
        adapted = {k: v for k, v in adapted.items() if k not in UNSUPPORTED_SAMPLING_CHAT}
        if "max_tokens" in adapted:
            max_tokens = adapted.pop("max_tokens")
            adapted.setdefault("max_completion_tokens", max_tokens)
        adapted.setdefault("reasoning_effort", context.reasoning_effort)
        return adapted

    def adapt_response(self, payload: dict[str, Any], context: TurnContext) -> dict[str, Any]:
        adapted = self._cache_key(payload, context)
        if not is_reasoning_model(payload.get("model")):
            return adapted
        adapted = {k: v for k, v in adapted.items() if k not in UNSUPPORTED_SAMPLING_RESPONSES}
        reasoning = adapted.get("reasoning")
        if not (isinstance(reasoning, dict) and reasoning.get("effort")):
            adapted["reasoning"] = {**(reasoning if isinstance(reasoning, dict) else {}),
                                    "effort": context.reasoning_effort}
        return adapted

    @staticmethod
    def _cache_key(payload: dict[str, Any], context: TurnContext) -> dict[str, Any]:
        if context.conversation_id is None or payload.get("prompt_cache_key"):
            return payload
        return {**payload, "prompt_cache_key": prompt_cache_key(context.conversation_id)}
