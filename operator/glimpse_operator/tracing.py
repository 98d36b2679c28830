"""Pure: where the proxies send their traces. The operator's `GLIMPSE_PROXY_TRACING` (the chart's
`operator.proxyDefaults.tracing`; the standalone proxy's `proxy.tracing` renders the same) becomes the standard
OpenTelemetry variables the proxy's SDK reads (service/glimpse/observability/tracing.py: OTLP over HTTP, exported
only when OTEL_EXPORTER_OTLP_ENDPOINT is set) and a header Secret read by the kubelet; network_policy.otlp_egress
opens the collector's port.

Without an endpoint nothing is set: a proxy's configuration, and so its pods, stay as they were. A VoiceAgent's
spec.pod.env may set any `OTEL_*` variable itself (env wins over the ConfigMap's envFrom): its own endpoint, sampler
or service name; the egress to another collector is then its spec.networkPolicy.extraEgress.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
HEADERS = "OTEL_EXPORTER_OTLP_HEADERS"  # e.g. "authorization=Bearer …" (W3C baggage format), from a Secret only
# What every proxy's traces say about where they come from, beside the user's resource attributes
NAMESPACE_ATTRIBUTE = "k8s.namespace.name"
VOICE_AGENT_ATTRIBUTE = "glimpse.voiceagent"  # the label the ServiceMonitor gives the same proxy's series
# Every variable set here: the operator's, yet not in render.OPERATOR_ENV, so a VoiceAgent's spec.pod.env may set each
VARIABLES = (ENDPOINT, "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER",
             "OTEL_TRACES_SAMPLER_ARG", HEADERS)
SAMPLERS = ("always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off",
            "parentbased_traceidratio")


def endpoint(tracing: Mapping[str, Any] | None) -> str:
    """The collector's OTLP/HTTP base URL; empty: tracing is off."""
    return str((tracing or {}).get("otlpEndpoint") or "")


def resource_attributes(tracing: Mapping[str, Any], namespace: str, agent_name: str) -> str:
    """OTEL_RESOURCE_ATTRIBUTES: the namespace and the VoiceAgent, then the user's (which win), sorted by key."""
    attributes = {NAMESPACE_ATTRIBUTE: namespace, VOICE_AGENT_ATTRIBUTE: agent_name,
                  **dict(tracing.get("resourceAttributes") or {})}
    return ",".join(f"{key}={value}" for key, value in sorted(attributes.items()))


def tracing_environment(tracing: Mapping[str, Any] | None, namespace: str, agent_name: str) -> dict[str, str]:
    """The proxy's OTEL_* configuration (its ConfigMap's); empty without an endpoint."""
    if not tracing or not endpoint(tracing):
        return {}
    environment = {ENDPOINT: endpoint(tracing),
                   "OTEL_SERVICE_NAME": str(tracing.get("serviceName") or "glimpse"),
                   "OTEL_RESOURCE_ATTRIBUTES": resource_attributes(tracing, namespace, agent_name)}
    if tracing.get("sampler"):
        environment["OTEL_TRACES_SAMPLER"] = str(tracing["sampler"])
    if tracing.get("samplerArg"):
        environment["OTEL_TRACES_SAMPLER_ARG"] = str(tracing["samplerArg"])
    return environment


def headers_env(tracing: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """OTEL_EXPORTER_OTLP_HEADERS from the Secret headersSecret names, in the proxy's own namespace, read by the
    kubelet (the operator never sees it). Optional: a missing Secret sends traces without the headers (the collector
    may refuse them) rather than keep the voice agent's pods from starting."""
    secret = (tracing or {}).get("headersSecret") or {}
    if not endpoint(tracing) or not secret.get("name"):
        return []
    return [{"name": HEADERS, "valueFrom": {"secretKeyRef": {
        "name": secret["name"], "key": secret.get("key") or "headers", "optional": True}}}]

