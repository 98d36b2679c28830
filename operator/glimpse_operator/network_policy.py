"""Pure: the NetworkPolicy of one VoiceAgent's proxy pods. In: the API port from the ingress controller's peers, the
metrics port from Prometheus' peers. Out: DNS, and TCP to the ports the proxy's own settings name (HTTPS, the LLM
endpoints, Redis, an S3-compatible endpoint), the cloud's credential endpoints when the storage uses the pod's own
identity, plus extra rules (OTLP, an HTTP proxy). The chart's standalone proxy
renders the same policy for the same settings (tests/delivery/test_proxy_parity.py)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .spec import fallback_base_urls, upstream_base_url

# What a VoiceAgent may set in spec.networkPolicy; each field it leaves out is the operator's
# (GLIMPSE_PROXY_NETWORK_POLICY, the chart's operator.proxyDefaults.networkPolicy).
FIELDS = ("enabled", "ingressFrom", "metricsFrom", "extraEgress")
# The operator's own defaults: on, the proxy's ports open to every peer, no extra egress.
DEFAULTS: dict[str, Any] = {"enabled": True, "ingressFrom": [], "metricsFrom": [], "extraEgress": []}
DNS_PORT = 53
HTTPS_PORT = 443  # always: ElevenLabs (signed URLs), GCS, AWS S3, the providers' endpoints
# A URL without a port uses its scheme's (redis-py: 6379 for redis:// and rediss:// alike)
SCHEME_PORTS = {"http": 80, "https": 443, "redis": 6379, "rediss": 6379}
# Where gs:// and keyless s3:// storage get the pod's own credentials: the metadata server on 169.254.169.254:80 and,
# with GKE Dataplane V2, 169.254.169.252:988 (cloud.google.com/kubernetes-engine/docs/how-to/workload-identity);
# the EKS Pod Identity agent on 169.254.170.23:80 (docs.aws.amazon.com/eks/latest/userguide/pod-id-agent-setup.html).
CREDENTIAL_CIDRS = ("169.254.169.254/32", "169.254.169.252/32", "169.254.170.23/32")
CREDENTIAL_PORTS = (80, 988)


def otlp_egress(tracing: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The egress rule to the proxies' OTLP collector (tracing.py): TCP to its endpoint's port, to the egressTo peers
    (none: any address); none without an endpoint."""
    endpoint = str((tracing or {}).get("otlpEndpoint") or "")
    port = url_port(endpoint) if endpoint else None
    if tracing is None or port is None:
        return []
    rule: dict[str, Any] = {"ports": [{"port": port, "protocol": "TCP"}]}
    if peers := list(tracing.get("egressTo") or []):
        rule["to"] = peers
    return [rule]


def url_port(url: str) -> int | None:
    """The TCP port a URL connects to: its own, else its scheme's; None for a URL with neither."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # not a port number: the proxy would refuse the URL anyway
        return None
    return port or SCHEME_PORTS.get(parts.scheme)


def egress_ports(spec: dict[str, Any]) -> list[int]:
    """The TCP ports the proxy connects to, from its settings: HTTPS, every upstream's base URL, the Redis store, the
    S3-compatible endpoint. A Service whose targetPort differs from its port needs an extra egress rule: policies
    see the pod's port."""
    urls = [upstream_base_url(spec), *fallback_base_urls(spec), spec["images"]["s3EndpointUrl"]]
    if spec["proxy"]["store"].startswith(("redis://", "rediss://")):
        urls.append(spec["proxy"]["store"])
    return sorted({HTTPS_PORT} | {port for url in urls if url and (port := url_port(url)) is not None})


def uses_pod_identity(spec: dict[str, Any]) -> bool:
    """Whether the proxy's storage authenticates as the pod (GKE Workload Identity or the node's account, EKS Pod
    Identity, an EC2 instance profile): gs://, or s3:// without spec.images.s3CredentialsSecretRef. IRSA needs only
    STS on 443, but the SDK cannot tell in advance which one the pod has."""
    storage = spec["images"]["storage"]
    keyless_s3 = storage.startswith("s3://") and not spec["images"]["s3CredentialsSecretRef"]["name"]
    return storage.startswith("gs://") or keyless_s3


def credential_egress() -> dict[str, Any]:
    """Egress to the link-local credential endpoints, on their ports only."""
    return {"to": [{"ipBlock": {"cidr": cidr}} for cidr in CREDENTIAL_CIDRS],
            "ports": [{"port": port, "protocol": "TCP"} for port in CREDENTIAL_PORTS]}


def policy_settings(spec: dict[str, Any], defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """spec.networkPolicy, each field it leaves out taken from the operator's `defaults` (DEFAULTS without)."""
    base = DEFAULTS if defaults is None else defaults
    own = spec.get("networkPolicy") or {}
    return {key: copy.deepcopy(own[key] if key in own else base.get(key, DEFAULTS[key])) for key in FIELDS}


def _port_rule(port: int, peers: list[dict[str, Any]]) -> dict[str, Any]:
    """Ingress to one port: from `peers`, or from anywhere when there are none (a rule without `from`)."""
    rule: dict[str, Any] = {"ports": [{"port": port, "protocol": "TCP"}]}
    if peers:
        rule["from"] = peers
    return rule


def network_policy_spec(pod_selector: dict[str, str], spec: dict[str, Any], port: int, metrics_port: int,
                        defaults: Mapping[str, Any] | None = None,
                        tracing: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The policy's spec for the pods `pod_selector` selects, out to the `tracing` settings' collector too; None when
    it is turned off."""
    settings = policy_settings(spec, defaults)
    if not settings["enabled"]:
        return None
    return {
        "podSelector": {"matchLabels": dict(pod_selector)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [_port_rule(port, settings["ingressFrom"]), _port_rule(metrics_port, settings["metricsFrom"])],
        "egress": [
            {"ports": [{"port": DNS_PORT, "protocol": "UDP"}, {"port": DNS_PORT, "protocol": "TCP"}]},
            {"ports": [{"port": p, "protocol": "TCP"} for p in egress_ports(spec)]},
            *([credential_egress()] if uses_pod_identity(spec) else []),
            *otlp_egress(tracing),
            *settings["extraEgress"],
        ],
    }
