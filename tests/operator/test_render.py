"""Render functions for a matrix of specs; every object, the CRD and the examples validated offline."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from glimpse.config import Settings
from glimpse.observability import metrics
from glimpse.sizing import MiB, memory_limit_mib
from glimpse_operator.render import (
    ACTIVE_STREAMS_METRIC,
    CLIENT_EVENTS,
    desired_agent,
    proxy_memory_limit,
    render_deployment,
    render_proxy,
    secrets_hash,
)
from glimpse_operator.spec import (
    DEFAULTS,
    REQUIRED_FIELDS,
    ROUTE_DEFAULTS,
    InvalidSpec,
    upstream_base_url,
    with_defaults,
)
from tests import restricted_v2
from tests.gateway_api import route_errors
from tests.operator.support import GATEWAY_CASES, MATRIX, voice_agent
from tests.paths import ROOT, VENDOR_SPEC

CRD = ROOT / "manifests" / "crd" / "voiceagent.yaml"
K8S_VERSION = "1.30.0"
# ElevenLabs' own request schemas (see its README); CI checks `shared/` out beside the clone
ELEVENLABS_SPEC = VENDOR_SPEC / "elevenlabs.json"


def crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


SECRETS = {"customLlmKey": "k" * 43, "signingSecret": "s" * 43}
PROXY_IMAGE = "registry.test/glimpse/proxy:1.2.3"



@pytest.mark.parametrize("case", MATRIX)
def test_rendered_objects_are_valid_kubernetes(case: str) -> None:
    body = voice_agent(**MATRIX[case])
    jsonschema.validate(body, crd_schema())
    objects = render_proxy(body, with_defaults(body["spec"]), "agent_123", SECRETS, PROXY_IMAGE, "0123456789abcdef")
    kinds = [o["kind"] for o in objects]
    optional = ("Ingress", "HTTPRoute", "ServiceAccount")
    assert [k for k in kinds if k not in optional][:6] == [
        "Secret", "ConfigMap", "NetworkPolicy", "Deployment", "Service", "PodDisruptionBudget"]
    assert ("HorizontalPodAutoscaler" in kinds) == (case == "gemini-autoscaled")
    assert ("Ingress" in kinds) == ("ingress" in body["spec"])
    assert ("HTTPRoute" in kinds) == (case in GATEWAY_CASES)
    if "HTTPRoute" in kinds:
        assert kinds[-1] == "HTTPRoute"  # last: without the Gateway API's CRDs, the rest is applied before it fails
    routes = [o for o in objects if o["kind"] == "HTTPRoute"]
    assert route_errors(routes) == [[] for _ in routes]  # the Gateway API's own schema (tests/gateway_api.py)
    # a ServiceAccount only when spec.pod asks for one, applied before the Deployment whose pods run as it
    assert ("ServiceAccount" in kinds) == (case == "fitted-pods")
    assert kinds.index("ServiceAccount" if "ServiceAccount" in kinds else "Deployment") <= kinds.index("Deployment")
    for obj in objects:
        if obj["kind"] != "HTTPRoute":  # not a Kubernetes kind: the Gateway API's schema checked it above
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
    assert restricted_v2.violations(pod) == [] and "runAsGroup" not in pod["securityContext"]
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


def test_s3_storage_and_its_endpoint_reach_the_proxy_only_when_set() -> None:
    """No volume for images, the endpoint as GLIMPSE_S3_ENDPOINT_URL; an agent without an endpoint has no such key
    (its configuration, and so its pods, stay as they were before the field existed)."""
    body = voice_agent(**MATRIX["s3-minio-redis"])
    objects = {o["kind"]: o
               for o in render_proxy(body, with_defaults(body["spec"]), "agent_123", SECRETS, PROXY_IMAGE)}
    config = objects["ConfigMap"]["data"]
    assert config["GLIMPSE_STORAGE_URL"] == "s3://glimpse-images/voice"
    assert config["GLIMPSE_S3_ENDPOINT_URL"] == "http://minio:9000"
    settings = Settings.load(env=config)
    assert settings.storage_scheme == "s3" and settings.s3_endpoint_url == "http://minio:9000"
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert "images" not in {v["name"] for v in pod["volumes"]} and objects["Deployment"]["spec"]["replicas"] == 3
    for case in ("minimal", "gcs-redis-tls"):
        other = voice_agent(**MATRIX[case])
        rendered = render_proxy(other, with_defaults(other["spec"]), "agent_123", SECRETS, PROXY_IMAGE)
        assert "GLIMPSE_S3_ENDPOINT_URL" not in str(rendered)


def test_s3_access_keys_come_from_the_named_secret_through_the_kubelet() -> None:
    """spec.images.s3CredentialsSecretRef: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY as secretKeyRefs the kubelet
    resolves (the operator never reads that Secret: no key in the ConfigMap, none in what it hashes); without it, no
    AWS variable at all (the pod's identity: IRSA, EKS Pod Identity)."""
    def env(**changes: Any) -> dict[str, Any]:
        body = voice_agent(**MATRIX["s3-minio-redis"], **changes)
        objects = {o["kind"]: o
                   for o in render_proxy(body, with_defaults(body["spec"]), "agent_123", SECRETS, PROXY_IMAGE)}
        assert not any(key.startswith("AWS_") for key in objects["ConfigMap"]["data"])
        return {e["name"]: e.get("valueFrom", {}).get("secretKeyRef")
                for e in objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]}

    named = env(images__s3CredentialsSecretRef={"name": "minio-keys", "accessKeyIdKey": "rootUser",
                                                "secretAccessKeyKey": "rootPassword"})
    assert named["AWS_ACCESS_KEY_ID"] == {"name": "minio-keys", "key": "rootUser"}
    assert named["AWS_SECRET_ACCESS_KEY"] == {"name": "minio-keys", "key": "rootPassword"}
    by_default = env(images__s3CredentialsSecretRef={"name": "r2-keys"})
    assert by_default["AWS_ACCESS_KEY_ID"] == {"name": "r2-keys", "key": "accessKeyId"}
    assert by_default["AWS_SECRET_ACCESS_KEY"] == {"name": "r2-keys", "key": "secretAccessKey"}
    assert not any(name.startswith("AWS_") for name in env())


def test_metrics_beside_the_api_not_through_the_ingress_the_drain_inside_the_grace_the_ingress_trusted() -> None:
    body = voice_agent(**MATRIX["gcs-redis-tls"])
    objects = {o["kind"]: o
               for o in render_proxy(body, with_defaults(body["spec"]), "agent_123", SECRETS, PROXY_IMAGE)}
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    ports = {p["name"]: p["containerPort"] for p in pod["containers"][0]["ports"]}
    config = objects["ConfigMap"]["data"]
    settings = Settings.load(env=config)
    assert ports == {"http": settings.port, "metrics": settings.metrics_port} and settings.metrics_port
    assert {p["name"] for p in objects["Service"]["spec"]["ports"]} == {"http", "metrics"}
    [path] = objects["Ingress"]["spec"]["rules"][0]["http"]["paths"]
    assert path["backend"]["service"]["port"] == {"name": "http"}
    assert pod["terminationGracePeriodSeconds"] > settings.shutdown_grace_seconds
    assert "10.0.0.0/8" in settings.trusted_proxies  # the in-cluster ingress controller's X-Forwarded-For


def deployment_of(body: dict[str, Any]) -> dict[str, Any]:
    [deployment] = [o for o in render_proxy(body, with_defaults(body["spec"]), "agent_1", SECRETS, PROXY_IMAGE)
                    if o["kind"] == "Deployment"]
    return deployment


def test_config_change_rolls_the_pods() -> None:
    body = voice_agent()
    first = deployment_of(body)
    changed = voice_agent(images__policy="once")
    second = deployment_of(changed)
    key = "glimpse.dev/config-hash"
    assert first["spec"]["template"]["metadata"]["annotations"][key] != \
        second["spec"]["template"]["metadata"]["annotations"][key]


def test_proxy_image_is_the_operators_unless_the_spec_names_one() -> None:
    def image(body: dict[str, Any]) -> str:
        deployment = deployment_of(body)
        return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])

    assert image(voice_agent()) == PROXY_IMAGE
    assert image(voice_agent(proxy__image="registry.local/glimpse:dev")) == "registry.local/glimpse:dev"


def test_desired_agent_points_at_the_ingress() -> None:
    spec = with_defaults(voice_agent(agent__voiceId="v1", agent__firstMessage="Hi!")["spec"])
    agent = desired_agent(spec, "sec_1")
    prompt = agent["conversation_config"]["agent"]["prompt"]
    assert prompt["llm"] == "custom-llm"
    assert prompt["custom_llm"] == {"url": "https://voice.example.com/v1", "model_id": "gpt-4o-mini",
                                    "api_key": {"secret_id": "sec_1"}, "api_type": "chat_completions"}
    assert agent["conversation_config"]["tts"] == {"voice_id": "v1"}


def test_agent_lets_the_pages_sessions_through() -> None:
    """The page starts every session with `customLlmExtraBody: {session_id}` and shows transcripts, corrections,
    the agent speaking and interruptions: the agent must permit the one and send the others."""
    agent = desired_agent(with_defaults(voice_agent()["spec"]), "sec_1")
    assert agent["platform_settings"]["overrides"]["custom_llm_extra_body"] is True
    assert agent["platform_settings"]["auth"]["enable_auth"] is True  # only signed URLs / tokens the proxy mints
    events = agent["conversation_config"]["conversation"]["client_events"]
    assert set(events) >= {"audio", "interruption", "user_transcript", "agent_response", "agent_response_correction",
                           "conversation_initiation_metadata"}
    assert events == list(CLIENT_EVENTS) and len(set(events)) == len(events)


def test_agent_can_hang_up() -> None:
    """API-created agents have no end_call unless it is added (ElevenLabs docs, "End call"); with it, ElevenLabs
    offers `end_call` to the custom LLM, and `agent_tool_response` lets the page's SDK end the session."""
    agent = desired_agent(with_defaults(voice_agent()["spec"]), "sec_1")
    end_call = agent["conversation_config"]["agent"]["prompt"]["built_in_tools"]["end_call"]
    assert end_call["type"] == "system" and end_call["params"] == {"system_tool_type": "end_call"}
    assert "agent_tool_response" in agent["conversation_config"]["conversation"]["client_events"]


@pytest.mark.parametrize(("api_type", "expected"), [(None, "chat_completions"), ("chatCompletions", "chat_completions"),
                                                    ("responses", "responses")])
def test_api_type_follows_the_spec(api_type: str | None, expected: str) -> None:
    body = voice_agent() if api_type is None else voice_agent(llm__apiType=api_type)
    jsonschema.validate(body, crd_schema())
    custom_llm = desired_agent(with_defaults(body["spec"]), "sec_1")["conversation_config"]["agent"]["prompt"][
        "custom_llm"]
    assert custom_llm["api_type"] == expected
    assert custom_llm["url"] == "https://voice.example.com/v1"  # ElevenLabs appends /chat/completions or /responses


def vendor_schema() -> dict[str, Any]:
    if not ELEVENLABS_SPEC.is_file():
        pytest.fail(f"ElevenLabs' request schemas are missing: {ELEVENLABS_SPEC} (check out shared/ beside the clone)")
    schema: dict[str, Any] = json.loads(ELEVENLABS_SPEC.read_text())
    return schema


def vendor_root(name: str) -> dict[str, Any]:
    spec = vendor_schema()
    return {"$schema": spec["$schema"], "$defs": spec["$defs"], **spec["x-roots"][name]}


def undeclared_fields(instance: Any, schema: dict[str, Any], defs: dict[str, Any], path: str = "") -> list[str]:
    """Fields of `instance` the vendor schema does not declare. ElevenLabs' schemas allow unknown fields, so a
    misspelt or misplaced one would validate, then be ignored by the real service."""
    if "$ref" in schema:
        return undeclared_fields(instance, defs[schema["$ref"].rsplit("/", 1)[-1]], defs, path)
    options = [defs[o["$ref"].rsplit("/", 1)[-1]] if "$ref" in o else o for o in schema.get("anyOf", [schema])]
    if isinstance(instance, dict):
        declared = [o for o in options if "properties" in o]
        if not declared:
            return []
        found = []
        for key, value in instance.items():
            owner = next((o for o in declared if key in o["properties"]), None)
            if owner is None:
                found.append(f"{path}.{key}")
            else:
                found += undeclared_fields(value, owner["properties"][key], defs, f"{path}.{key}")
        return found
    if isinstance(instance, list):
        items = next((o["items"] for o in options if "items" in o), {})
        return [found for index, item in enumerate(instance)
                for found in undeclared_fields(item, items, defs, f"{path}[{index}]")]
    return []


AGENT_CASES = {**MATRIX, "responses": {"llm__apiType": "responses"}}


@pytest.mark.parametrize("case", AGENT_CASES)
def test_agent_body_is_what_elevenlabs_accepts_on_create_and_update(case: str) -> None:
    body = voice_agent(**AGENT_CASES[case])
    jsonschema.validate(body, crd_schema())
    agent = desired_agent(with_defaults(body["spec"]), "sec_1")
    for root in ("agent_create_request", "agent_update_request"):  # POST /v1/convai/agents/create, PATCH …/{id}
        jsonschema.Draft202012Validator(vendor_root(root)).validate(agent)
    defs = vendor_schema()["$defs"]
    assert undeclared_fields(agent, vendor_root("agent_create_request"), defs) == []
    # what ElevenLabs assumes when a field is left out is not what the page needs: each is set, to a value it accepts
    overrides = defs["ConversationInitiationClientDataConfig-Input"]["properties"]["custom_llm_extra_body"]
    assert overrides["default"] is False and agent["platform_settings"]["overrides"]["custom_llm_extra_body"] is True
    api_types = defs["CustomLLM"]["properties"]["api_type"]["anyOf"][0]["enum"]
    assert agent["conversation_config"]["agent"]["prompt"]["custom_llm"]["api_type"] in api_types
    assert "default" not in defs["ConversationConfig"]["properties"]["client_events"]  # no documented default
    assert set(agent["conversation_config"]["conversation"]["client_events"]) <= set(defs["ClientEvent"]["enum"])


def test_crd_requires_what_the_operator_checks() -> None:
    """`glimpse-operator render` checks spec.REQUIRED_FIELDS itself (no API server read the file): the CRD's list."""
    def required(schema: dict[str, Any], prefix: str = "") -> set[str]:
        found = {prefix + field for field in schema.get("required", [])
                 if schema["properties"][field].get("type") != "object"}
        for field, child in schema.get("properties", {}).items():
            if child.get("type") == "object":
                found |= required(child, f"{prefix}{field}.")
        return found

    # spec.pod's (a seccomp profile's type) are pod_settings.py's to check, by models the CRD test holds to the CRD
    found = {path for path in required(crd_schema()["properties"]["spec"]) if not path.startswith("pod.")}
    assert found == set(REQUIRED_FIELDS)


def test_crd_defaults_are_the_operators_defaults() -> None:
    def defaults(schema: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        found: dict[str, Any] = {}
        for field, child in schema.get("properties", {}).items():
            inner = defaults(child, f"{prefix}{field}.") if "properties" in child else {}
            if inner:
                found |= inner
            elif "default" in child:  # a leaf, or an object none of whose fields has a default (proxy.resources)
                found[prefix + field] = child["default"]
        return found

    def leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in tree.items():
            if isinstance(value, dict) and value:
                found |= leaves(value, f"{prefix}{key}.")
            else:
                found[prefix + key] = value
        return found

    crd_defaults = defaults(crd_schema()["properties"]["spec"])
    assert crd_defaults["llm.apiType"] == "chatCompletions"
    assert crd_defaults["proxy.replicas"] == 1  # works on any cluster: more replicas need Redis and GCS
    # spec.ingress's and spec.httpRoute's, inside the block only when it is given
    assert {k: v for k, v in crd_defaults.items() if not k.endswith(".key")} == leaves({**DEFAULTS, **ROUTE_DEFAULTS})


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


@pytest.mark.parametrize(("change", "value"), [("llm__provider", "anthropic"), ("llm__apiType", "completions"),
                                               ("images__delivery", "carrier"),
                                               ("proxy__replicas", 0), ("ingress__host", "Not A Host"),
                                               ("images__storage", "azure://bucket"),
                                               ("images__storage", "s3://"),
                                               ("images__s3EndpointUrl", "minio:9000")])
def test_crd_schema_rejects_bad_specs(change: str, value: Any) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(voice_agent(**{change: value}), crd_schema())
    body = voice_agent()
    del body["spec"]["llm"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(copy.deepcopy(body), crd_schema())


def test_autoscaling_on_active_streams_targets_the_proxys_gauge() -> None:
    """A Pods metric named as the proxy exports it, averaged per pod; CPU stays the default."""
    body = voice_agent(**MATRIX["gemini-autoscaled"])
    hpa = render_proxy(body, with_defaults(body["spec"]), "agent_123", SECRETS, PROXY_IMAGE)[-1]
    target = {"type": "AverageValue", "averageValue": "12"}
    assert hpa["spec"]["metrics"] == [{"type": "Pods", "pods": {"metric": {"name": "glimpse_active_streams"},
                                                                "target": target}}]
    assert ACTIVE_STREAMS_METRIC in Path(metrics.__file__).read_text()
    cpu = voice_agent(proxy__autoscaling={"enabled": True}, proxy__store="redis://r:6379/0",
                      images__storage="gs://b/p")
    hpa = render_proxy(cpu, with_defaults(cpu["spec"]), "agent_123", SECRETS, PROXY_IMAGE)[-1]
    assert hpa["spec"]["metrics"][0]["resource"] == {"name": "cpu", "target": {"type": "Utilization",
                                                                               "averageUtilization": 70}}


def test_a_rotated_key_changes_the_pod_template() -> None:
    """The pods read keys from Secrets only when they start: a new key must change the template to roll them."""
    body = voice_agent()
    spec = with_defaults(body["spec"])
    before = secrets_hash({"llm": "sk-1", "elevenlabs": "el-1", **SECRETS})
    after = secrets_hash({"llm": "sk-2", "elevenlabs": "el-1", **SECRETS})
    templates = [render_deployment(body, spec, "agent_123", PROXY_IMAGE, digest)["spec"]["template"]
                 for digest in (before, after)]
    assert before != after
    assert templates[0]["metadata"]["annotations"]["glimpse.dev/secrets-hash"] == before
    assert templates[0] != templates[1] and templates[0]["spec"] == templates[1]["spec"]


def test_fallbacks_become_an_upstreams_setting_the_proxy_loads() -> None:
    """The ConfigMap and the pod's env, as the kubelet would fill them, read by the proxy's own settings: the
    primary, then each fallback with its model and its key from its own Secret (no key in the ConfigMap)."""
    body = voice_agent(llm__fallbacks=[
        {"name": "gemini", "provider": "gemini", "model": "gemini-2.5-flash", "apiKeySecretRef": {"name": "gemini"}},
        {"name": "vllm", "provider": "openai-compatible", "baseUrl": "http://vllm:8000/v1", "model": "llama",
         "apiKeySecretRef": {"name": "vllm", "key": "token"}}])
    objects = {o["kind"]: o for o in render_proxy(body, with_defaults(body["spec"]), "agent_123", SECRETS,
                                                  PROXY_IMAGE)}
    secrets = {("openai", "apiKey"): "sk-openai", ("gemini", "apiKey"): "gm-key", ("vllm", "token"): "vllm-token",
               ("elevenlabs", "apiKey"): "xi-key", ("glimpse-museum-guide", "customLlmKey"): "k" * 43,
               ("glimpse-museum-guide", "signingSecret"): "s" * 43}
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = dict(objects["ConfigMap"]["data"])
    assert "sk-openai" not in json.dumps(env) and "gm-key" not in json.dumps(env)
    for variable in container["env"]:
        ref = variable["valueFrom"]["secretKeyRef"]
        env[variable["name"]] = secrets[(ref["name"], ref["key"])]
    targets = Settings.load(env=env).upstream_targets
    assert [(t.name, t.provider, t.model, t.api_key.get_secret_value()) for t in targets] == [
        ("primary", "openai", "", "sk-openai"), ("gemini", "gemini", "gemini-2.5-flash", "gm-key"),
        ("vllm", "openai-compatible", "llama", "vllm-token")]
    assert targets[1].base_url == "https://generativelanguage.googleapis.com/v1beta/openai/"


def test_the_operator_sizes_the_pod_from_the_spec_without_the_proxys_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    larger = Settings.load(env={"GLIMPSE_IMAGE_MAX_BYTES": str(20 * MiB)})

    def refuse(*args: object, **kwargs: object) -> Settings:
        raise AssertionError("the operator built the proxy's Settings")

    monkeypatch.setattr(Settings, "load", refuse)
    assert proxy_memory_limit({"images": {"maxBytes": 20 * MiB}}) == f"{memory_limit_mib(larger.decode_budget)}Mi"
    assert memory_limit_mib(larger.decode_budget) == (96 + 256 + 8 * 20 + 8 * 20.25  # the upload bodies too
                                                    + 128 + 64 + 64)  # and the turns' pictures


@pytest.mark.parametrize(("resources", "expected"), [
    ({}, {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "770Mi"}}),
    ({"requests": {"cpu": "250m", "memory": "256Mi"}},
     {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "770Mi"}}),
    ({"limits": {"cpu": "2"}}, {"limits": {"cpu": "2", "memory": "770Mi"}}),
    ({"limits": {"memory": "1Gi"}}, {"limits": {"memory": "1Gi"}}),
])
def test_a_proxy_always_has_a_memory_limit(resources: dict[str, Any], expected: dict[str, Any]) -> None:
    """As the chart's template: the spec's requests and limits, and the derived memory limit unless it sets one (a
    pod without one is killed unpredictably under node pressure; checkov's CKV_K8S_13)."""
    body = voice_agent(proxy__resources=resources)
    deployment = render_deployment(body, with_defaults(body["spec"]), "agent_1", PROXY_IMAGE)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"] == expected
