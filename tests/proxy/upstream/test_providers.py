"""Provider adapters (pure): what each upstream gets from one ElevenLabs-shaped request; and the circuit breaker."""

from __future__ import annotations

from typing import Any

import pytest

from glimpse.upstream.breaker import CircuitBreaker
from glimpse.upstream.providers import PROVIDERS, TurnContext, infer_provider, provider_for
from glimpse.upstream.providers.openai import is_reasoning_model, prompt_cache_key

# what ElevenLabs sends on every turn (besides messages): max_tokens and temperature among them
ELEVENLABS_FIELDS: dict[str, Any] = {"stream": True, "max_tokens": 5000, "temperature": 0.5, "user": "conv_1",
                                     "tools": [], "stream_options": {"include_usage": True}}
CONTEXT = TurnContext(conversation_id="page-session-1", reasoning_effort="low")


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **ELEVENLABS_FIELDS, **extra}


@pytest.mark.parametrize(("url", "provider"), [
    ("https://api.openai.com/v1", "openai"), ("https://eu.api.openai.com/v1", "openai"),
    ("https://generativelanguage.googleapis.com/v1beta/openai/", "gemini"),
    ("http://vllm.internal:8000/v1", "openai-compatible"), ("https://api.openai.com.evil.test/v1", "openai-compatible"),
])
def test_the_provider_is_inferred_from_the_host(url: str, provider: str) -> None:
    assert infer_provider(url) == provider
    assert provider_for(None, url).name == provider
    assert provider_for("openai-compatible", url).name == "openai-compatible"  # set explicitly, it wins


@pytest.mark.parametrize(("model", "reasoning"), [
    ("gpt-5", True), ("gpt-5-mini", True), ("gpt-5.1", True), ("gpt-5-nano-2025-08-07", True), ("o3", True),
    ("o4-mini", True), ("o1", True), ("gpt-5-chat-latest", False), ("gpt-5.1-chat-latest", False),
    ("gpt-4o-mini", False), ("gpt-4.1", False), ("omni-moderation-latest", False),
])
def test_reasoning_models_are_told_apart(model: str, reasoning: bool) -> None:
    assert is_reasoning_model(model) is reasoning


def test_a_reasoning_model_gets_what_it_accepts() -> None:
    sent = PROVIDERS["openai"].adapt_chat(chat("gpt-5-mini"), CONTEXT)
    assert "max_tokens" not in sent and sent["max_completion_tokens"] == 5000
    assert "temperature" not in sent
    assert sent["reasoning_effort"] == "low"
    assert sent["prompt_cache_key"] == prompt_cache_key("page-session-1")
    assert "page-session-1" not in sent["prompt_cache_key"]  # the session id never leaves the proxy
    caller_chose = PROVIDERS["openai"].adapt_chat(chat("o4-mini", reasoning_effort="high", max_completion_tokens=9),
                                                  CONTEXT)
    assert caller_chose["reasoning_effort"] == "high" and caller_chose["max_completion_tokens"] == 9


def test_a_chat_model_on_openai_keeps_its_sampling_and_gets_a_cache_key() -> None:
    request = chat("gpt-4o-mini")
    sent = PROVIDERS["openai"].adapt_chat(request, CONTEXT)
    assert sent == {**request, "prompt_cache_key": prompt_cache_key("page-session-1")}
    own_key = PROVIDERS["openai"].adapt_chat(chat("gpt-4o-mini", prompt_cache_key="mine"), CONTEXT)
    assert own_key["prompt_cache_key"] == "mine"
    assert "prompt_cache_key" not in PROVIDERS["openai"].adapt_chat(request, TurnContext(None))


def test_a_reasoning_model_on_the_responses_api() -> None:
    request = {"model": "gpt-5", "input": "hi", "temperature": 0.5, "max_output_tokens": 100}
    sent = PROVIDERS["openai"].adapt_response(request, CONTEXT)
    assert "temperature" not in sent and sent["max_output_tokens"] == 100
    assert sent["reasoning"] == {"effort": "low"}


def test_gemini_gets_only_its_fields_and_no_responses_api() -> None:
    gemini = PROVIDERS["gemini"]
    sent = gemini.adapt_chat(chat("gemini-2.5-flash", store=True, metadata={"a": "b"}, logit_bias={"1": 1}), CONTEXT)
    assert {"user", "store", "metadata", "logit_bias", "prompt_cache_key"}.isdisjoint(sent)
    assert sent["max_tokens"] == 5000 and sent["temperature"] == 0.5 and sent["messages"]
    assert gemini.inline_images_only and not gemini.has_responses_api


def test_an_openai_compatible_server_gets_the_request_as_it_came() -> None:
    request = chat("llama-3.1-8b")
    assert PROVIDERS["openai-compatible"].adapt_chat(request, CONTEXT) is request


def test_the_breaker_opens_after_failures_in_a_row_and_lets_one_trial_through() -> None:
    now = [100.0]
    breaker = CircuitBreaker(failures=3, cooldown=30, clock=lambda: now[0])
    breaker.failed()
    breaker.failed()
    breaker.succeeded()  # not in a row
    breaker.failed()
    breaker.failed()
    assert breaker.allows() and breaker.state == "closed"
    breaker.failed()
    assert breaker.state == "open" and not breaker.allows()
    now[0] += 30
    assert breaker.state == "half_open"
    assert breaker.allows()  # the trial
    assert not breaker.allows()  # the others keep skipping it while it runs
    breaker.failed()
    assert not breaker.allows()
    now[0] += 30
    assert breaker.allows()
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.allows()
