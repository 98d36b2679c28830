"""The provider interface, and what every provider does the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class TurnContext:
    """What an adapter may use besides the request: the conversation and the configured voice defaults."""

    conversation_id: str | None = None
    reasoning_effort: str = "low"


class Provider:
    """An OpenAI-compatible server that takes requests as they are (the base for the others)."""

    name: ClassVar[str]
    otel_name: ClassVar[str]  # gen_ai.provider.name (OpenTelemetry GenAI semantic conventions)
    has_responses_api: ClassVar[bool] = True
    inline_images_only: ClassVar[bool] = False  # remote image URLs refused: images go as data: URLs

    def adapt_chat(self, payload: dict[str, Any], context: TurnContext) -> dict[str, Any]:
        """The Chat Completions request for this provider (a new dict when anything changes)."""
        return payload

    def adapt_response(self, payload: dict[str, Any], context: TurnContext) -> dict[str, Any]:
        """The Responses API request for this provider."""
        return payload
