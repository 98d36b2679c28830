"""Pure functions: a VoiceAgent (with defaults) in, the Kubernetes objects and ElevenLabs agent it wants out.

Nothing here talks to an API; the handlers apply what these return.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from glimpse.sizing import DecodeBudget, memory_limit_mib

from . import GROUP, KIND, VERSION
from .network_policy import network_policy_spec
from .spec import custom_llm_api_type, fallback_base_urls, public_url, upstream_base_url
from .tracing import headers_env, tracing_environment

PORT = 8080
METRICS_PORT = 9090  # /metrics alone: the Service exposes it, the Ingress routes only to PORT
# The proxy's drain on SIGTERM (GLIMPSE_SHUTDOWN_GRACE_SECONDS), and the pod's grace above it: Kubernetes SIGKILLs at
# terminationGracePeriodSeconds, and the drain must be over before (the margin covers start-up of the shutdown).
SHUTDOWN_GRACE_SECONDS = 25
TERMINATION_GRACE_SECONDS = SHUTDOWN_GRACE_SECONDS + 5
# Whose X-Forwarded-For the proxy believes (its rate limits key on the caller's address): the cluster's private
# networks, where the ingress controller runs; a caller outside them cannot pose as another address.
TRUSTED_PROXIES = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7"
SECRET_KEYS = ("customLlmKey", "signingSecret")

# The conversation-socket events the page (frontend/src/lib/useVoiceSession.ts, @elevenlabs/react) relies on. Sent as
# the whole list: the API documents no default ("Not all client events are enabled by default", ElevenLabs' JS SDK
# docs) and ElevenLabs' own CLI template enables only audio and interruption (elevenlabs/cli src/agents/templates.ts).
CLIENT_EVENTS = (
    "conversation_initiation_metadata",  # the SDK waits for it to connect (@elevenlabs/client WebSocketConnection.ts)
    "ping",  # the SDK answers each with a pong (@elevenlabs/client BaseConversation.ts); the page's liveness watch
    "audio",  # the agent's voice, and isSpeaking; dashboard: 'The "audio" event must always be enabled'
    "interruption",  # stops playback when the person talks; without it the agent "will ignore user interruption"
    "user_transcript",  # onMessage, role user: the person's side of the live transcript
    # the person's words while they speak: the SDK hands events it has no case for to onDebug (BaseConversation.ts)
    "tentative_user_transcript",
    "agent_response",  # onMessage, role agent: the agent's side
    "agent_response_correction",  # onAgentResponseCorrection: the reply cut where the person interrupted
    "agent_tool_response",  # the SDK ends the session on the end_call tool's response (BaseConversation.ts)
)
# The agent may hang up when the person says goodbye; agents created through the API have no end_call unless
# it is added (ElevenLabs docs, "End call" tool). ElevenLabs then offers it to the custom LLM in `tools`.
END_CALL_TOOL = {"type": "system", "name": "end_call", "description": "", "params": {"system_tool_type": "end_call"}}


def object_name(agent_name: str) -> str:
    return f"glimpse-{agent_name}"


# Every object the operator makes is named object_name(name), and the Service's name must be a DNS-1035 label of at most
# 63 characters (the tightest of them; the instance label value allows 63 too): the CRD refuses longer names (a test
# keeps its metadata.name maxLength and CEL rule at this number).
MAX_NAME_LENGTH = 63 - len(object_name(""))


def labels(agent_name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "glimpse", "app.kubernetes.io/component": "proxy",
            "app.kubernetes.io/instance": agent_name, "app.kubernetes.io/managed-by": "glimpse-operator"}


def selector(agent_name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "glimpse", "app.kubernetes.io/instance": agent_name}


def owner_reference(body: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": body["metadata"]["name"],
            "uid": body["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def controller_uid(obj: dict[str, Any]) -> str | None:
    """The uid of the object's controller (its owner reference with controller: true), if it has one."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _metadata(body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    name = body["metadata"]["name"]
    return {"name": object_name(name), "namespace": body["metadata"]["namespace"], "labels": labels(name),
            "ownerReferences": [owner_reference(body)], **extra}


def render_secret(body: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """The generated secrets (custom-LLM bearer key, signing secret); `values` carries existing ones over."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": _metadata(body), "type": "Opaque",
            "stringData": {key: values[key] for key in SECRET_KEYS}}


PRIMARY_KEY_ENV = "GLIMPSE_UPSTREAM_API_KEY"


def fallback_key_env(index: int) -> str:
    """The environment variable holding the key of spec.llm.fallbacks[index] (from its Secret)."""
    return f"GLIMPSE_FALLBACK_{index + 1}_API_KEY"


def upstreams_setting(spec: dict[str, Any]) -> str:
    """GLIMPSE_UPSTREAMS for a spec with fallbacks: the primary, then each fallback with its own model; keys come
    from environment variables the pod fills from the Secrets (never from the ConfigMap)."""
    llm = spec["llm"]
    upstreams = [{"name": "primary", "base_url": upstream_base_url(spec), "provider": llm["provider"],
                  "api_key_env": PRIMARY_KEY_ENV}]
    upstreams += [{"name": f["name"], "base_url": url, "provider": f["provider"], "model": f["model"],
                   "api_key_env": fallback_key_env(i)}
                  for i, (f, url) in enumerate(zip(llm["fallbacks"], fallback_base_urls(spec), strict=True))]
    return json.dumps(upstreams, separators=(",", ":"))


# Every variable the operator gives a proxy (proxy_environment's keys, the Secret-backed ones of the container): a
# VoiceAgent's spec.pod.env may not set one (the CRD refuses the same names; a test keeps the lists in step).
OPERATOR_ENV = frozenset({
    "GLIMPSE_HOST", "GLIMPSE_PORT", "GLIMPSE_METRICS_PORT", "GLIMPSE_SHUTDOWN_GRACE_SECONDS", "GLIMPSE_TRUSTED_PROXIES",
    "GLIMPSE_PUBLIC_BASE_URL", "GLIMPSE_UPSTREAM_BASE_URL", "GLIMPSE_UPSTREAM_MODEL", "GLIMPSE_UPSTREAM_PROVIDER",
    "GLIMPSE_UPSTREAMS", "GLIMPSE_STORE_URL", "GLIMPSE_STORAGE_URL", "GLIMPSE_S3_ENDPOINT_URL",
    "GLIMPSE_IMAGE_DELIVERY", "GLIMPSE_IMAGE_POLICY", "GLIMPSE_IMAGE_DETAIL", "GLIMPSE_IMAGE_MAX_BYTES",
    "GLIMPSE_IMAGE_TTL_SECONDS", "GLIMPSE_ELEVENLABS_AGENT_ID", "GLIMPSE_LOG_FORMAT", PRIMARY_KEY_ENV,
    "GLIMPSE_ELEVENLABS_API_KEY", "GLIMPSE_CUSTOM_LLM_KEY", "GLIMPSE_SIGNING_SECRET",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"})  # s3_credentials_env's
FALLBACK_KEY_ENV = r"^GLIMPSE_FALLBACK_[0-9]+_API_KEY$"  # fallback_key_env's names, whatever the index


def proxy_environment(spec: dict[str, Any], agent_id: str) -> dict[str, str]:
    images = spec["images"]
    fallbacks = {"GLIMPSE_UPSTREAMS": upstreams_setting(spec)} if spec["llm"]["fallbacks"] else {}
    # only when set: an agent without it keeps its configuration, and its pods, as they were
    s3_endpoint = {"GLIMPSE_S3_ENDPOINT_URL": images["s3EndpointUrl"]} if images["s3EndpointUrl"] else {}
    return {
        "GLIMPSE_HOST": "0.0.0.0",  # noqa: S104 (a pod listens on its own interface)
        "GLIMPSE_PORT": str(PORT),
        "GLIMPSE_METRICS_PORT": str(METRICS_PORT),
        "GLIMPSE_SHUTDOWN_GRACE_SECONDS": str(SHUTDOWN_GRACE_SECONDS),
        "GLIMPSE_TRUSTED_PROXIES": TRUSTED_PROXIES,
        "GLIMPSE_PUBLIC_BASE_URL": public_url(spec),
        "GLIMPSE_UPSTREAM_BASE_URL": upstream_base_url(spec),
        "GLIMPSE_UPSTREAM_MODEL": spec["llm"]["model"],
        "GLIMPSE_UPSTREAM_PROVIDER": spec["llm"]["provider"],
        **fallbacks,
        "GLIMPSE_STORE_URL": spec["proxy"]["store"] or "memory://",
        "GLIMPSE_STORAGE_URL": images["storage"] or "file:///data/images",
        **s3_endpoint,
        "GLIMPSE_IMAGE_DELIVERY": images["delivery"],
        "GLIMPSE_IMAGE_POLICY": images["policy"],
        "GLIMPSE_IMAGE_DETAIL": images["detail"],
        "GLIMPSE_IMAGE_MAX_BYTES": str(images["maxBytes"]),
        "GLIMPSE_IMAGE_TTL_SECONDS": str(images["ttlSeconds"]),
        "GLIMPSE_ELEVENLABS_AGENT_ID": agent_id,
        "GLIMPSE_LOG_FORMAT": "json",
    }


def proxy_configuration(body: dict[str, Any], spec: dict[str, Any], agent_id: str,
                        tracing: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The ConfigMap's data: `proxy_environment`, and the OTEL_* variables of the operator's tracing settings."""
    meta = body["metadata"]
    return {**proxy_environment(spec, agent_id), **tracing_environment(tracing, meta["namespace"], meta["name"])}


def render_configmap(body: dict[str, Any], spec: dict[str, Any], agent_id: str,
                     tracing: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _metadata(body),
            "data": proxy_configuration(body, spec, agent_id, tracing)}


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def secrets_hash(values: dict[str, str]) -> str:
    """A digest of the secret values the proxy's pods read (the LLM and ElevenLabs keys, the generated ones), put
    into the pod template: rotating a key in its Secret changes the template, so the pods roll and read it (a pod
    reads env values from Secrets only when it starts)."""
    return _digest(values, 16)


def render_deployment(body: dict[str, Any], spec: dict[str, Any], agent_id: str, proxy_image: str,
                      secrets_digest: str = "", tracing: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The proxy's pods; `proxy_image` (the operator's GLIMPSE_PROXY_IMAGE) unless the spec names an image;
    `secrets_digest` is `secrets_hash` of what the pods read from Secrets; `tracing` the operator's
    GLIMPSE_PROXY_TRACING (a variable spec.pod.env sets itself wins over the operator's)."""
    name = body["metadata"]["name"]
    generated = object_name(name)
    llm_ref, el_ref = spec["llm"]["apiKeySecretRef"], spec["elevenlabs"]["apiKeySecretRef"]
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 2}
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": OWN_VOLUMES["tmp"]}]
    if not spec["images"]["storage"]:
        volumes.append({"name": "images", "emptyDir": {"sizeLimit": "2Gi"}})
        mounts.append({"name": "images", "mountPath": OWN_VOLUMES["images"]})
    replicas = spec["proxy"]["replicas"]
    pod = spec["pod"]
    own_env = {item.get("name") for item in pod.get("env", [])}
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector(name)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {
            "metadata": {"labels": {**pod.get("labels", {}), **labels(name)}, "annotations": {
                **pod.get("annotations", {}),
                "glimpse.dev/config-hash": _digest(proxy_configuration(body, spec, agent_id, tracing), 16),
                "glimpse.dev/secrets-hash": secrets_digest}},
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                # no UID, GID or fsGroup unless spec.pod sets one: the image's (10001, group 0), or the one OpenShift
                # draws for the namespace
                "securityContext": {**POD_SECURITY_CONTEXT, **pod.get("securityContext", {})},
                "containers": [{
                    "name": "proxy",
                    "image": spec["proxy"]["image"] or proxy_image,
                    "args": ["serve"],
                    "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"},
                              {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
                    # the operator's ConfigMap last: of two envFrom sources with a key, the later wins, so none of
                    # spec.pod's may replace a setting the operator derives from the spec (env still beats both)
                    "envFrom": [*pod.get("envFrom", []), {"configMapRef": {"name": generated}}],
                    "env": [
                        _secret_env(PRIMARY_KEY_ENV, llm_ref["name"], llm_ref["key"]),
                        *(_secret_env(fallback_key_env(i), f["apiKeySecretRef"]["name"], f["apiKeySecretRef"]["key"])
                          for i, f in enumerate(spec["llm"]["fallbacks"])),
                        _secret_env("GLIMPSE_ELEVENLABS_API_KEY", el_ref["name"], el_ref["key"]),
                        _secret_env("GLIMPSE_CUSTOM_LLM_KEY", generated, "customLlmKey"),
                        _secret_env("GLIMPSE_SIGNING_SECRET", generated, "signingSecret"),
                        *s3_credentials_env(spec),
                        *(item for item in headers_env(tracing) if item["name"] not in own_env),
                        *pod.get("env", []),
                    ],
                    "livenessProbe": probe,
                    "readinessProbe": {**probe, "httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5},
                    "startupProbe": {**probe, "periodSeconds": 2, "failureThreshold": 30},
                    "resources": proxy_resources(spec),
                    "securityContext": {**CONTAINER_SECURITY_CONTEXT, **pod.get("containerSecurityContext", {})},
                    "volumeMounts": mounts + pod.get("volumeMounts", []),
                }],
                "volumes": volumes + pod.get("volumes", []),
                **pod_placement(pod, name),
            },
        },
    }
    if not spec["proxy"]["autoscaling"]["enabled"]:
        deployment_spec["replicas"] = replicas  # with an HPA, the HPA owns the replica count
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(body), "spec": deployment_spec}


def s3_credentials_env(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """An S3 access key (MinIO, R2) from the Secret spec.images.s3CredentialsSecretRef names, as the variables of
    the AWS chain boto3 reads. The kubelet reads that Secret, never the operator: no key passes through it."""
    ref = spec["images"]["s3CredentialsSecretRef"]
    if not ref["name"]:
        return []  # the pod's own identity (IRSA, EKS Pod Identity)
    return [_secret_env("AWS_ACCESS_KEY_ID", ref["name"], ref["accessKeyIdKey"]),
            _secret_env("AWS_SECRET_ACCESS_KEY", ref["name"], ref["secretAccessKeyKey"])]


# -- the pod fitted to the cluster: spec.pod, merged over the operator's defaults and checked by pod_settings.py ------

# The safe defaults spec.pod's security contexts are merged over, key by key; they pass OpenShift's restricted-v2 and
# the restricted Pod Security Standard, and pod_settings.py refuses what would undo them.
POD_SECURITY_CONTEXT: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY_CONTEXT: dict[str, Any] = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                              "capabilities": {"drop": ["ALL"]}}
# The volumes the operator mounts itself (name: path); spec.pod may not reuse either.
OWN_VOLUMES = {"tmp": "/tmp", "images": "/data/images"}  # noqa: S108
# Where spec.pod's scheduling fields go in the pod spec, as they are (the API server checks them on apply).
PLACEMENT_FIELDS = ("nodeSelector", "affinity", "tolerations", "priorityClassName")


def pod_placement(pod: dict[str, Any], agent_name: str) -> dict[str, Any]:
    """The pod spec's scheduling fields and service account from spec.pod: a topology spread constraint without a
    labelSelector spreads this VoiceAgent's own pods (so an operator-wide default works for every VoiceAgent)."""
    placement = {field: pod[field] for field in PLACEMENT_FIELDS if pod.get(field)}
    if constraints := pod.get("topologySpreadConstraints"):
        placement["topologySpreadConstraints"] = [
            {"labelSelector": {"matchLabels": selector(agent_name)}, **constraint} for constraint in constraints]
    if makes_service_account(pod):
        placement["serviceAccountName"] = object_name(agent_name)
    return placement


def makes_service_account(pod: dict[str, Any]) -> bool:
    """Whether spec.pod asks the operator for a ServiceAccount of the VoiceAgent's own."""
    return bool(pod.get("serviceAccount", {}).get("create"))


def render_service_account(body: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any] | None:
    """glimpse-<name>, only when spec.pod.serviceAccount.create asks for one: an identity of this VoiceAgent's own
    that a cloud can trust by name (GKE Workload Identity, IRSA, EKS Pod Identity) through its annotations. The pods
    never mount its API token: the proxy does not call the Kubernetes API."""
    if not makes_service_account(spec["pod"]):
        return None
    metadata = _metadata(body)
    if annotations := spec["pod"]["serviceAccount"].get("annotations"):
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata, "automountServiceAccountToken": False}


def proxy_resources(spec: dict[str, Any]) -> dict[str, Any]:
    """The container's requests and limits as the spec gives them (100m CPU and 128Mi requested when it gives none),
    with the derived memory limit unless the spec sets one: as the chart's template does."""
    given = spec["proxy"]["resources"] or {"requests": {"cpu": "100m", "memory": "128Mi"}}
    limits = given.get("limits") or {}
    return {**given, "limits": {**limits, "memory": limits.get("memory") or proxy_memory_limit(spec)}}


def proxy_memory_limit(spec: dict[str, Any]) -> str:
    """The proxy's memory limit: what its image decodes and the upload bodies it reads may hold (the spec's largest
    upload, the proxy's defaults for the rest, which the operator does not set) plus its baseline and headroom
    (`glimpse.sizing`)."""
    return f"{memory_limit_mib(DecodeBudget(max_upload_bytes=spec['images']['maxBytes']))}Mi"


def render_service(body: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(body), "spec": {
        "type": "ClusterIP", "selector": selector(body["metadata"]["name"]),
        "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"},
                  {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}]}}


SERVICE_PORT = 80  # the Service's port named http, in front of the pods' PORT


def render_ingress(body: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any] | None:
    ingress = spec.get("ingress")
    if not ingress:
        return None
    rule = {"host": ingress["host"], "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": object_name(body["metadata"]["name"]), "port": {"name": "http"}}}}]}}
    ingress_spec: dict[str, Any] = {"rules": [rule]}
    if ingress["className"]:
        ingress_spec["ingressClassName"] = ingress["className"]
    if ingress["tlsSecretName"]:
        ingress_spec["tls"] = [{"hosts": [ingress["host"]], "secretName": ingress["tlsSecretName"]}]
    metadata = _metadata(body)
    if ingress["annotations"]:
        metadata["annotations"] = dict(ingress["annotations"])
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": ingress_spec}


GATEWAY_API_VERSION = "gateway.networking.k8s.io/v1"


def render_httproute(body: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any] | None:
    """A Gateway API HTTPRoute from the team's Gateway(s) (`spec.httpRoute.parentRefs`, as given) to the Service's API
    port, for the route's hostnames: everything under / as the Ingress routes it, never the metrics port."""
    route = spec.get("httpRoute")
    if not route:
        return None
    rule = {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [{"name": object_name(body["metadata"]["name"]), "port": SERVICE_PORT}]}
    metadata = _metadata(body)
    if route["annotations"]:
        metadata["annotations"] = dict(route["annotations"])
    return {"apiVersion": GATEWAY_API_VERSION, "kind": "HTTPRoute", "metadata": metadata, "spec": {
        "parentRefs": [dict(ref) for ref in route["parentRefs"]], "hostnames": list(route["hostnames"]),
        "rules": [rule]}}


def render_pdb(body: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _metadata(body),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(body["metadata"]["name"])}}}


def render_hpa(body: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any] | None:
    scaling = spec["proxy"]["autoscaling"]
    if not scaling["enabled"]:
        return None
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": _metadata(body), "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                           "name": object_name(body["metadata"]["name"])},
        "minReplicas": scaling["minReplicas"],
        "maxReplicas": max(scaling["maxReplicas"], scaling["minReplicas"]),
        "metrics": [hpa_metric(scaling)]}}


ACTIVE_STREAMS_METRIC = "glimpse_active_streams"  # the proxy's gauge (service/glimpse/observability/metrics.py)


def hpa_metric(scaling: dict[str, Any]) -> dict[str, Any]:
    """CPU, or the streams each pod relays now: a stream is a person on a call, and CPU lags behind them. The
    custom metric reaches the HPA through prometheus-adapter, as docs/architecture.md shows (with KEDA: autoscaling
    off here, and a ScaledObject of your own)."""
    if scaling["metric"] == "activeStreams":
        return {"type": "Pods", "pods": {"metric": {"name": ACTIVE_STREAMS_METRIC}, "target": {
            "type": "AverageValue", "averageValue": str(scaling["targetActiveStreams"])}}}
    return {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": scaling["targetCPUUtilizationPercentage"]}}}


def render_network_policy(body: dict[str, Any], spec: dict[str, Any], defaults: Mapping[str, Any] | None = None,
                          tracing: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The proxy pods' NetworkPolicy (`network_policy.py`), spec.networkPolicy over the operator's `defaults`, out to
    the `tracing` collector too; None when turned off."""
    policy = network_policy_spec(selector(body["metadata"]["name"]), spec, PORT, METRICS_PORT, defaults, tracing)
    if policy is None:
        return None
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _metadata(body),
            "spec": policy}


def render_proxy(body: dict[str, Any], spec: dict[str, Any], agent_id: str, secret_values: dict[str, str],
                 proxy_image: str, secrets_digest: str = "", network_defaults: Mapping[str, Any] | None = None,
                 tracing: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every namespaced object of one VoiceAgent, in apply order; `proxy_image` is the default proxy image,
    `network_defaults` the operator's NetworkPolicy settings (GLIMPSE_PROXY_NETWORK_POLICY), `tracing` its tracing
    settings (GLIMPSE_PROXY_TRACING). Without autoscaling there
    is no HPA, with spec.networkPolicy.enabled false no NetworkPolicy, without spec.ingress no Ingress, without
    spec.httpRoute no HTTPRoute: the reconcile deletes one an earlier spec made. Without
    spec.pod.serviceAccount.create no ServiceAccount (one an earlier spec made is left, unused). The NetworkPolicy
    comes before the Deployment: its pods never start unrestricted, nor run so when a later apply (the Ingress, the
    PDB) is refused. The HTTPRoute comes last: where the Gateway API's CRDs are missing, everything else is in place
    when its apply fails."""
    account = render_service_account(body, spec)  # before the Deployment whose pods run as it
    policy = render_network_policy(body, spec, network_defaults, tracing)  # before the pods it restricts
    optional = (render_ingress(body, spec), render_pdb(body), render_hpa(body, spec), render_httproute(body, spec))
    return [render_secret(body, secret_values), render_configmap(body, spec, agent_id, tracing),
            *(o for o in (account, policy) if o is not None),
            render_deployment(body, spec, agent_id, proxy_image, secrets_digest, tracing), render_service(body),
            *(o for o in optional if o is not None)]


def workspace_secret_name(namespace: str, name: str) -> str:
    """The ElevenLabs workspace secret that holds the custom-LLM bearer key of one VoiceAgent."""
    return f"glimpse-{namespace}-{name}-llm-key"


OWNER_TAG_PREFIX = "glimpse-uid-"


def owner_tag(uid: str) -> str:
    """The tag on an agent the operator created for the VoiceAgent with this uid (and on no other agent): how a
    later reconcile finds it again instead of creating a second one."""
    return f"{OWNER_TAG_PREFIX}{uid}"


def desired_agent(spec: dict[str, Any], workspace_secret_id: str, owner_uid: str | None = None) -> dict[str, Any]:
    """The ElevenLabs agent body (created, or PATCHed whole): its custom LLM is this VoiceAgent's proxy behind the
    HTTPRoute or the Ingress (`spec.public_url`), and it lets the page's sessions through as the page starts them."""
    agent = spec["agent"]
    custom_llm = {
        "url": public_url(spec) + "/v1",  # ElevenLabs appends /chat/completions or /responses
        "model_id": spec["llm"]["model"],
        "api_key": {"secret_id": workspace_secret_id},
        "api_type": custom_llm_api_type(spec),  # pinned: chat_completions | responses, as spec.llm.apiType says
    }
    config: dict[str, Any] = {
        "agent": {"first_message": agent["firstMessage"], "language": agent["language"],
                  "prompt": {"prompt": agent["prompt"], "llm": "custom-llm", "custom_llm": custom_llm,
                             "built_in_tools": {"end_call": dict(END_CALL_TOOL)}}},
        "conversation": {"client_events": list(CLIENT_EVENTS)},
    }
    if agent["voiceId"]:
        config["tts"] = {"voice_id": agent["voiceId"]}
    platform_settings = {
        # the page sends customLlmExtraBody {session_id}; default off (docs, "Integrate your own model": set it true)
        "overrides": {"custom_llm_extra_body": True},
        # the page connects only with signed URLs/tokens the proxy mints (docs, "Authentication": enable_auth)
        "auth": {"enable_auth": True},
    }
    tags = ["glimpse", owner_tag(owner_uid)] if owner_uid else ["glimpse"]  # an adopted agent gets no owner tag
    return {"name": agent["name"], "conversation_config": config, "platform_settings": platform_settings,
            "tags": tags}


def config_hash(document: dict[str, Any]) -> str:
    return _digest(document, 32)


def _digest(document: dict[str, Any], length: int) -> str:
    """The first `length` hex digits of the SHA-256 of `document` as canonical JSON."""
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:length]
