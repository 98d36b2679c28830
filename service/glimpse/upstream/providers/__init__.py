"""What each kind of upstream accepts: one small module per provider, chosen by name or by the base URL's host.

A provider adapts the request Glimpse forwards (already OpenAI-shaped) to what that provider takes: fields it
refuses are mapped or dropped, defaults voice wants are set. It never touches the answer: the caller's SSE comes
back byte for byte.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .base import Provider, TurnContext
from .compatible import OpenAICompatible
from .demo import Demo
from .gemini import Gemini
from .openai import OpenAI

PROVIDERS: dict[str, Provider] = {p.name: p for p in (OpenAI(), Gemini(), OpenAICompatible(), Demo())}
PROVIDER_NAMES = tuple(PROVIDERS)

__all__ = ["PROVIDERS", "PROVIDER_NAMES", "Provider", "TurnContext", "infer_provider", "provider_for"]


def infer_provider(base_url: str) -> str:
    """The provider a base URL's host names: api.openai.com, generativelanguage.googleapis.com, or any other."""
    host = (urlsplit(base_url).hostname or "").lower()
    if host == "api.openai.com" or host.endswith(".openai.com"):
        return OpenAI.name
    if host == "generativelanguage.googleapis.com":
        return Gemini.name
    return OpenAICompatible.name


def provider_for(name: str | None, base_url: str) -> Provider:
    return PROVIDERS[name or infer_provider(base_url)]
