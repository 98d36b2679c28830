"""One proxy, two templates: the chart's standalone proxy (charts/glimpse/templates/proxy.yaml) and the objects the
operator makes for a VoiceAgent (glimpse_operator.render) must be the same pod, config and objects for the same
settings.

Each case below is one set of settings, written once and turned into chart values and into a VoiceAgent. Both are
rendered and compared field by field: the Deployment's whole spec (pod template included: what spec.pod and the
chart's pod knobs fit to the cluster too), the ConfigMap's data, the generated keys the pods read, and the Service,
Ingress, HTTPRoute, PodDisruptionBudget, HorizontalPodAutoscaler, ServiceAccount and NetworkPolicy specs (the chart's
proxy.networkPolicy beside the operator's defaults, operator.proxyDefaults.networkPolicy). The
fields that legitimately differ are in ALLOWED, each with its reason; they are masked on both sides after checking
what still must hold for them (a reference names the object it refers to, a selector selects its own pods). Anything
else that differs fails with the path of every difference. The generated keys' Secret is the operator's only: the
chart reads the user's (OPERATOR_ONLY_KINDS).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from glimpse_operator.render import SECRET_KEYS, render_proxy
from glimpse_operator.settings import ProxyNetworkPolicy, ProxyTracing
from glimpse_operator.spec import with_defaults
from glimpse_operator.tracing import VOICE_AGENT_ATTRIBUTE
from tests.delivery.test_chart import chart_pod_values
from tests.operator.support import FITTED_POD
from tools.render_install import render_chart

# Where the two may differ, and why: every field masked below names one of these (nothing else is masked); the
# objects' metadata are not compared (only the Ingress's annotations).
ALLOWED = {
    "metadata": "names (<release>-proxy vs glimpse-<VoiceAgent>), Helm's labels (helm.sh/chart, version, "
                "managed-by: Helm) vs the operator's, and the operator's owner references",
    "selector": "the chart's pods share app.kubernetes.io/instance (the release) with the operator's pods, so its "
                "selectors add app.kubernetes.io/component; the operator's instance is the VoiceAgent's own (and a "
                "topology spread constraint given without a labelSelector gets each side's selector)",
    "pod-labels": "each side's own labels, as on the objects' metadata (Helm's vs the operator's); the labels the "
                  "settings add are compared",
    "pod-annotation-values": "hashes of each side's own inputs: values or spec; the operator hashes the Secrets' data "
                             "it reads, the chart (which cannot read them and stay the same for helm template) the "
                             "Secrets' names and proxy.secrets.checksum",
    "service-account-name": "each side's own ServiceAccount: <release>-proxy vs glimpse-<VoiceAgent>",
    "image": "the chart's image.proxy values vs the operator's GLIMPSE_PROXY_IMAGE or spec.proxy.image",
    "imagePullPolicy": "the chart's image.proxy.pullPolicy; the operator leaves Kubernetes' default",
    "imagePullSecrets": "the chart's imagePullSecrets value; a VoiceAgent's pods pull with the namespace's account",
    "configmap-name": "envFrom names each side's own ConfigMap",
    "generated-secret-name": "the generated keys live in the user's proxy.secrets.existingSecret vs the operator's "
                             "glimpse-<VoiceAgent>",
    "backend-name": "the Ingress and the HTTPRoute route to each side's own Service",
    "scale-target-name": "the HPA scales each side's own Deployment",
    "voiceagent-attribute": "the traces' glimpse.voiceagent resource attribute names each side's proxy: the release vs "
                            "the VoiceAgent (as the ServiceMonitor's voiceagent label does)",
}
# Objects only one side makes, and why.
CHART_ONLY_KINDS: dict[str, str] = {}
OPERATOR_ONLY_KINDS = {
    "Secret": "the operator generates customLlmKey and signingSecret and keeps them in the cluster; the chart never "
              "generates them (the same values must render the same manifests, for GitOps) and reads them from "
              "the user's proxy.secrets.existingSecret",
}
EXISTING_SECRET = "parity-proxy-keys"
RELEASE = "glimpse"  # render_chart's release name
# The labels the chart's ServiceMonitor selects every proxy's Service by (templates/observability.yaml)
SERVICE_MONITOR_LABELS = {"app.kubernetes.io/name": "glimpse", "app.kubernetes.io/component": "proxy"}
OWN_LABELS = ("app.kubernetes.io/", "helm.sh/")  # each side's own labels' prefixes (the settings add none of them)
MASK = "<differs: {}>"

BASE: dict[str, Any] = {
    "model": "gpt-4o-mini", "provider": "openai-compatible", "base_url": "https://llm.example.com/v1",
    "llm_secret": {"name": "openai", "key": "apiKey"}, "elevenlabs_secret": {"name": "elevenlabs", "key": "xi"},
    "agent_id": "agent_7f3c", "store": "redis://redis:6379/0", "storage": "gs://bucket/glimpse",
    "images": {"delivery": "url", "policy": "once", "detail": "high", "maxBytes": 5242880, "ttlSeconds": 1800},
    "host": "voice.example.com", "tls_secret": "voice-tls", "class_name": "nginx",
    "annotations": {"nginx.ingress.kubernetes.io/proxy-buffering": "off"},
    "replicas": 3, "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    "autoscaling": None, "network_policy": None, "ingress": True, "route": None,
}
INGRESS_NGINX = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
              "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
OTLP = {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 4317, "protocol": "TCP"}]}
TRACING = {"otlpEndpoint": "http://otel-collector.observability:4318",
           "headersSecret": {"name": "otel-auth", "key": "h"},
           "serviceName": "voice-proxy", "resourceAttributes": {"deployment.environment": "prod"},
           "sampler": "parentbased_traceidratio", "samplerArg": "0.25",
           "egressTo": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}]}
ROUTE = {"parentRefs": [{"name": "eg", "namespace": "envoy-gateway-system", "sectionName": "https"}],
         "hostnames": ["voice.gateway.example.com", "voice.example.org"],
         "annotations": {"external-dns.alpha.kubernetes.io/ttl": "60"}}
SCALING = {"enabled": True, "minReplicas": 2, "maxReplicas": 6, "targetCPUUtilizationPercentage": 60}
CASES: dict[str, dict[str, Any]] = {
    "replicas-redis-gcs-tls": BASE,
    # the provider's own endpoint (no base URL)
    "gemini-autoscaled-on-cpu": {**BASE, "provider": "gemini", "base_url": None, "model": "gemini-2.5-flash",
                                 "autoscaling": {**SCALING, "metric": "cpu"}},
    "autoscaled-on-active-streams": {**BASE, "autoscaling": {**SCALING, "metric": "activeStreams",
                                                               "targetActiveStreams": 15}},
    # S3-compatible storage at its own endpoint (MinIO, R2), inline delivery
    "replicas-redis-minio": {**BASE, "storage": "s3://glimpse-images/voice", "s3_endpoint": "http://minio:9000",
                             "images": {**BASE["images"], "delivery": "inline"},
                             "s3_credentials": {"name": "minio-keys", "accessKeyIdKey": "rootUser",
                                                "secretAccessKeyKey": "rootPassword"},
                             "network_policy": {"ingressFrom": [INGRESS_NGINX], "metricsFrom": [PROMETHEUS],
                                                "extraEgress": [OTLP]}},
    # AWS S3 on the pod's own identity (IRSA, EKS Pod Identity): the credential endpoints, as for gs://
    "replicas-redis-s3-keyless": {**BASE, "storage": "s3://glimpse-images/voice"},
    # an upstream on a port of its own, the store on another, the NetworkPolicy off on both sides (the VoiceAgent's
    # own spec.networkPolicy, not the operator's defaults)
    "vllm-rediss-no-policy": {**BASE, "base_url": "http://vllm.models:8000/v1", "store": "rediss://redis:6380/0",
                              "network_policy": {"enabled": False}, "policy_in_spec": True},
    # every default on both sides: one replica, memory store, each pod's own disk, default resources and images;
    # TLS terminated in front of the ingress (no tlsSecretName), the public URL still https
    # the Gateway API's HTTPRoute instead of the Ingress, and beside it: the public URL is the route's first hostname
    "gateway-route": {**BASE, "ingress": False, "route": ROUTE},
    "route-beside-ingress": {**BASE, "route": {**ROUTE, "annotations": {}}},
    "one-replica-defaults": {**BASE, "provider": None, "base_url": None, "replicas": 1, "store": "memory://",
                             "storage": "", "images": None,
                             "tls_secret": "", "class_name": "", "annotations": {}, "resources": None},
    # the pods fitted to a cluster: scheduling, labels, annotations, a ServiceAccount for Workload Identity, extra env,
    # envFrom and volumes, security contexts (the chart's proxy.* knobs; a VoiceAgent's spec.pod)
    "fitted-pods": {**BASE, "pod": FITTED_POD},
    # traces to a collector (the chart's proxy.tracing, the operator's operator.proxyDefaults.tracing), with a header
    # Secret, a sampler, resource attributes and the collector's port (https: 443, already open) among peers of its own
    "traced": {**BASE, "tracing": TRACING, "network_policy": {"metricsFrom": [PROMETHEUS]}},
    "traced-https-defaults": {**BASE, "tracing": {"otlpEndpoint": "https://otlp.example.com"}},
    # the security contexts merged over the same safe defaults, key by key, with IDs pinned
    "pinned-ids": {**BASE, "pod": {"securityContext": {"runAsUser": 10001, "fsGroup": 10001},
                                   "containerSecurityContext": {"readOnlyRootFilesystem": False, "runAsGroup": 0}}},
}


def chart_values(s: dict[str, Any]) -> dict[str, Any]:
    proxy: dict[str, Any] = {
        "enabled": True, "replicas": s["replicas"], "store": s["store"], "storage": s["storage"],
        **({"s3EndpointUrl": s["s3_endpoint"]} if s.get("s3_endpoint") else {}),
        **({"s3CredentialsSecret": s["s3_credentials"]} if s.get("s3_credentials") else {}),
        "upstream": {"model": s["model"], "apiKeySecret": s["llm_secret"]},
        "elevenlabs": {"agentId": s["agent_id"], "apiKeySecret": s["elevenlabs_secret"]},
        "secrets": {"existingSecret": EXISTING_SECRET},
        "ingress": {"enabled": s["ingress"], "className": s["class_name"], "host": s["host"],
                    "tlsSecretName": s["tls_secret"], "annotations": s["annotations"]}}
    if s["route"] is not None:
        proxy["httpRoute"] = {"enabled": True, **s["route"]}
    if s["network_policy"] is not None:
        proxy["networkPolicy"] = s["network_policy"]
    if s.get("tracing"):
        proxy["tracing"] = s["tracing"]
    for key in ("images", "resources", "autoscaling"):
        if s[key] is not None:
            proxy[key] = s[key]
    for key, value in (("provider", s["provider"]), ("baseUrl", s["base_url"])):
        if value is not None:
            proxy["upstream"][key] = value
    return {"proxy": {**proxy, **chart_pod_values(s.get("pod", {}))}}


def voice_agent(s: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "agent": {"name": "Parity", "prompt": "You are a guide."},
        "llm": {"model": s["model"], "apiKeySecretRef": s["llm_secret"]},
        "elevenlabs": {"apiKeySecretRef": s["elevenlabs_secret"]},
        "images": {"storage": s["storage"], **({"s3EndpointUrl": s["s3_endpoint"]} if s.get("s3_endpoint") else {}),
                   **({"s3CredentialsSecretRef": s["s3_credentials"]} if s.get("s3_credentials") else {}),
                   **(s["images"] or {})},
        "proxy": {"replicas": s["replicas"], "store": s["store"]}}
    if s["ingress"]:
        spec["ingress"] = {"host": s["host"], "className": s["class_name"], "tlsSecretName": s["tls_secret"],
                           "annotations": s["annotations"]}
    if s["route"] is not None:
        spec["httpRoute"] = s["route"]
    for key, value in (("provider", s["provider"]), ("baseUrl", s["base_url"])):
        if value is not None:
            spec["llm"][key] = value
    if s["resources"] is not None:
        spec["proxy"]["resources"] = s["resources"]
    if s["autoscaling"] is not None:
        spec["proxy"]["autoscaling"] = s["autoscaling"]
    if s.get("policy_in_spec"):
        spec["networkPolicy"] = s["network_policy"]
    if "pod" in s:
        spec["pod"] = s["pod"]
    return {"apiVersion": "glimpse.dev/v1alpha1", "kind": "VoiceAgent",
            "metadata": {"name": "parity", "namespace": "voice", "uid": "0b6f3d9e-7a41-4c55-9e0c-2f1f4f8a9d11"},
            "spec": copy.deepcopy(spec)}


def chart_objects(s: dict[str, Any]) -> dict[str, dict[str, Any]]:
    objects = [o for o in render_chart(chart_values(s), namespace="voice")
               if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "proxy"]
    by_kind = {o["kind"]: o for o in objects}
    assert len(by_kind) == len(objects), "one object of each kind"
    return by_kind


def operator_objects(s: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The objects of a VoiceAgent with these settings; the NetworkPolicy's from the operator's defaults (as the
    chart's operator.proxyDefaults.networkPolicy gives them) unless the VoiceAgent's spec has them."""
    body = voice_agent(s)
    given = {} if s.get("policy_in_spec") else s["network_policy"] or {}
    defaults = {**ProxyNetworkPolicy().as_spec(), **given}
    objects = render_proxy(body, with_defaults(body["spec"]), s["agent_id"],
                           {"customLlmKey": "k" * 43, "signingSecret": "s" * 43}, "registry.test/glimpse/proxy:1.2.3",
                           network_defaults=defaults,
                           tracing=ProxyTracing.model_validate(s.get("tracing") or {}).as_spec())
    by_kind = {o["kind"]: o for o in objects}
    assert len(by_kind) == len(objects), "one object of each kind"
    return by_kind


def differences(chart: Any, operator: Any, path: str = "") -> list[str]:
    """Every path where the two differ, with both values (absent: <missing>)."""
    if isinstance(chart, dict) and isinstance(operator, dict):
        found = []
        for key in sorted(set(chart) | set(operator), key=str):
            found += differences(chart.get(key, "<missing>"), operator.get(key, "<missing>"), f"{path}.{key}")
        return found
    if isinstance(chart, list) and isinstance(operator, list) and len(chart) == len(operator):
        return [d for i, (a, b) in enumerate(zip(chart, operator, strict=True))
                for d in differences(a, b, f"{path}[{i}]")]
    return [] if chart == operator else [f"{path or '.'}: chart={chart!r} operator={operator!r}"]


def assert_same(what: str, chart: Any, operator: Any) -> None:
    found = differences(chart, operator)
    assert not found, f"{what} differs between the chart and the operator:\n  " + "\n  ".join(found)


def mask(node: dict[str, Any], key: str, reason: str) -> None:
    """The field, set or not, no longer compared: ALLOWED[reason] says why."""
    assert reason in ALLOWED
    node[key] = MASK.format(reason)


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def pod_template(deployment: dict[str, Any], objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The Deployment's spec with the allowed differences masked, after checking what must hold for them."""
    spec = copy.deepcopy(deployment["spec"])
    labels = spec["template"]["metadata"]["labels"]
    assert selects(spec["selector"]["matchLabels"], labels), "the Deployment selects its own pods"
    assert selects(SERVICE_MONITOR_LABELS, labels)
    mask(spec, "selector", "selector")
    metadata = spec["template"]["metadata"]
    metadata["labels"] = {key: value for key, value in labels.items() if not key.startswith(OWN_LABELS)}
    mask(metadata["labels"], "<own>", "pod-labels")
    metadata["annotations"] = {key: MASK.format("pod-annotation-values") if key.startswith("glimpse.dev/") else value
                               for key, value in metadata["annotations"].items()}
    pod = spec["template"]["spec"]
    mask(pod, "imagePullSecrets", "imagePullSecrets")
    if "serviceAccountName" in pod:
        assert pod["serviceAccountName"] == objects["ServiceAccount"]["metadata"]["name"]
        mask(pod, "serviceAccountName", "service-account-name")
    for constraint in pod.get("topologySpreadConstraints", []):
        if selects(constraint["labelSelector"]["matchLabels"], labels):  # its own pods: each side's selector
            mask(constraint, "labelSelector", "selector")
    for container in pod["containers"]:
        mask(container, "image", "image")
        mask(container, "imagePullPolicy", "imagePullPolicy")
        own = container["envFrom"][-1]  # last, so its keys win: the settings' sources come before it, as they are
        assert own["configMapRef"]["name"] == objects["ConfigMap"]["metadata"]["name"]
        mask(own["configMapRef"], "name", "configmap-name")
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["key"] in SECRET_KEYS:
                assert ref["name"] == generated_secret_name(objects), env["name"]
                mask(ref, "name", "generated-secret-name")
    return spec


def service_spec(service: dict[str, Any], deployment: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(service["spec"])
    assert selects(spec["selector"], deployment["spec"]["template"]["metadata"]["labels"])
    assert selects(SERVICE_MONITOR_LABELS, service["metadata"]["labels"]), "the ServiceMonitor finds it"
    mask(spec, "selector", "selector")
    return spec


def ingress(obj: dict[str, Any], service: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(obj["spec"])
    for rule in spec["rules"]:
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"]["name"] == service["metadata"]["name"]
            mask(path["backend"]["service"], "name", "backend-name")
    return {"annotations": obj["metadata"].get("annotations", {}), "spec": spec}


def http_route(obj: dict[str, Any], service: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(obj["spec"])
    for rule in spec["rules"]:
        for backend in rule["backendRefs"]:
            assert backend["name"] == service["metadata"]["name"]
            mask(backend, "name", "backend-name")
    return {"annotations": obj["metadata"].get("annotations", {}), "spec": spec}


def pdb_spec(pdb: dict[str, Any], deployment: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(pdb["spec"])
    assert selects(spec["selector"]["matchLabels"], deployment["spec"]["template"]["metadata"]["labels"])
    mask(spec, "selector", "selector")
    return spec


def hpa_spec(hpa: dict[str, Any], deployment: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(hpa["spec"])
    assert spec["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    mask(spec["scaleTargetRef"], "name", "scale-target-name")
    return spec


def network_policy_spec(policy: dict[str, Any], deployment: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(policy["spec"])
    assert spec["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"], "its own pods"
    mask(spec, "podSelector", "selector")
    return spec


def generated_secret_name(objects: dict[str, dict[str, Any]]) -> str:
    """The operator's own Secret; the chart's user's (OPERATOR_ONLY_KINDS)."""
    return objects["Secret"]["metadata"]["name"] if "Secret" in objects else EXISTING_SECRET


def generated_keys_read(deployment: dict[str, Any], objects: dict[str, dict[str, Any]]) -> list[str]:
    """The keys the pods read from the Secret of generated keys."""
    return sorted(env["valueFrom"]["secretKeyRef"]["key"]
                  for container in deployment["spec"]["template"]["spec"]["containers"]
                  for env in container.get("env", [])
                  if env.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == generated_secret_name(objects))


@pytest.fixture(params=CASES)
def both(request: pytest.FixtureRequest) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    settings = CASES[request.param]
    return chart_objects(settings), operator_objects(settings)


def test_the_same_kinds_of_objects(both: tuple[dict[str, Any], dict[str, Any]]) -> None:
    chart, operator = both
    assert sorted(set(chart) - set(CHART_ONLY_KINDS)) == sorted(set(operator) - set(OPERATOR_ONLY_KINDS))
    assert not set(OPERATOR_ONLY_KINDS) & set(chart)


def test_the_same_deployment_and_pod(both: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """Security contexts, args, ports, probes (periods, timeouts, thresholds), env names and the Secret key each
    comes from, envFrom, volumes and mounts, grace period, service-account token, service links, strategy,
    replicas, resources, the pod template's annotation keys."""
    chart, operator = both
    assert_same("Deployment.spec", pod_template(chart["Deployment"], chart),
                pod_template(operator["Deployment"], operator))


def configuration(configmap: dict[str, Any], agent: str) -> dict[str, str]:
    """The ConfigMap's data, the traces' glimpse.voiceagent attribute masked after checking it names `agent`."""
    data = dict(configmap["data"])
    if "OTEL_RESOURCE_ATTRIBUTES" in data:
        pairs = dict(pair.split("=", 1) for pair in data["OTEL_RESOURCE_ATTRIBUTES"].split(","))
        assert pairs[VOICE_AGENT_ATTRIBUTE] == agent
        mask(pairs, VOICE_AGENT_ATTRIBUTE, "voiceagent-attribute")
        data["OTEL_RESOURCE_ATTRIBUTES"] = pairs  # type: ignore[assignment]
    return data


def test_the_same_configuration(both: tuple[dict[str, Any], dict[str, Any]]) -> None:
    chart, operator = both
    assert_same("ConfigMap.data", configuration(chart["ConfigMap"], RELEASE),
                configuration(operator["ConfigMap"], operator["ConfigMap"]["metadata"]["ownerReferences"][0]["name"]))
    assert sorted(operator["Secret"]["stringData"]) == sorted(SECRET_KEYS)
    assert generated_keys_read(chart["Deployment"], chart) == generated_keys_read(operator["Deployment"], operator) \
        == sorted(SECRET_KEYS)


def test_the_same_service_routes_pdb_and_hpa(both: tuple[dict[str, Any], dict[str, Any]]) -> None:
    chart, operator = both
    assert_same("Service.spec", service_spec(chart["Service"], chart["Deployment"]),
                service_spec(operator["Service"], operator["Deployment"]))
    for kind, compared in (("Ingress", ingress), ("HTTPRoute", http_route)):
        assert (kind in chart) == (kind in operator)
        if kind in operator:
            assert_same(kind, compared(chart[kind], chart["Service"]), compared(operator[kind], operator["Service"]))
    assert_same("PodDisruptionBudget.spec", pdb_spec(chart["PodDisruptionBudget"], chart["Deployment"]),
                pdb_spec(operator["PodDisruptionBudget"], operator["Deployment"]))
    assert ("HorizontalPodAutoscaler" in chart) == ("HorizontalPodAutoscaler" in operator)
    if "HorizontalPodAutoscaler" in operator:
        assert_same("HorizontalPodAutoscaler.spec", hpa_spec(chart["HorizontalPodAutoscaler"], chart["Deployment"]),
                    hpa_spec(operator["HorizontalPodAutoscaler"], operator["Deployment"]))
    assert ("ServiceAccount" in chart) == ("ServiceAccount" in operator)
    if "ServiceAccount" in operator:  # its annotations (the cloud identity), and no API token
        assert_same("ServiceAccount", service_account(chart["ServiceAccount"]),
                    service_account(operator["ServiceAccount"]))


def service_account(obj: dict[str, Any]) -> dict[str, Any]:
    return {"annotations": obj["metadata"].get("annotations", {}),
            "automountServiceAccountToken": obj["automountServiceAccountToken"]}


def test_the_same_network_policy(both: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """Peers in, DNS and the ports of the proxy's own URLs out, and the extra egress: the same settings (the chart's
    proxy.networkPolicy, the operator's defaults) give the same policy, or none on both sides."""
    chart, operator = both
    assert ("NetworkPolicy" in chart) == ("NetworkPolicy" in operator)
    if "NetworkPolicy" in operator:
        assert_same("NetworkPolicy.spec", network_policy_spec(chart["NetworkPolicy"], chart["Deployment"]),
                    network_policy_spec(operator["NetworkPolicy"], operator["Deployment"]))


def test_the_cases_cover_what_differs_between_them() -> None:
    """The settings reach both renders: each case changes what it says it changes (a case that rendered the same
    objects as another would compare nothing new)."""
    rendered = {case: operator_objects(settings) for case, settings in CASES.items()}
    data = {case: objects["ConfigMap"]["data"] for case, objects in rendered.items()}
    assert data["one-replica-defaults"]["GLIMPSE_STORAGE_URL"] == "file:///data/images"
    assert data["one-replica-defaults"]["GLIMPSE_UPSTREAM_BASE_URL"] == "https://api.openai.com/v1"
    assert data["gemini-autoscaled-on-cpu"]["GLIMPSE_UPSTREAM_BASE_URL"].startswith("https://generativelanguage.")
    assert data["replicas-redis-gcs-tls"]["GLIMPSE_UPSTREAM_BASE_URL"] == BASE["base_url"]
    assert data["replicas-redis-gcs-tls"]["GLIMPSE_IMAGE_DETAIL"] == "high"
    assert data["replicas-redis-minio"]["GLIMPSE_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "GLIMPSE_S3_ENDPOINT_URL" not in data["replicas-redis-gcs-tls"]
    assert data["gateway-route"]["GLIMPSE_PUBLIC_BASE_URL"] == "https://voice.gateway.example.com"
    assert data["route-beside-ingress"]["GLIMPSE_PUBLIC_BASE_URL"] == "https://voice.gateway.example.com"
    assert data["replicas-redis-gcs-tls"]["GLIMPSE_PUBLIC_BASE_URL"] == "https://voice.example.com"
    assert {case for case, objects in rendered.items() if "HTTPRoute" in objects} == {"gateway-route",
                                                                                      "route-beside-ingress"}
    assert "Ingress" not in rendered["gateway-route"]
    metrics = {case: objects["HorizontalPodAutoscaler"]["spec"]["metrics"][0]["type"]
               for case, objects in rendered.items() if "HorizontalPodAutoscaler" in objects}
    assert metrics == {"gemini-autoscaled-on-cpu": "Resource", "autoscaled-on-active-streams": "Pods"}
    egress = {case: [p["port"] for p in objects["NetworkPolicy"]["spec"]["egress"][1]["ports"]]
              for case, objects in rendered.items() if "NetworkPolicy" in objects}
    assert egress["one-replica-defaults"] == [443] and egress["replicas-redis-minio"] == [443, 6379, 9000]
    assert "NetworkPolicy" not in rendered["vllm-rediss-no-policy"]
    assert rendered["replicas-redis-minio"]["NetworkPolicy"]["spec"]["egress"][2:] == [OTLP]
    credentials = {case for case, objects in rendered.items() if "NetworkPolicy" in objects
                   and any("to" in rule and rule["to"][0].get("ipBlock", {}).get("cidr") == "169.254.169.254/32"
                           for rule in objects["NetworkPolicy"]["spec"]["egress"])}
    assert credentials == {case for case, s in CASES.items() if s["storage"].startswith(("gs://", "s3://"))
                           and not s.get("s3_credentials") and s["network_policy"] != {"enabled": False}}
    assert "replicas-redis-s3-keyless" in credentials and "replicas-redis-minio" not in credentials
    pods = {case: objects["Deployment"]["spec"]["template"] for case, objects in rendered.items()}
    assert pods["fitted-pods"]["spec"]["nodeSelector"] == FITTED_POD["nodeSelector"]
    assert pods["fitted-pods"]["metadata"]["labels"]["team"] == "voice"
    assert "ServiceAccount" in rendered["fitted-pods"] and "ServiceAccount" not in rendered["pinned-ids"]
    assert pods["pinned-ids"]["spec"]["securityContext"]["runAsUser"] == 10001
    assert pods["pinned-ids"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is False
    assert "nodeSelector" not in pods["one-replica-defaults"]["spec"]
    traced = data["traced"]
    assert traced["OTEL_EXPORTER_OTLP_ENDPOINT"] == TRACING["otlpEndpoint"]
    assert traced["OTEL_TRACES_SAMPLER_ARG"] == "0.25" and traced["OTEL_SERVICE_NAME"] == "voice-proxy"
    assert data["traced-https-defaults"]["OTEL_SERVICE_NAME"] == "glimpse"
    assert {case for case, values in data.items() if "OTEL_EXPORTER_OTLP_ENDPOINT" in values} == {
        "traced", "traced-https-defaults"}
    assert rendered["traced"]["NetworkPolicy"]["spec"]["egress"][-1:] == [
        {"ports": [{"port": 4318, "protocol": "TCP"}], "to": TRACING["egressTo"]}]
    assert rendered["traced-https-defaults"]["NetworkPolicy"]["spec"]["egress"][-1:] == [
        {"ports": [{"port": 443, "protocol": "TCP"}]}]
    headers = [e for e in pods["traced"]["spec"]["containers"][0]["env"] if e["name"] == "OTEL_EXPORTER_OTLP_HEADERS"]
    assert headers == [{"name": "OTEL_EXPORTER_OTLP_HEADERS", "valueFrom": {"secretKeyRef": {
        "name": "otel-auth", "key": "h", "optional": True}}}]
