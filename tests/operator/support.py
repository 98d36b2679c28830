"""What the operator's tests share: a VoiceAgent to start from (and the specs the render tests cover), the fake
Kubernetes API server with what a VoiceAgent needs, kopf's memo as the startup handler leaves it, and the handlers
called as kopf calls them, their status patch written as kopf writes it."""

from __future__ import annotations

import asyncio
import base64
import copy
import logging
from typing import Any

import kopf
from kubernetes import client as k8s

from glimpse_operator import handlers
from glimpse_operator.cluster import Cluster
from glimpse_operator.reconcile import Reconciler
from glimpse_operator.settings import OperatorSettings
from tests.fakes.elevenlabs_api import API_KEY, FakeElevenLabs
from tests.fakes.kubernetes_api import FakeKubernetes

NS = "voice"
DEPLOYMENT = "/apis/apps/v1/namespaces/voice/deployments/glimpse-museum-guide"
KEY_SECRET = "/api/v1/namespaces/voice/secrets/elevenlabs"


def written_voice_agent(name: str = "museum-guide", **spec_changes: Any) -> dict[str, Any]:
    """A minimal VoiceAgent as a person writes it, with `a__b=value` changes to its spec (None: without that field)."""
    body: dict[str, Any] = {
        "apiVersion": "glimpse.dev/v1alpha1", "kind": "VoiceAgent", "metadata": {"name": name, "namespace": "voice"},
        "spec": {"agent": {"name": "Museum guide", "prompt": "You are a guide."},
                 "llm": {"model": "gpt-4o-mini", "apiKeySecretRef": {"name": "openai"}},
                 "elevenlabs": {"apiKeySecretRef": {"name": "elevenlabs"}},
                 "ingress": {"host": "voice.example.com"}}}
    for dotted, value in spec_changes.items():
        node = body["spec"]
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return body


def voice_agent(**spec_changes: Any) -> dict[str, Any]:
    """The same VoiceAgent as the API server hands it to the operator: with its uid and generation."""
    body = written_voice_agent(**spec_changes)
    body["metadata"].update(uid="1b4e28ba-2fa1-11d2-883f-0016d3cca427", generation=1)
    return body


# spec.pod with every field set, as a platform team fits a proxy to its cluster (GKE Workload Identity, a dedicated
# node pool, zones, an OpenTelemetry collector with its own CA), still within OpenShift's restricted-v2.
FITTED_POD: dict[str, Any] = {
    "nodeSelector": {"kubernetes.io/os": "linux", "pool": "voice"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "voice", "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]}]}]}}},
    # no labelSelector: the operator spreads this VoiceAgent's own pods
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                   "whenUnsatisfiable": "ScheduleAnyway"}],
    "priorityClassName": "voice-critical",
    "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"},
    "labels": {"team": "voice", "cost-center": "cx-42"},
    "serviceAccount": {"create": True, "annotations": {
        "iam.gke.io/gcp-service-account": "glimpse-voice@project.iam.gserviceaccount.com"}},
    "env": [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "https://otel-collector.observability:4318"},
            {"name": "OTEL_EXPORTER_OTLP_CERTIFICATE", "value": "/etc/otel-ca/ca.crt"},
            {"name": "OTEL_EXPORTER_OTLP_HEADERS", "valueFrom": {"secretKeyRef": {"name": "otel-auth",
                                                                                  "key": "headers"}}},
            {"name": "GLIMPSE_LOG_LEVEL", "value": "DEBUG"}],
    "envFrom": [{"configMapRef": {"name": "voice-proxy-tuning"}}],
    "volumes": [{"name": "otel-ca", "configMap": {"name": "otel-ca"}}],
    "volumeMounts": [{"name": "otel-ca", "mountPath": "/etc/otel-ca", "readOnly": True}],
    "securityContext": {"supplementalGroups": [4242], "seccompProfile": {"type": "RuntimeDefault"}},
    "containerSecurityContext": {"runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
}

# The specs the render tests render (and the CRD tests show a cluster admits), as `voice_agent` changes.
MATRIX = {
    "minimal": {},
    "gcs-redis-tls": {"images__storage": "gs://bucket/glimpse", "proxy__store": "redis://redis:6379/0",
                      "proxy__replicas": 2, "ingress__tlsSecretName": "voice-tls", "ingress__className": "nginx",
                      "ingress__annotations": {"nginx.ingress.kubernetes.io/proxy-buffering": "off"}},
    "gemini-autoscaled": {"llm__provider": "gemini", "llm__model": "gemini-2.5-flash",
                          "proxy__autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6,
                                                 "metric": "activeStreams", "targetActiveStreams": 12},
                          "proxy__store": "rediss://redis:6380/0", "images__storage": "gs://bucket/gemini",
                          "proxy__resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}},
    "s3-minio-redis": {"images__storage": "s3://glimpse-images/voice", "images__s3EndpointUrl": "http://minio:9000",
                       "images__delivery": "inline", "proxy__store": "redis://redis:6379/0", "proxy__replicas": 3},
    "compatible-one-replica": {"llm__provider": "openai-compatible", "llm__baseUrl": "http://vllm:8000/v1",
                               "proxy__replicas": 1, "proxy__image": "registry.local/glimpse:dev",
                               "agent__voiceId": "voice123", "images__delivery": "inline"},
    # a Gateway API HTTPRoute instead of the Ingress, and one beside it (two listeners of one Gateway, two hosts)
    "gateway-route": {"ingress": None, "httpRoute": {"parentRefs": [{"name": "eg", "namespace": "envoy-gateway"}],
                                                     "hostnames": ["voice.gateway.example.com"]}},
    "route-beside-ingress": {"httpRoute": {
        "parentRefs": [{"name": "shared", "namespace": "infra", "sectionName": "https"},
                       {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "shared",
                        "namespace": "infra", "sectionName": "https-internal", "port": 443}],
        "hostnames": ["voice.example.org", "voice.internal.example.org"],
        "annotations": {"external-dns.alpha.kubernetes.io/ttl": "60"}}},
    "fitted-pods": {"pod": FITTED_POD, "images__storage": "gs://bucket/glimpse", "proxy__store": "redis://redis:6379/0",
                    "proxy__replicas": 3},
}
GATEWAY_CASES = ("gateway-route", "route-beside-ingress")


def secret(name: str, value: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS},
            "data": {"apiKey": base64.b64encode(value.encode()).decode()}}


async def start_cluster() -> FakeKubernetes:
    """The fake API server with the namespace and the two key Secrets a VoiceAgent names."""
    fake = await FakeKubernetes().start()
    fake.put("/api/v1/namespaces/voice", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    fake.put("/api/v1/namespaces/voice/secrets/openai", secret("openai", "sk-openai-test"))
    fake.put("/api/v1/namespaces/voice/secrets/elevenlabs", secret("elevenlabs", API_KEY))
    return fake


def new_memo(cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, **settings_given: Any) -> kopf.Memo:
    """What the startup handler leaves in kopf's memo, with the clients pointed at the fakes (a new one: what an
    operator that restarted has); `settings_given`: other OperatorSettings fields."""
    configuration = k8s.Configuration(host=cluster.base_url)
    configuration.api_key = {"BearerToken": "Bearer test-token"}
    settings = OperatorSettings(elevenlabs_base_url=elevenlabs.base_url, **settings_given)
    memo = kopf.Memo()
    memo.reconciler = Reconciler(Cluster(k8s.ApiClient(configuration)), settings)
    return memo


def voice_agent_path(body: dict[str, Any]) -> str:
    meta = body["metadata"]
    return f"/apis/glimpse.dev/v1alpha1/namespaces/{meta['namespace']}/voiceagents/{meta['name']}"


def stored(cluster: FakeKubernetes, body: dict[str, Any]) -> dict[str, Any]:
    """`body` created (or its spec changed) in the fake API server, as kubectl apply would; the object as stored."""
    return cluster.put(voice_agent_path(body), body)


def current(cluster: FakeKubernetes, body: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(cluster.objects[voice_agent_path(body)])


def write_status(cluster: FakeKubernetes, body: dict[str, Any], patch: kopf.Patch) -> None:
    """What kopf does with the handler's patch: a merge patch of the status."""
    path = voice_agent_path(body)
    if patch.get("status") and path in cluster.objects:
        obj = copy.deepcopy(cluster.objects[path])
        obj["status"] = {**obj.get("status", {}), **dict(patch["status"])}
        cluster.objects[path] = obj


async def run_reconcile(body: dict[str, Any], memo: kopf.Memo, cluster: FakeKubernetes | None = None,
                        **kwargs: Any) -> tuple[kopf.Patch, Exception | None]:
    """The create/update handler on `body` (stored in `cluster` first when given), then kopf's status write."""
    if cluster is not None and voice_agent_path(body) not in cluster.objects:
        body = stored(cluster, body)
    patch = kopf.Patch()
    error: Exception | None = None
    try:
        await asyncio.to_thread(handlers.reconcile, body=body, patch=patch, memo=memo, logger=logging.getLogger("test"),
                                **kwargs)
    except kopf.TemporaryError as exc:
        error = exc
    if cluster is not None:
        write_status(cluster, body, patch)
    return patch, error


async def run_drift(body: dict[str, Any], memo: kopf.Memo, cluster: FakeKubernetes) -> kopf.Patch:
    patch = kopf.Patch()
    await asyncio.to_thread(handlers.repair_drift, body=body, patch=patch, memo=memo)
    write_status(cluster, body, patch)
    return patch


def event_reasons(cluster: FakeKubernetes, type_: str | None = None) -> list[str]:
    return [e["reason"] for e in cluster.events("museum-guide") if type_ is None or e["type"] == type_]


def conditions(patch: kopf.Patch) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in patch["status"]["conditions"]}
