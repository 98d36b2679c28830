"""A VoiceAgent's spec with the CRD's defaults filled in, so render functions never guess."""

from __future__ import annotations

import copy
from typing import Any

PROVIDER_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta/openai/",
}

# spec.llm.apiType -> ElevenLabs' custom_llm.api_type: which OpenAI API ElevenLabs calls the proxy with
CUSTOM_LLM_API_TYPES = {"chatCompletions": "chat_completions", "responses": "responses"}

# Every field the CRD requires (a test keeps this in step with manifests/crd/voiceagent.yaml): the API server
# enforces them, but `glimpse-operator render` reads a file no API server has seen. Those under one of ROUTES are
# required only when that block is given.
REQUIRED_FIELDS = ("agent.name", "agent.prompt", "llm.model", "llm.apiKeySecretRef.name",
                   "elevenlabs.apiKeySecretRef.name", "ingress.host", "httpRoute.parentRefs", "httpRoute.hostnames")
# How ElevenLabs reaches the proxy: an Ingress, a Gateway API HTTPRoute, or both (the CRD requires one of them).
ROUTES = ("ingress", "httpRoute")

# The CRD's defaults, exactly (tests compare them with the API server's defaulting of manifests/crd/voiceagent.yaml):
# one replica with each pod's own memory and disk works on any cluster; more need Redis and GCS or S3 (a CEL rule
# says so).
DEFAULTS: dict[str, Any] = {
    "agent": {"firstMessage": "", "voiceId": "", "language": "en"},
    "llm": {"provider": "openai", "baseUrl": "", "apiType": "chatCompletions", "fallbacks": []},
    "images": {"storage": "", "s3EndpointUrl": "", "delivery": "url", "policy": "sticky", "detail": "auto",
               "maxBytes": 10485760, "ttlSeconds": 3600,
               "s3CredentialsSecretRef": {"name": "", "accessKeyIdKey": "accessKeyId",
                                          "secretAccessKeyKey": "secretAccessKey"}},
    "elevenlabs": {"agentId": ""},
    "proxy": {"replicas": 1, "image": "", "store": "", "resources": {},
              "autoscaling": {"enabled": False, "minReplicas": 2, "maxReplicas": 10,
                              "targetCPUUtilizationPercentage": 70, "metric": "cpu", "targetActiveStreams": 20}},
    "pod": {},  # nothing of its own: pod_settings.py merges it over the operator's defaults
}


# The defaults inside spec.ingress and spec.httpRoute, filled in only when the block is there (neither has a default
# of its own: an absent block is no Ingress, or no HTTPRoute).
ROUTE_DEFAULTS: dict[str, dict[str, Any]] = {
    "ingress": {"className": "", "tlsSecretName": "", "annotations": {}},
    "httpRoute": {"annotations": {}},
}


class InvalidSpec(ValueError):
    """The spec cannot work: e.g. openai-compatible without baseUrl, or (in a file the API server never checked)
    a required field missing."""


# each item of spec.llm.fallbacks
FALLBACK_DEFAULTS: dict[str, Any] = {"provider": "openai", "baseUrl": ""}


def with_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(spec)
    _merge(result, DEFAULTS)
    for block, defaults in ROUTE_DEFAULTS.items():
        if isinstance(result.get(block), dict):
            _merge(result[block], defaults)
    fallbacks = [f for f in result["llm"]["fallbacks"] if isinstance(f, dict)]
    for fallback in fallbacks:
        _merge(fallback, FALLBACK_DEFAULTS)
    for ref in (result["llm"].get("apiKeySecretRef"), result["elevenlabs"].get("apiKeySecretRef"),
                *(f.get("apiKeySecretRef") for f in fallbacks)):
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


def check_required(spec: dict[str, Any]) -> None:
    """An `InvalidSpec` naming the first required field the spec lacks (or leaves empty)."""
    if not any(spec.get(block) for block in ROUTES):
        raise InvalidSpec("spec.ingress or spec.httpRoute is required: ElevenLabs must reach the proxy")
    for path in REQUIRED_FIELDS:
        if path.split(".")[0] in ROUTES and path.split(".")[0] not in spec:
            continue
        node: Any = spec
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if node is None or node == "" or node == []:
            raise InvalidSpec(f"spec.{path} is required")


def upstream_base_url(spec: dict[str, Any]) -> str:
    return llm_base_url(spec["llm"], "spec.llm")


def llm_base_url(llm: dict[str, Any], where: str) -> str:
    """The base URL of spec.llm (or of one of its fallbacks, `where` naming it in errors)."""
    if llm["baseUrl"]:
        return str(llm["baseUrl"])
    if llm["provider"] not in PROVIDER_BASE_URLS:
        raise InvalidSpec(f"{where}.baseUrl is required when {where}.provider is openai-compatible")
    return PROVIDER_BASE_URLS[llm["provider"]]


def fallback_base_urls(spec: dict[str, Any]) -> list[str]:
    return [llm_base_url(f, f"spec.llm.fallbacks[{i}]") for i, f in enumerate(spec["llm"]["fallbacks"])]


def custom_llm_api_type(spec: dict[str, Any]) -> str:
    api_type = spec["llm"]["apiType"]
    if api_type not in CUSTOM_LLM_API_TYPES:
        raise InvalidSpec(f"spec.llm.apiType must be one of {', '.join(CUSTOM_LLM_API_TYPES)}")
    return CUSTOM_LLM_API_TYPES[api_type]


def public_host(spec: dict[str, Any]) -> str:
    """The host ElevenLabs calls: the HTTPRoute's first hostname when there is a route (beside an Ingress too: adding
    a route moves the agent to it), else the Ingress's host."""
    if route := spec.get("httpRoute"):
        return str(route["hostnames"][0])
    if ingress := spec.get("ingress"):
        return str(ingress["host"])
    raise InvalidSpec("spec.ingress or spec.httpRoute is required: ElevenLabs must reach the proxy")


def public_url(spec: dict[str, Any]) -> str:
    """ElevenLabs calls the custom LLM over the internet: always HTTPS, terminated at the ingress or the Gateway."""
    return f"https://{public_host(spec)}"
