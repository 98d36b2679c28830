"""Any other OpenAI-compatible server (vLLM, Ollama, LiteLLM, a gateway): what it accepts is its own business,
so the request goes as ElevenLabs sent it."""

from __future__ import annotations

from .base import Provider


class OpenAICompatible(Provider):
    name = "openai-compatible"
    otel_name = "openai_compatible"  # not a registered gen_ai.provider.name value: a custom one, as allowed
