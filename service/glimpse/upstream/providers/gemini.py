"""Gemini's OpenAI-compatible endpoint (generativelanguage.googleapis.com/v1beta/openai/): Chat Completions only,
images only inline, and a shorter list of request fields.

ai.google.dev/gemini-api/docs/openai: images are passed as base64 `data:` URLs in `image_url` (remote URLs are
not fetched); the endpoint serves chat completions, embeddings, images and models, not the Responses API. Fields
outside what it documents are dropped here rather than refused there.
"""

from __future__ import annotations

from typing import Any

from .base import Provider, TurnContext

# The Chat Completions fields Gemini's compatibility layer takes (ai.google.dev/gemini-api/docs/openai and its
# "extra_body" section); ElevenLabs' other OpenAI fields (user, store, metadata, logit_bias, prompt_cache_key,
# service_tier …) are dropped.
SUPPORTED_CHAT_FIELDS = frozenset({
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p",
    "n", "stop", "tools", "tool_choice", "response_format", "reasoning_effort", "seed", "presence_penalty",
    "frequency_penalty", "parallel_tool_calls",
})


class Gemini(Provider):
    name = "gemini"
    otel_name = "gcp.gemini"  # gen_ai.provider.name for the Gemini API (AI Studio)
    has_responses_api = False
    inline_images_only = True

    def adapt_chat(self, payload: dict[str, Any], context: TurnContext) -> dict[str, Any]:
        if payload.keys() <= SUPPORTED_CHAT_FIELDS:
            return payload
        return {k: v for k, v in payload.items() if k in SUPPORTED_CHAT_FIELDS}
