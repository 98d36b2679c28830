"""Glimpse: an image-aware, OpenAI-compatible Custom LLM proxy for ElevenLabs voice agents."""

__version__ = "0.1.0"
