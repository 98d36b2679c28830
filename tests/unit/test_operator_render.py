"""Render functions for a matrix of specs; every object, the CRD and the examples validated offline."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from glimpse_operator.render import desired_agent, render_proxy
from glimpse_operator.spec import InvalidSpec, upstream_base_url, with_defaults

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "manifests" / "crd" / "voiceagent.yaml"
K8S_VERSION = "1.30.0"


def crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def voice_agent(**spec_changes: Any) -> dict[str, Any]:
    body = {"apiVersion": "glimpse.dev/v1alpha1", "kind": "VoiceAgent",
            "metadata": {"name": "museum-guide", "namespace": "voice", "uid": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
                         "generation": 1},
            "spec": {"agent": {"name": "Museum guide", "prompt": "You are a guide."},
                     "llm": {"model": "gpt-4o-mini", "apiKeySecretRef": {"name": "openai"}},
                     "elevenlabs": {"apiKeySecretRef": {"name": "elevenlabs"}},
                     "ingress": {"host": "voice.example.com"}}}
    for dotted, value in spec_changes.items():
        node = body["spec"]
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return body


SECRETS = {"customLlmKey": "k" * 43, "signingSecret": "s" * 43}
PROXY_IMAGE = "registry.test/glimpse/proxy:1.2.3"
MATRIX = {
    "minimal": {},
    "gcs-redis-tls": {"images__storage": "gs://bucket/glimpse", "proxy__store": "redis://redis:6379/0",
                      "ingress__tlsSecretName": "voice-tls", "ingress__className": "nginx",
                      "ingress__annotations": {"nginx.ingress.kubernetes.io/proxy-buffering": "off"}},
    "gemini-autoscaled": {"llm__provider": "gemini", "llm__model": "gemini-2.5-flash",
                          "proxy__autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6},
                          "proxy__resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}},
    "compatible-one-replica": {"llm__provider": "openai-compatible", "llm__baseUrl": "http://vllm:8000/v1",
                               "proxy__replicas": 1, "proxy__image": "registry.local/glimpse:dev",
                               "agent__voiceId": "voice123", "images__delivery": "inline"},
}


@pytest.mark.parametrize("case", MATRIX)
def test_rendered_objects_are_valid_kubernetes(case: str) -> None:
    body = voice_agent(**MATRIX[case])
    jsonschema.validate(body, crd_schema())
    objects = render_proxy(body, with_defaults(body["spec"]), "agent_123", SECRETS, PROXY_IMAGE)
    kinds = [o["kind"] for o in objects]
    assert kinds[:6] == ["Secret", "ConfigMap", "Deployment", "Service", "Ingress", "PodDisruptionBudget"]
    assert ("HorizontalPodAutoscaler" in kinds) == (case == "gemini-autoscaled")
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        owner = obj["metadata"]["ownerReferences"][0]
        assert owner["kind"] == "VoiceAgent" and owner["uid"] == body["metadata"]["uid"] and owner["controller"]
        assert obj["metadata"]["namespace"] == "voice" and obj["metadata"]["name"] == "glimpse-museum-guide"


def test_deployment_is_locked_down_and_wired() -> None:
    body = voice_agent(**MATRIX["gcs-redis-tls"])
    objects = {o["kind"]: o
               for o in render_proxy(body, with_defaults(body["spec"]), "agent_123", SECRETS, PROXY_IMAGE)}
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] and pod["automountServiceAccountToken"] is False
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert env["GLIMPSE_UPSTREAM_API_KEY"] == {"name": "openai", "key": "apiKey"}
    assert env["GLIMPSE_CUSTOM_LLM_KEY"] == {"name": "glimpse-museum-guide", "key": "customLlmKey"}
    config = objects["ConfigMap"]["data"]
    assert config["GLIMPSE_STORAGE_URL"] == "gs://bucket/glimpse" and config["GLIMPSE_STORE_URL"].startswith("redis")
    assert config["GLIMPSE_ELEVENLABS_AGENT_ID"] == "agent_123"
    assert config["GLIMPSE_PUBLIC_BASE_URL"] == "https://voice.example.com"
    assert not any("k" * 43 in str(v) for v in config.values())  # no secret in the ConfigMap
    assert objects["Ingress"]["spec"]["tls"][0]["secretName"] == "voice-tls"
    assert objects["Deployment"]["spec"]["replicas"] == 2


def test_config_change_rolls_the_pods() -> None:
    body = voice_agent()
    first = render_proxy(body, with_defaults(body["spec"]), "agent_1", SECRETS, PROXY_IMAGE)[2]
    changed = voice_agent(images__policy="once")
    second = render_proxy(changed, with_defaults(changed["spec"]), "agent_1", SECRETS, PROXY_IMAGE)[2]
    key = "glimpse.dev/config-hash"
    assert first["spec"]["template"]["metadata"]["annotations"][key] != \
        second["spec"]["template"]["metadata"]["annotations"][key]


def test_proxy_image_is_the_operators_unless_the_spec_names_one() -> None:
    def image(body: dict[str, Any]) -> str:
        deployment = render_proxy(body, with_defaults(body["spec"]), "agent_1", SECRETS, PROXY_IMAGE)[2]
        return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])

    assert image(voice_agent()) == PROXY_IMAGE
    assert image(voice_agent(proxy__image="registry.local/glimpse:dev")) == "registry.local/glimpse:dev"


def test_desired_agent_points_at_the_ingress() -> None:
    spec = with_defaults(voice_agent(agent__voiceId="v1", agent__firstMessage="Hi!")["spec"])
    agent = desired_agent(spec, "sec_1")
    prompt = agent["conversation_config"]["agent"]["prompt"]
    assert prompt["llm"] == "custom-llm"
    assert prompt["custom_llm"] == {"url": "https://voice.example.com/v1", "model_id": "gpt-4o-mini",
                                    "api_key": {"secret_id": "sec_1"}}
    assert agent["conversation_config"]["tts"] == {"voice_id": "v1"}


def test_openai_compatible_needs_base_url() -> None:
    spec = with_defaults(voice_agent(llm__provider="openai-compatible")["spec"])
    with pytest.raises(InvalidSpec):
        upstream_base_url(spec)


def test_crd_is_a_valid_custom_resource_definition() -> None:
    crd = yaml.safe_load(CRD.read_text())
    kubernetes_validate.validate(crd, K8S_VERSION, strict=True)
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"] for c in version["additionalPrinterColumns"]}
    assert columns == {"Ready", "Agent", "URL", "Age"}


@pytest.mark.parametrize("path", sorted((ROOT / "manifests" / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_match_the_crd_schema(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), crd_schema())


@pytest.mark.parametrize(("change", "value"), [("llm__provider", "anthropic"), ("images__delivery", "carrier"),
                                               ("proxy__replicas", 0), ("ingress__host", "Not A Host"),
                                               ("images__storage", "s3://bucket")])
def test_crd_schema_rejects_bad_specs(change: str, value: Any) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(voice_agent(**{change: value}), crd_schema())
    body = voice_agent()
    del body["spec"]["llm"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(copy.deepcopy(body), crd_schema())
