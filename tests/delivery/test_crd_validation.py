"""The VoiceAgent CRD's admission-time validation, done as the API server does it: structural defaulting, the OpenAPI
schema (jsonschema), then every `x-kubernetes-validations` rule where it sits in the schema, evaluated by a CEL
interpreter (cel-python: the same CEL, RE2 for `matches`). Each rule is shown to refuse a spec that cannot work and to
accept one that can; the defaults are shown to be the operator's, and to make a minimal VoiceAgent valid."""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pytest
import yaml
from celpy import celtypes

from glimpse_operator import pod_settings
from glimpse_operator.render import (
    FALLBACK_KEY_ENV,
    MAX_NAME_LENGTH,
    OPERATOR_ENV,
    OWN_VOLUMES,
    labels,
    object_name,
    render_proxy,
)
from glimpse_operator.spec import InvalidSpec, with_defaults
from tests import restricted_v2
from tests.operator import support
from tests.paths import ROOT

CRD = ROOT / "manifests" / "crd" / "voiceagent.yaml"
# the reasons a rule may give (apiextensions.k8s.io/v1 ValidationRule.reason)
REASONS = {"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"}
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@functools.cache
def _schema_text() -> str:
    return CRD.read_text()


def schema() -> dict[str, Any]:
    crd = yaml.safe_load(_schema_text())
    root: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root


# --- what the API server does with a custom resource, in order -------------------------------------------------------

def defaulted(value: Any, node: dict[str, Any]) -> Any:
    """Structural defaulting: a missing (or null, non-nullable) property with a `default` gets it, and defaults apply
    inside defaults too."""
    if isinstance(value, dict):
        properties = node.get("properties", {})
        additional = node.get("additionalProperties")
        result = {}
        for key, child_value in value.items():
            child = properties.get(key, additional if isinstance(additional, dict) else None)
            if child_value is None and not (child or {}).get("nullable"):
                continue  # pruned, so a default may take its place
            result[key] = defaulted(child_value, child) if child else child_value
        for key, child in properties.items():
            if key not in result and "default" in child:
                result[key] = defaulted(copy.deepcopy(child["default"]), child)
        return result
    if isinstance(value, list) and "items" in node:
        return [defaulted(item, node["items"]) for item in value]
    return value


def schema_errors(body: dict[str, Any]) -> list[str]:
    """The OpenAPI schema's refusals of the defaulted object, as `.path: message`."""
    validator = jsonschema.Draft202012Validator(schema())
    return sorted(f".{'.'.join(map(str, error.absolute_path))}: {error.message}"
                  for error in validator.iter_errors(defaulted(body, schema())))


ENVIRONMENT = celpy.Environment()


@functools.cache
def _program(expression: str) -> celpy.Runner:
    return ENVIRONMENT.program(ENVIRONMENT.compile(expression))


def evaluate(expression: str, value: Any) -> Any:
    result = _program(expression).evaluate({"self": celpy.json_to_cel(value)})
    if isinstance(result, celpy.CELEvalError):  # e.g. a field that is not there: the API server refuses the request
        raise result
    return result


def _message(rule: dict[str, Any], value: Any) -> str:
    if "messageExpression" in rule:
        message = evaluate(rule["messageExpression"], value)
        assert isinstance(message, str), rule["messageExpression"]
        return str(message)
    return str(rule.get("message") or f"failed rule: {rule['rule']}")


def _rule_errors(value: Any, node: dict[str, Any], where: str) -> list[str]:
    errors = []
    for rule in node.get("x-kubernetes-validations", []):
        verdict = evaluate(rule["rule"], value)
        assert isinstance(verdict, celtypes.BoolType), f"{rule['rule']} must be a boolean"
        if not verdict:
            errors.append(f"{where}{rule.get('fieldPath', '')}: {_message(rule, value)}")
    if isinstance(value, dict):
        additional = node.get("additionalProperties")
        for key, child_value in value.items():
            child = node.get("properties", {}).get(key, additional if isinstance(additional, dict) else None)
            if child:
                errors += _rule_errors(child_value, child, f"{where}.{key}")
    elif isinstance(value, list) and "items" in node:
        for item in value:
            errors += _rule_errors(item, node["items"], f"{where}[]")
    return errors


def rule_errors(body: dict[str, Any]) -> list[str]:
    """The CEL rules' refusals of the defaulted object, as `.path.fieldPath: message`."""
    return sorted(_rule_errors(defaulted(body, schema()), schema(), ""))


# --- VoiceAgents -----------------------------------------------------------------------------------------------------

voice_agent = support.written_voice_agent  # what a person writes: no uid, no generation

SHARED = {"proxy__store": "redis://redis.voice.svc:6379/0", "images__storage": "gs://bucket/glimpse"}
AUTOSCALING = {"enabled": True, "minReplicas": 2, "maxReplicas": 6}
STORE_ERROR = ".spec.proxy.store: more than one proxy replica (or autoscaling) needs a conversation store"
STORAGE_ERROR = ".spec.images.storage: more than one proxy replica (or autoscaling) needs image storage"
S3_ENDPOINT_ERROR = ".spec.images.s3EndpointUrl: spec.images.s3EndpointUrl is for s3:// storage only"
S3_CREDENTIALS_ERROR = (".spec.images.s3CredentialsSecretRef: spec.images.s3CredentialsSecretRef is for s3:// storage "
                        "only")
MINIO_KEYS = {"name": "minio-keys", "accessKeyIdKey": "rootUser", "secretAccessKeyKey": "rootPassword"}
BASE_URL_ERROR = ".spec.llm.baseUrl: spec.llm.baseUrl is required when spec.llm.provider is openai-compatible"
NAME_ERROR = ": metadata.name has 60 characters, at most 55 are allowed"
RESOURCE_NAMES_ERROR = ".spec.proxy.resources.{}: the proxy's resources are cpu, memory and ephemeral-storage"
ROUTE_ERROR = ".spec.ingress: spec.ingress (an Ingress host) or spec.httpRoute (a Gateway API HTTPRoute"
AUTOSCALING_ERROR = ".spec.proxy.autoscaling.minReplicas: spec.proxy.autoscaling.minReplicas must not be above"

GEMINI_FALLBACK = {"name": "gemini", "provider": "gemini", "model": "gemini-2.5-flash",
                   "apiKeySecretRef": {"name": "gemini"}}
FALLBACK_NAMES_ERROR = ".spec.llm.fallbacks: each fallback needs its own name"
FALLBACK_BASE_URL_ERROR = ".spec.llm.fallbacks[].baseUrl: a fallback's baseUrl is required"

ACCEPTED = {
    "minimal": voice_agent(),
    "one-replica-memory": voice_agent(proxy__replicas=1, proxy__store="memory://"),
    "two-replicas-redis-gcs": voice_agent(proxy__replicas=2, **SHARED),
    "rediss": voice_agent(proxy__replicas=3, proxy__store="rediss://:pw@redis:6380/1",
                          images__storage="gs://bucket"),
    "autoscaled-redis-gcs": voice_agent(proxy__autoscaling=AUTOSCALING, **SHARED),
    "two-replicas-redis-s3": voice_agent(proxy__replicas=2, proxy__store="redis://redis:6379/0",
                                         images__storage="s3://glimpse-images/voice"),
    "autoscaled-redis-minio": voice_agent(proxy__autoscaling=AUTOSCALING, proxy__store="redis://redis:6379/0",
                                          images__storage="s3://glimpse", images__s3EndpointUrl="http://minio:9000"),
    "minio-with-access-keys": voice_agent(images__storage="s3://glimpse", images__s3EndpointUrl="http://minio:9000",
                                          images__s3CredentialsSecretRef=MINIO_KEYS),
    "s3-access-keys-default-key-names": voice_agent(images__storage="s3://glimpse",
                                                    images__s3CredentialsSecretRef={"name": "r2-keys"}),
    "openai-compatible-with-base-url": voice_agent(llm__provider="openai-compatible",
                                                   llm__baseUrl="http://vllm.models:8000/v1"),
    "gemini-without-base-url": voice_agent(llm__provider="gemini", llm__model="gemini-2.5-flash"),
    f"name-of-{MAX_NAME_LENGTH}": voice_agent(name="a" * MAX_NAME_LENGTH),
    "resources": voice_agent(proxy__resources={"requests": {"cpu": "250m", "memory": "256Mi"},
                                               "limits": {"cpu": 1, "memory": "1.5Gi", "ephemeral-storage": "1G"}}),
    "autoscaling-min-equals-max": voice_agent(proxy__autoscaling={**AUTOSCALING, "maxReplicas": 2}, **SHARED),
    "autoscaling-on-active-streams": voice_agent(proxy__autoscaling={**AUTOSCALING, "metric": "activeStreams",
                                                                     "targetActiveStreams": 15}, **SHARED),
    "gateway-route-instead-of-ingress": voice_agent(**support.MATRIX["gateway-route"]),
    "gateway-route-beside-ingress": voice_agent(**support.MATRIX["route-beside-ingress"]),
    "fallbacks": voice_agent(llm__fallbacks=[GEMINI_FALLBACK, {**GEMINI_FALLBACK, "name": "vllm",
                                                               "provider": "openai-compatible",
                                                               "baseUrl": "http://vllm:8000/v1"}]),
    "network-policy-peers": voice_agent(networkPolicy={
        "ingressFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
                         "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["a"]}]}},
                        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
        "metricsFrom": [{"podSelector": {}}],
        "extraEgress": [{"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 4317, "protocol": "TCP"}]},
                        {"ports": [{"port": "otlp-grpc"}, {"port": 3128, "endPort": 3130}]}]}),
    "network-policy-off": voice_agent(networkPolicy={"enabled": False}),
    "fitted-pods": voice_agent(pod=support.FITTED_POD),
    # IDs pinned, as a cluster without OpenShift's ranges may want; a UID above 0 only
    "pinned-ids": voice_agent(pod__securityContext={"runAsUser": 10001, "runAsGroup": 0, "fsGroup": 10001},
                              pod__containerSecurityContext={"runAsUser": 10001, "readOnlyRootFilesystem": False}),
    "every-allowed-volume": voice_agent(
        pod__volumes=[{"name": f"v-{source.lower()}", source: {}} for source in pod_settings.VOLUME_SOURCES],
        pod__volumeMounts=[{"name": "v-emptydir", "mountPath": "/tmp-scratch"}]),
    # a projected volume of what the pod may read anyway: a ConfigMap, a Secret, the downward API (no token)
    "projected-without-token": voice_agent(pod__volumes=[{"name": "bundle", "projected": {"defaultMode": 0o440,
                                                                                          "sources": [
        {"configMap": {"name": "ca"}}, {"secret": {"name": "client-cert"}},
        {"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]}}]),
    "own-topology-selector": voice_agent(pod__topologySpreadConstraints=[{
        "maxSkew": 2, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"team": "voice"}}}]),
}

# spec.pod: what would give a VoiceAgent's author more than the namespace's RBAC and the restricted Pod Security
# Standard do, or touch what the operator sets (the operator's own check refuses the same: a test below)
POD_REFUSED_BY_RULES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "operator-annotation": ({"pod__annotations": {"glimpse.dev/config-hash": "0"}},
                            [".spec.pod.annotations: glimpse.dev/ annotations are the operator's own"]),
    # what the restricted Pod Security Standard refuses, where no namespace enforces it
    "apparmor-unconfined": ({"pod__annotations": {
        "container.apparmor.security.beta.kubernetes.io/proxy": "unconfined"}},
        [".spec.pod.annotations: AppArmor and legacy seccomp annotations are not allowed"]),
    "legacy-seccomp-pod": ({"pod__annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}},
                           [".spec.pod.annotations: AppArmor and legacy seccomp annotations are not allowed"]),
    "legacy-seccomp-container": ({"pod__annotations": {
        "container.seccomp.security.alpha.kubernetes.io/proxy": "unconfined"}},
        [".spec.pod.annotations: AppArmor and legacy seccomp annotations are not allowed"]),
    "selector-label": ({"pod__labels": {"team": "voice", "app.kubernetes.io/instance": "other-agent"}},
                       [".spec.pod.labels: app.kubernetes.io/name, component, instance and managed-by"]),
    "operator-label-prefix": ({"pod__labels": {"glimpse.dev/x": "1"}}, [".spec.pod.labels: app.kubernetes.io/name"]),
    "env-the-operator-sets": ({"pod__env": [{"name": "GLIMPSE_UPSTREAM_BASE_URL", "value": "https://evil.test"}]},
                              [".spec.pod.env[].name: GLIMPSE_UPSTREAM_BASE_URL is set by the operator"]),
    "env-a-generated-key": ({"pod__env": [{"name": "GLIMPSE_CUSTOM_LLM_KEY", "value": "known"}]},
                            [".spec.pod.env[].name: GLIMPSE_CUSTOM_LLM_KEY is set by the operator"]),
    "env-a-fallback-key": ({"pod__env": [{"name": "GLIMPSE_FALLBACK_3_API_KEY", "value": "x"}]},
                           [".spec.pod.env[].name: GLIMPSE_FALLBACK_3_API_KEY is set by the operator"]),
    "host-path-volume": ({"pod__volumes": [{"name": "node", "hostPath": {"path": "/"}}]},
                         [".spec.pod.volumes[]: a volume needs exactly one of configMap"]),
    "volume-without-source": ({"pod__volumes": [{"name": "nothing"}]},
                              [".spec.pod.volumes[]: a volume needs exactly one of configMap"]),
    "volume-of-two-sources": ({"pod__volumes": [{"name": "two", "emptyDir": {}, "secret": {"secretName": "s"}}]},
                              [".spec.pod.volumes[]: a volume needs exactly one of configMap"]),
    # a token for the pods' account with any audience (STS: any role trusting it), against "mounts no API token"
    "projected-service-account-token": ({"pod__volumes": [{"name": "token", "projected": {"sources": [
        {"configMap": {"name": "ca"}}, {"serviceAccountToken": {"audience": "sts.amazonaws.com", "path": "token"}}]}}]},
        [".spec.pod.volumes[].projected.sources[]: a serviceAccountToken source is not allowed"]),
    "the-operators-volume": ({"pod__volumes": [{"name": "tmp", "emptyDir": {}}]},
                             [".spec.pod.volumes[].name: tmp is the operator's own volume"]),
    "mount-over-the-operators": ({"pod__volumes": [{"name": "x", "emptyDir": {}}],
                                  "pod__volumeMounts": [{"name": "x", "mountPath": "/data/images/"}]},
                                 [".spec.pod.volumeMounts[].mountPath: /tmp and /data/images are where the operator"]),
    "pod-root-user": ({"pod__securityContext": {"runAsUser": 0}},
                      [".spec.pod.securityContext.runAsUser: the proxy never runs as root"]),
    "pod-root-allowed": ({"pod__securityContext": {"runAsNonRoot": False}},
                         [".spec.pod.securityContext.runAsNonRoot: the proxy never runs as root"]),
    "container-root-user": ({"pod__containerSecurityContext": {"runAsUser": 0}},
                            [".spec.pod.containerSecurityContext.runAsUser: the proxy never runs as root"]),
    "container-root-allowed": ({"pod__containerSecurityContext": {"runAsNonRoot": False}},
                               [".spec.pod.containerSecurityContext.runAsNonRoot: the proxy never runs as root"]),
    "privileged": ({"pod__containerSecurityContext": {"privileged": True}},
                   [".spec.pod.containerSecurityContext.privileged: the proxy never runs privileged"]),
    "privilege-escalation": ({"pod__containerSecurityContext": {"allowPrivilegeEscalation": True}},
                             [".spec.pod.containerSecurityContext.allowPrivilegeEscalation: allowPrivilegeEscalation"]),
    "added-capability": ({"pod__containerSecurityContext": {"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}},
                         [".spec.pod.containerSecurityContext.capabilities.add: no capability may be added"]),
    "capabilities-kept": ({"pod__containerSecurityContext": {"capabilities": {"drop": ["NET_RAW"]}}},
                          [".spec.pod.containerSecurityContext.capabilities.drop: capabilities.drop must keep ALL"]),
}

# spec.pod values of the wrong shape (the operator's own check refuses them too)
POD_REFUSED_BY_SCHEMA: dict[str, dict[str, Any]] = {
    "uid-as-a-string": {"pod__securityContext": {"runAsUser": "10001"}},
    "negative-fs-group": {"pod__securityContext": {"fsGroup": -1}},
    "unconfined-seccomp": {"pod__securityContext": {"seccompProfile": {"type": "Unconfined"}}},
    "container-unconfined-seccomp": {"pod__containerSecurityContext": {"seccompProfile": {"type": "Unconfined"}}},
    "privileged-as-a-string": {"pod__containerSecurityContext": {"privileged": "false"}},
    "env-name-not-a-name": {"pod__env": [{"name": "1=x", "value": "y"}]},
    "env-without-a-name": {"pod__env": [{"value": "y"}]},
    "node-selector-not-strings": {"pod__nodeSelector": {"pool": 3}},
    "label-not-a-string": {"pod__labels": {"tier": True}},
    "volume-name-not-a-label": {"pod__volumes": [{"name": "Otel_CA", "emptyDir": {}}]},
    "mount-without-a-path": {"pod__volumes": [{"name": "x", "emptyDir": {}}], "pod__volumeMounts": [{"name": "x"}]},
    "service-account-create-a-string": {"pod__serviceAccount": {"create": "yes"}},
    "tolerations-not-a-list": {"pod__tolerations": {"key": "dedicated"}},
}

# spec changes -> what the CEL rules say (every rule is refused by at least one case; a test checks)
REFUSED_BY_RULES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "two-replicas-memory": ({"proxy__replicas": 2}, [STORAGE_ERROR, STORE_ERROR]),
    "two-replicas-memory-store-explicit": ({"proxy__replicas": 2, "proxy__store": "memory://"},
                                           [STORAGE_ERROR, STORE_ERROR]),
    "two-replicas-redis-only": ({"proxy__replicas": 2, "proxy__store": "redis://redis:6379/0"}, [STORAGE_ERROR]),
    "two-replicas-gcs-only": ({"proxy__replicas": 2, "images__storage": "gs://bucket/glimpse"}, [STORE_ERROR]),
    "two-replicas-local-files": ({"proxy__replicas": 2, "proxy__store": "redis://redis:6379/0",
                                  "images__storage": "file:///data/images"}, [STORAGE_ERROR]),
    "two-replicas-s3-only": ({"proxy__replicas": 2, "images__storage": "s3://bucket/glimpse"}, [STORE_ERROR]),
    "s3-endpoint-without-s3": ({"images__storage": "gs://bucket", "images__s3EndpointUrl": "http://minio:9000"},
                               [S3_ENDPOINT_ERROR]),
    "s3-credentials-without-s3": ({"images__storage": "gs://bucket", "images__s3CredentialsSecretRef": MINIO_KEYS},
                                  [S3_CREDENTIALS_ERROR]),
    "s3-credentials-on-local-disk": ({"images__s3CredentialsSecretRef": {"name": "r2-keys"}}, [S3_CREDENTIALS_ERROR]),
    "autoscaling-memory": ({"proxy__autoscaling": AUTOSCALING}, [STORAGE_ERROR, STORE_ERROR]),
    "autoscaling-min-above-max": ({"proxy__autoscaling": {**AUTOSCALING, "minReplicas": 7}, **SHARED},
                                  [AUTOSCALING_ERROR]),
    "openai-compatible-without-base-url": ({"llm__provider": "openai-compatible"}, [BASE_URL_ERROR]),
    "unknown-resource": ({"proxy__resources": {"requests": {"cpu": "1", "nvidia.com/gpu": 1}}},
                         [RESOURCE_NAMES_ERROR.format("requests")]),
    "unknown-limit": ({"proxy__resources": {"limits": {"memroy": "1Gi"}}}, [RESOURCE_NAMES_ERROR.format("limits")]),
    "fallbacks-same-name": ({"llm__fallbacks": [GEMINI_FALLBACK, GEMINI_FALLBACK]}, [FALLBACK_NAMES_ERROR]),
    "fallback-named-primary": ({"llm__fallbacks": [{**GEMINI_FALLBACK, "name": "primary"}]}, [FALLBACK_NAMES_ERROR]),
    "fallback-compatible-without-base-url": ({"llm__fallbacks": [{**GEMINI_FALLBACK,
                                                                  "provider": "openai-compatible"}]},
                                             [FALLBACK_BASE_URL_ERROR]),
    "neither-ingress-nor-route": ({"ingress": None}, [ROUTE_ERROR]),
    **POD_REFUSED_BY_RULES,
}

# spec changes the OpenAPI schema refuses (proxy.resources was free-form; now maps of quantities)
REFUSED_BY_SCHEMA: dict[str, dict[str, Any]] = {
    "requests-not-a-map": {"proxy__resources": {"requests": "100m"}},
    "quantity-not-a-quantity": {"proxy__resources": {"requests": {"cpu": "lots"}}},
    "quantity-negative": {"proxy__resources": {"limits": {"memory": "-1Gi"}}},
    "quantity-a-list": {"proxy__resources": {"limits": {"cpu": [1]}}},
    "quantity-a-boolean": {"proxy__resources": {"requests": {"memory": True}}},
    "quantity-a-fraction": {"proxy__resources": {"requests": {"cpu": 0.5}}},  # written "500m" or "0.5"
    "too-many-resources": {"proxy__resources": {"requests": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1Gi",
                                                             "hugepages-2Mi": "1Gi"}}},
    "base-url-not-http": {"llm__provider": "openai-compatible", "llm__baseUrl": "vllm:8000"},
    "s3-without-bucket": {"images__storage": "s3://"},
    "s3-bucket-not-a-bucket-name": {"images__storage": "s3://My_Bucket/glimpse"},
    "s3-endpoint-not-http": {"images__storage": "s3://bucket", "images__s3EndpointUrl": "minio:9000"},
    # a Secret's data keys are [-._a-zA-Z0-9]+ (Kubernetes' IsConfigMapKey): a pod naming another never starts
    "s3-credentials-key-not-a-secret-key": {"images__storage": "s3://bucket", "images__s3CredentialsSecretRef": {
        "name": "keys", "accessKeyIdKey": "access key"}},
    "fallback-without-model": {"llm__fallbacks": [{"name": "g", "apiKeySecretRef": {"name": "gemini"}}]},
    "five-fallbacks": {"llm__fallbacks": [{**GEMINI_FALLBACK, "name": f"g{i}"} for i in range(5)]},
    "autoscaling-on-memory": {"proxy__autoscaling": {"enabled": True, "metric": "memory"}},
    # spec.httpRoute: the HTTPRoute CRD's own limits, and what the agent's URL needs
    "route-without-parent-refs": {"httpRoute": {"parentRefs": [], "hostnames": ["voice.example.org"]}},
    "route-parent-ref-without-name": {"httpRoute": {"parentRefs": [{"namespace": "infra"}],
                                                    "hostnames": ["voice.example.org"]}},
    "route-without-hostnames": {"httpRoute": {"parentRefs": [{"name": "eg"}]}},
    "route-wildcard-hostname": {"httpRoute": {"parentRefs": [{"name": "eg"}], "hostnames": ["*.example.org"]}},
    "route-parent-port-zero": {"httpRoute": {"parentRefs": [{"name": "eg", "port": 0}],
                                             "hostnames": ["voice.example.org"]}},
    "route-33-parents": {"httpRoute": {"parentRefs": [{"name": f"gw{i}"} for i in range(33)],
                                       "hostnames": ["voice.example.org"]}},
    # NetworkPolicy peers as the API server takes them (else the reconcile's apply would fail, later)
    "peer-ip-block-beside-a-selector": {"networkPolicy": {"ingressFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"},
                                                                           "podSelector": {}}]}},
    "peer-empty": {"networkPolicy": {"metricsFrom": [{}]}},
    "peer-a-string": {"networkPolicy": {"ingressFrom": ["ingress-nginx"]}},
    "egress-port-protocol": {"networkPolicy": {"extraEgress": [{"ports": [{"port": 53, "protocol": "ICMP"}]}]}},
    "selector-operator": {"networkPolicy": {"ingressFrom": [{"podSelector": {"matchExpressions": [
        {"key": "app", "operator": "Equals", "values": ["a"]}]}}]}},
    "network-policy-enabled-a-string": {"networkPolicy": {"enabled": "no"}},
    **POD_REFUSED_BY_SCHEMA,
}


@pytest.mark.parametrize("case", ACCEPTED)
def test_specs_that_work_are_accepted(case: str) -> None:
    assert schema_errors(ACCEPTED[case]) == []
    assert rule_errors(ACCEPTED[case]) == []


@pytest.mark.parametrize("case", REFUSED_BY_RULES)
def test_specs_that_cannot_work_are_refused_by_the_rules(case: str) -> None:
    changes, expected = REFUSED_BY_RULES[case]
    body = voice_agent(**changes)
    assert schema_errors(body) == []  # the schema alone lets it through: the rule is what stops it
    errors = rule_errors(body)
    assert len(errors) == len(expected), errors
    for error, start in zip(errors, expected, strict=True):
        assert error.startswith(start), errors


@pytest.mark.parametrize("case", REFUSED_BY_SCHEMA)
def test_bad_values_are_refused_by_the_schema(case: str) -> None:
    assert schema_errors(voice_agent(**REFUSED_BY_SCHEMA[case]))


def test_a_name_too_long_for_the_service_is_refused() -> None:
    """glimpse-<name> names the Service: 60 characters would make a 68-character Service name."""
    body = voice_agent(name="a" * 60)
    errors = rule_errors(body)
    assert len(errors) == 1 and errors[0].startswith(NAME_ERROR), errors
    assert "glimpse-<name>" in errors[0]
    assert any("metadata.name" in error and "too long" in error for error in schema_errors(body))
    assert rule_errors(voice_agent(name="a" * (MAX_NAME_LENGTH + 1)))
    assert rule_errors(voice_agent(name="a" * MAX_NAME_LENGTH)) == []
    assert schema_errors(voice_agent(name="a" * MAX_NAME_LENGTH)) == []


@pytest.mark.parametrize("name", ["museum.guide", "Museum-guide", "-guide"])
def test_a_name_that_is_no_service_name_is_refused(name: str) -> None:
    """A VoiceAgent's name may be a DNS subdomain (dots); a Service's may not."""
    assert any(error.startswith(".metadata.name:") for error in schema_errors(voice_agent(name=name)))


def test_the_name_limit_is_what_every_derived_object_allows() -> None:
    """MAX_NAME_LENGTH is the tightest limit of everything the operator derives from the name: the Service's name (a
    DNS-1035 label, at most 63) and the instance label's value (at most 63); the other objects allow 253."""
    crd_name = schema()["properties"]["metadata"]["properties"]["name"]
    assert crd_name["maxLength"] == MAX_NAME_LENGTH
    assert any(f"size(self.metadata.name) <= {MAX_NAME_LENGTH}" == rule["rule"]
               for rule in schema()["x-kubernetes-validations"])

    def derived(name: str) -> list[dict[str, Any]]:
        body = {**voice_agent(name=name), "metadata": {"name": name, "namespace": "voice", "uid": "u"}}
        return render_proxy(body, with_defaults(body["spec"]), "agent_1", {"customLlmKey": "k", "signingSecret": "s"},
                            "glimpse/proxy:1")

    longest = "a" * (MAX_NAME_LENGTH - 2) + "-b"
    for obj in derived(longest):
        name = obj["metadata"]["name"]
        assert len(name) <= 253 and DNS_1123_SUBDOMAIN.match(name)
        if obj["kind"] == "Service":
            assert len(name) == 63 and DNS_1035_LABEL.match(name)
        assert all(len(value) <= 63 for value in obj["metadata"]["labels"].values())
    assert max(len(value) for value in labels(longest).values()) <= 63
    too_long = next(o for o in derived("a" * (MAX_NAME_LENGTH + 1)) if o["kind"] == "Service")
    assert len(too_long["metadata"]["name"]) == 64 == len(object_name("a" * (MAX_NAME_LENGTH + 1)))


# --- the rules themselves --------------------------------------------------------------------------------------------

def rule_sites(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Every rule with where it sits (`.spec.llm`; `.*` for a map's values) and the schema node it sits on."""
    for rule in node.get("x-kubernetes-validations", []):
        yield path, node, rule
    for key, child in node.get("properties", {}).items():
        yield from rule_sites(child, f"{path}.{key}")
    if isinstance(node.get("additionalProperties"), dict):
        yield from rule_sites(node["additionalProperties"], f"{path}.*")
    if "items" in node:
        yield from rule_sites(node["items"], f"{path}[]")


RULES = list(rule_sites(schema()))
RULE_IDS = [f"{path or '<root>'}: {rule['rule'][:40]}" for path, _, rule in RULES]
SELF_PATH = re.compile(r"\bself((?:\.[A-Za-z_][A-Za-z0-9_]*)+)(\s*\()?")
HAS = re.compile(r"\bhas\(self\.([A-Za-z_][A-Za-z0-9_.]*)\)")


def fields_read(rule: str) -> list[list[str]]:
    """The `self.a.b` field paths a rule reads (a trailing method call such as `.startsWith(` is no field; a
    `has(self.a.b)` tests presence and reads nothing, so an absent field is fine there)."""
    paths = []
    for match in SELF_PATH.finditer(re.sub(r"has\(self(\.\w+)+\)", "true", rule)):
        parts = match.group(1).strip(".").split(".")
        paths.append(parts[:-1] if match.group(2) else parts)
    return [path for path in paths if path]


def test_every_rule_is_exercised() -> None:
    """Each rule refuses at least one case above (else it is untested, or can never fire)."""
    refused_at = {start.partition(":")[0] for _, starts in REFUSED_BY_RULES.values() for start in starts}
    refused_at.add(NAME_ERROR.partition(":")[0])  # the name rule, at the root, has no fieldPath
    for path, _, rule in RULES:
        assert f"{path}{rule.get('fieldPath', '')}" in refused_at, rule["rule"]


@pytest.mark.parametrize(("path", "node", "rule"), RULES, ids=RULE_IDS)
def test_every_rule_is_what_the_api_server_accepts(path: str, node: dict[str, Any], rule: dict[str, Any]) -> None:
    """What the API server checks when the CRD is applied, as far as it can be checked here: the rule compiles, says
    what is wrong in one line, names a field that exists, reads only fields that are always there (required, or
    defaulted, or tested with has() first, so no rule fails on an absent field) and only strings of bounded length
    (the cost estimate)."""
    _program(rule["rule"])
    assert rule.get("message") or rule.get("messageExpression"), "say what is wrong"
    assert "\n" not in rule.get("message", "")
    if "messageExpression" in rule:
        _program(rule["messageExpression"])
    assert rule.get("reason", "FieldValueInvalid") in REASONS
    if "fieldPath" in rule:
        target = node
        for part in rule["fieldPath"].strip(".").split("."):
            target = target["properties"][part]
    for expression in filter(None, (rule["rule"], rule.get("messageExpression"))):
        tested = set(HAS.findall(expression))  # has(self.a.b): the rule reads a.b only where it is there
        for fields in fields_read(expression):
            parent, target = node, node
            for depth, part in enumerate(fields, 1):
                target = parent["properties"][part]
                always_there = "default" in target or part in parent.get("required", []) or (
                    path == "" and fields[:2] == ["metadata", "name"]) or (  # set by the API server before validation
                    ".".join(fields[:depth]) in tested)
                assert always_there, f"{expression}: {'.'.join(fields)} may be absent"
                parent = target
            if target.get("type") == "string":
                assert "maxLength" in target or "enum" in target, f"{expression}: {'.'.join(fields)} unbounded"


# --- defaults --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["minimal", "two-replicas-redis-gcs", "resources", "autoscaled-redis-gcs",
                                  "minio-with-access-keys", "s3-access-keys-default-key-names"])
def test_the_operator_defaults_exactly_as_the_api_server_does(case: str) -> None:
    """spec.DEFAULTS (used by `glimpse-operator render`, which reads files no API server has seen) is the CRD's."""
    spec = ACCEPTED[case]["spec"]
    assert with_defaults(spec) == defaulted(spec, schema()["properties"]["spec"])


def test_a_minimal_voice_agent_is_one_replica_on_memory_and_local_disk() -> None:
    """What works on any cluster: nothing shared is needed with one pod."""
    spec = defaulted(voice_agent()["spec"], schema()["properties"]["spec"])
    assert spec["proxy"]["replicas"] == 1 and spec["proxy"]["autoscaling"]["enabled"] is False
    assert spec["proxy"]["store"] == "" and spec["images"]["storage"] == ""


@pytest.mark.parametrize("path", sorted((ROOT / "manifests" / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_admitted(path: Path) -> None:
    body = yaml.safe_load(path.read_text())
    assert schema_errors(body) == []
    assert rule_errors(body) == []


@pytest.mark.parametrize("case", support.MATRIX)
def test_the_specs_the_render_tests_use_are_admitted(case: str) -> None:
    """The render tests render only VoiceAgents a cluster would accept."""
    body = support.voice_agent(**support.MATRIX[case])
    assert schema_errors(body) == []
    assert rule_errors(body) == []


# --- spec.pod: the CRD and the operator's own check (pod_settings.py) agree -----------------------------------------

POD_SCHEMA = schema()["properties"]["spec"]["properties"]["pod"]
# Each object spec.pod declares, and the operator's model of it: the same fields, no more (an unknown field is pruned
# by the API server, or refused by kubectl's strict field validation, and refused by the operator).
POD_MODELS = {
    "": pod_settings.PodFields, ".serviceAccount": pod_settings.ServiceAccount, ".env[]": pod_settings.EnvVar,
    ".volumes[]": pod_settings.Volume, ".volumeMounts[]": pod_settings.VolumeMount,
    ".securityContext": pod_settings.PodSecurityContext,
    ".containerSecurityContext": pod_settings.ContainerSecurityContext,
    ".containerSecurityContext.capabilities": pod_settings.Capabilities,
    ".securityContext.seccompProfile": pod_settings.SeccompProfile,
}


def pod_node(path: str) -> dict[str, Any]:
    node = POD_SCHEMA
    for part in filter(None, re.split(r"\.|(?=\[\])", path)):
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


@pytest.mark.parametrize("path", POD_MODELS)
def test_the_crd_declares_what_the_operator_models(path: str) -> None:
    model = POD_MODELS[path]
    declared = set(pod_node(path)["properties"])
    assert declared == {field.alias or name for name, field in model.model_fields.items()}
    assert not pod_node(path).get("x-kubernetes-preserve-unknown-fields")


def test_no_host_namespace_or_other_pod_field_can_be_given() -> None:
    """The pod spec's other fields (host namespaces, host ports and paths, its own ServiceAccount by name) are no field
    of spec.pod: the API server prunes them (kubectl's strict field validation refuses them), the operator refuses
    them in a file or a default it is given."""
    for field in ("hostNetwork", "hostPID", "hostIPC", "hostUsers", "serviceAccountName", "securityContext.sysctls"):
        *parents, leaf = field.split(".")
        assert leaf not in pod_node("".join(f".{p}" for p in parents))["properties"]
        with pytest.raises(InvalidSpec, match="no such field"):
            pod_settings.check({leaf: True} if not parents else {parents[0]: {leaf: []}}, "spec.pod")
    with pytest.raises(InvalidSpec, match=r"^spec.pod.serviceAccount.name: no such field$"):
        pod_settings.check({"serviceAccount": {"create": True, "name": "cluster-admin-bound"}}, "spec.pod")


def test_the_rules_name_what_the_operator_sets() -> None:
    """The CRD's lists of the operator's own variables, labels, volumes and mount paths are the operator's; the
    volume types it allows are the restricted Pod Security Standard's (and OpenShift restricted-v2's)."""
    [env_rule] = pod_node(".env[]")["x-kubernetes-validations"]
    assert set(re.findall(r"'([A-Z][A-Z0-9_]+)'", env_rule["rule"])) == OPERATOR_ENV
    assert re.findall(r"matches\('([^']+)'\)", env_rule["rule"]) == [FALLBACK_KEY_ENV]
    _, confinement_rule = pod_node(".annotations")["x-kubernetes-validations"]
    assert tuple(re.findall(r"startsWith\('([^']+)'\)", confinement_rule["rule"])) == \
        pod_settings.CONFINEMENT_PREFIXES
    [label_rule] = pod_node(".labels")["x-kubernetes-validations"]
    assert set(re.findall(r"'(app\.kubernetes\.io/[a-z-]+)'", label_rule["rule"])) == set(labels("x"))
    source_rule, name_rule = pod_node(".volumes[]")["x-kubernetes-validations"]
    assert re.findall(r"has\(self\.(\w+)\)", source_rule["rule"]) == list(pod_settings.VOLUME_SOURCES)
    assert set(pod_node(".volumes[]")["properties"]) == {"name", *pod_settings.VOLUME_SOURCES}
    assert set(pod_settings.VOLUME_SOURCES) <= restricted_v2.VOLUME_TYPES
    assert set(re.findall(r"'(\w+)'", name_rule["rule"])) == set(OWN_VOLUMES)
    [mount_rule] = pod_node(".volumeMounts[]")["x-kubernetes-validations"]
    for path in OWN_VOLUMES.values():
        for written in (path, path + "/"):
            assert evaluate(mount_rule["rule"], {"name": "x", "mountPath": written}) is not celtypes.BoolType(True)
    assert evaluate(mount_rule["rule"], {"name": "x", "mountPath": "/tmp-scratch"}) == celtypes.BoolType(True)


@pytest.mark.parametrize("case", [*POD_REFUSED_BY_RULES, *POD_REFUSED_BY_SCHEMA])
def test_the_operator_refuses_what_the_crd_refuses(case: str) -> None:
    """What no API server checked (the operator's defaults, `glimpse-operator render`'s files, a CRD older than the
    operator) meets the same refusals in the operator, as an InvalidSpec condition naming the field."""
    changes = POD_REFUSED_BY_RULES[case][0] if case in POD_REFUSED_BY_RULES else POD_REFUSED_BY_SCHEMA[case]
    spec = with_defaults(voice_agent(**changes)["spec"])
    with pytest.raises(InvalidSpec, match=r"^spec\.pod\."):
        pod_settings.with_pod_defaults(spec, {})


@pytest.mark.parametrize("case", ["fitted-pods", "pinned-ids", "every-allowed-volume", "own-topology-selector",
                                  "projected-without-token"])
def test_the_operator_accepts_what_the_crd_accepts(case: str) -> None:
    spec = with_defaults(ACCEPTED[case]["spec"])
    assert pod_settings.with_pod_defaults(spec, {})["pod"] == ACCEPTED[case]["spec"]["pod"]


def test_the_readme_spec_pod_is_admitted_and_accepted() -> None:
    """The README's spec.pod example ("Fitting the proxies' pods to the cluster"), as written."""
    section = (ROOT / "README.md").read_text().partition("### Fitting the proxies' pods to the cluster")[2]
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1))  # type: ignore[union-attr]
    body = voice_agent(pod=example["spec"]["pod"])
    assert schema_errors(body) == [] and rule_errors(body) == []
    assert pod_settings.with_pod_defaults(with_defaults(body["spec"]), {})["pod"] == example["spec"]["pod"]
