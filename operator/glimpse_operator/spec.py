"""A VoiceAgent's spec with the CRD's defaults filled in, so render functions never guess."""

from __future__ import annotations

import copy
from typing import Any

PROVIDER_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta/openai/",
}

DEFAULTS: dict[str, Any] = {
    "agent": {"firstMessage": "", "voiceId": "", "language": "en"},
    "llm": {"provider": "openai", "baseUrl": ""},
    "images": {"storage": "", "delivery": "url", "policy": "sticky", "detail": "auto", "maxBytes": 10485760,
               "ttlSeconds": 3600},
    "elevenlabs": {"agentId": ""},
    "ingress": {"className": "", "tlsSecretName": "", "annotations": {}},
    "proxy": {"replicas": 2, "image": "", "store": "", "resources": {},
              "autoscaling": {"enabled": False, "minReplicas": 2, "maxReplicas": 10,
                              "targetCPUUtilizationPercentage": 70}},
}


class InvalidSpec(ValueError):
    """The spec passed the CRD schema but cannot work (e.g. openai-compatible without baseUrl)."""


def with_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(spec)
    _merge(result, DEFAULTS)
    for ref in (result["llm"].get("apiKeySecretRef"), result["elevenlabs"].get("apiKeySecretRef")):
        if isinstance(ref, dict):
            ref.setdefault("key", "apiKey")
    return result


def _merge(target: dict[str, Any], defaults: dict[str, Any]) -> None:
    for key, value in defaults.items():
        if isinstance(value, dict):
            node = target.setdefault(key, {})
            if isinstance(node, dict):
                _merge(node, value)
        else:
            target.setdefault(key, copy.deepcopy(value))


def upstream_base_url(spec: dict[str, Any]) -> str:
    llm = spec["llm"]
    if llm["baseUrl"]:
        return str(llm["baseUrl"])
    if llm["provider"] not in PROVIDER_BASE_URLS:
        raise InvalidSpec("spec.llm.baseUrl is required when spec.llm.provider is openai-compatible")
    return PROVIDER_BASE_URLS[llm["provider"]]


def public_url(spec: dict[str, Any]) -> str:
    """ElevenLabs calls the custom LLM over the internet: always HTTPS, terminated at the ingress."""
    return f"https://{spec['ingress']['host']}"
