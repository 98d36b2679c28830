"""The proxy's NetworkPolicy: the ports it opens from the VoiceAgent's own URLs, spec.networkPolicy over the operator's
defaults (GLIMPSE_PROXY_NETWORK_POLICY), and the reconcile applying, repairing, deleting and re-making it against the
fake API server, which refuses what the API server refuses in a NetworkPolicy."""

from __future__ import annotations

import copy
from typing import Any

import kopf
import kubernetes_validate
import pytest

from glimpse_operator.network_policy import DEFAULTS, egress_ports, url_port
from glimpse_operator.render import render_network_policy, selector
from glimpse_operator.settings import ConfigError, OperatorSettings, ProxyNetworkPolicy
from glimpse_operator.spec import with_defaults
from tests.fakes.elevenlabs_api import FakeElevenLabs
from tests.fakes.kubernetes_api import FakeKubernetes, network_policy_problem
from tests.operator.support import (
    DEPLOYMENT,
    conditions,
    current,
    event_reasons,
    new_memo,
    run_drift,
    run_reconcile,
    stored,
    voice_agent,
)

POLICY = "/apis/networking.k8s.io/v1/namespaces/voice/networkpolicies/glimpse-museum-guide"
INGRESS_NGINX = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
              "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
OTLP = {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}],
        "ports": [{"port": 4317, "protocol": "TCP"}]}


def policy(defaults: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any] | None:
    body = voice_agent(**changes)
    return render_network_policy(body, with_defaults(body["spec"]), defaults)


def tcp_ports(obj: dict[str, Any]) -> list[int]:
    """The ports of the egress rule the proxy's settings make (the second: DNS is the first)."""
    return [p["port"] for p in obj["spec"]["egress"][1]["ports"]]


@pytest.mark.parametrize(("url", "port"), [
    ("https://api.openai.com/v1", 443), ("http://vllm:8000/v1", 8000), ("http://minio.storage", 80),
    ("redis://redis:6379/0", 6379), ("rediss://:secret@redis:6380/1", 6380), ("rediss://redis/0", 6379),
    ("http://[fd00::1]:9000", 9000), ("memory://", None), ("http://host:port", None),
])
def test_a_urls_port_is_its_own_or_its_schemes(url: str, port: int | None) -> None:
    assert url_port(url) == port


@pytest.mark.parametrize(("changes", "ports"), [
    ({}, [443]),  # OpenAI, ElevenLabs, GCS: HTTPS only; memory store, local disk
    ({"llm__provider": "openai-compatible", "llm__baseUrl": "http://vllm.models:8000/v1"}, [443, 8000]),
    ({"proxy__store": "rediss://:pw@redis:6380/1", "proxy__replicas": 2, "images__storage": "gs://b"}, [443, 6380]),
    ({"proxy__store": "redis://redis/0"}, [443, 6379]),
    ({"images__storage": "s3://glimpse", "images__s3EndpointUrl": "http://minio.storage:9000"}, [443, 9000]),
    ({"images__storage": "s3://glimpse", "images__s3EndpointUrl": "https://acct.r2.cloudflarestorage.com"}, [443]),
    ({"llm__fallbacks": [{"name": "local", "provider": "openai-compatible", "baseUrl": "http://ollama:11434/v1",
                          "model": "llava", "apiKeySecretRef": {"name": "x"}},
                         {"name": "plain", "provider": "openai-compatible", "baseUrl": "http://llm.lan/v1",
                          "model": "m", "apiKeySecretRef": {"name": "y"}}]}, [80, 443, 11434]),
])
def test_egress_is_dns_and_the_ports_the_proxys_urls_name(changes: dict[str, Any], ports: list[int]) -> None:
    body = voice_agent(**changes)
    assert egress_ports(with_defaults(body["spec"])) == ports
    rendered = policy(**changes)
    assert rendered is not None and tcp_ports(rendered) == ports
    dns = {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
    assert rendered["spec"]["egress"][0] == dns
    kubernetes_validate.validate(rendered, "1.30.0", strict=True)


CREDENTIALS = {"to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}, {"ipBlock": {"cidr": "169.254.169.252/32"}},
                      {"ipBlock": {"cidr": "169.254.170.23/32"}}],
               "ports": [{"port": 80, "protocol": "TCP"}, {"port": 988, "protocol": "TCP"}]}
MINIO_KEYS = {"name": "minio-keys"}


@pytest.mark.parametrize(("changes", "credentials"), [
    ({"images__storage": "gs://bucket/glimpse"}, True),  # Workload Identity or the node's account: metadata server
    ({"images__storage": "s3://glimpse"}, True),  # IRSA (STS on 443), EKS Pod Identity, an instance profile
    ({"images__storage": "s3://glimpse", "images__s3EndpointUrl": "http://minio:9000",
      "images__s3CredentialsSecretRef": MINIO_KEYS}, False),  # a key of its own: no cloud identity
    ({}, False),  # each pod's own disk
])
def test_storage_on_the_pods_own_identity_reaches_the_credential_endpoints(changes: dict[str, Any],
                                                                           credentials: bool) -> None:
    """The metadata server (and GKE Dataplane V2's), the EKS Pod Identity agent: on their ports only, and only when
    the proxy's storage authenticates as the pod. The extra egress still comes last."""
    rendered = policy({"extraEgress": [OTLP]}, **changes)
    assert rendered is not None
    assert rendered["spec"]["egress"][2:] == ([CREDENTIALS] if credentials else []) + [OTLP]
    kubernetes_validate.validate(rendered, "1.30.0", strict=True)


def test_by_default_it_selects_the_proxy_pods_and_opens_their_ports_to_anyone() -> None:
    rendered = policy()
    assert rendered is not None
    assert rendered["metadata"]["ownerReferences"][0]["kind"] == "VoiceAgent"
    spec = rendered["spec"]
    assert spec["podSelector"] == {"matchLabels": selector("museum-guide")}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}]},
                               {"ports": [{"port": 9090, "protocol": "TCP"}]}]
    assert len(spec["egress"]) == 2


def test_the_voice_agent_overrides_each_field_it_sets_and_keeps_the_operators_others() -> None:
    defaults = {"enabled": True, "ingressFrom": [INGRESS_NGINX], "metricsFrom": [MONITORING], "extraEgress": [OTLP]}
    inherited = policy(defaults)
    assert inherited is not None
    assert [rule.get("from") for rule in inherited["spec"]["ingress"]] == [[INGRESS_NGINX], [MONITORING]]
    assert inherited["spec"]["egress"][2:] == [OTLP]

    gateway = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}}}
    own = policy(defaults, networkPolicy={"ingressFrom": [gateway], "extraEgress": []})
    assert own is not None
    assert [rule.get("from") for rule in own["spec"]["ingress"]] == [[gateway], [MONITORING]]
    assert own["spec"]["egress"][2:] == []
    assert policy(defaults, networkPolicy={"enabled": False}) is None
    assert policy({**defaults, "enabled": False}) is None
    assert policy({**defaults, "enabled": False}, networkPolicy={"enabled": True}) is not None
    assert defaults["ingressFrom"] == [INGRESS_NGINX]  # the operator's defaults are never changed by a render


def test_the_operators_defaults_come_from_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIMPSE_PROXY_NETWORK_POLICY", '{"ingressFrom": [{"podSelector": {}}], "extraEgress": []}')
    assert OperatorSettings.from_environment().proxy_network_policy.as_spec() == {
        "enabled": True, "ingressFrom": [{"podSelector": {}}], "metricsFrom": [], "extraEgress": []}
    for bad in ('{"ingresFrom": []}', '{"enabled": "perhaps"}', '{"metricsFrom": ["prometheus"]}'):
        monkeypatch.setenv("GLIMPSE_PROXY_NETWORK_POLICY", bad)
        with pytest.raises(ConfigError, match=r"^GLIMPSE_PROXY_NETWORK_POLICY: "):
            OperatorSettings.from_environment()
    monkeypatch.delenv("GLIMPSE_PROXY_NETWORK_POLICY")
    assert OperatorSettings.from_environment().proxy_network_policy == ProxyNetworkPolicy()
    assert ProxyNetworkPolicy().as_spec() == DEFAULTS  # what a render without the operator's settings takes


@pytest.mark.parametrize(("spec", "problem"), [
    ({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]},
     "spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer"),
    ({"egress": [{"to": [{}]}]}, "spec.egress[0].to[0]: Required value: must specify a peer"),
    ({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.300/8"}}]}]}, "spec.egress[0].to[0].ipBlock.cidr: Invalid"),
    ({"egress": [{"ports": [{"port": 70000}]}]}, "spec.egress[0].ports[0].port: Invalid value: 70000"),
    ({"egress": [{"ports": [{"port": 53, "protocol": "ICMP"}]}]}, 'spec.egress[0].ports[0].protocol: Unsupported'),
    ({"egress": [{"ports": [{"port": "dns", "endPort": 60}]}]}, "spec.egress[0].ports[0].endPort: Invalid"),
    ({"policyTypes": ["Ingress", "Both"]}, 'spec.policyTypes[1]: Unsupported value: "Both"'),
])
def test_the_fake_refuses_what_the_api_server_refuses(spec: dict[str, Any], problem: str) -> None:
    found = network_policy_problem(spec)
    assert found is not None and found.startswith(problem)


def test_the_fake_accepts_every_policy_the_operator_renders() -> None:
    defaults = {"enabled": True, "ingressFrom": [INGRESS_NGINX, {"ipBlock": {"cidr": "fd00::/8"}}],
                "metricsFrom": [MONITORING], "extraEgress": [OTLP, {"ports": [{"port": 3128, "endPort": 3130}]}]}
    rendered = policy(defaults, llm__provider="openai-compatible", llm__baseUrl="http://vllm:8000/v1")
    assert rendered is not None and network_policy_problem(rendered["spec"]) is None


async def test_the_reconcile_applies_repairs_deletes_and_makes_it_again(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs) -> None:
    operator_defaults = ProxyNetworkPolicy.model_validate({"ingressFrom": [INGRESS_NGINX],
                                                           "metricsFrom": [MONITORING]})
    memo = new_memo(cluster, elevenlabs, proxy_network_policy=operator_defaults)
    body = voice_agent()
    _, error = await run_reconcile(body, memo, cluster)
    assert error is None
    made = copy.deepcopy(cluster.objects[POLICY])
    assert [rule.get("from") for rule in made["spec"]["ingress"]] == [[INGRESS_NGINX], [MONITORING]]
    assert made["metadata"]["ownerReferences"][0]["uid"] == current(cluster, body)["metadata"]["uid"]

    # opened by hand: the drift timer puts it back
    cluster.objects[POLICY]["spec"]["ingress"] = [{}]
    await run_drift(current(cluster, body), memo, cluster)
    assert cluster.objects[POLICY]["spec"] == made["spec"]

    # turned off in the VoiceAgent: deleted, with an event; on again: made again
    stored(cluster, {**current(cluster, body), "spec": voice_agent(networkPolicy={"enabled": False})["spec"]})
    _, error = await run_reconcile(current(cluster, body), memo, cluster)
    assert error is None and POLICY not in cluster.objects
    assert POLICY in cluster.deletes and "NetworkPolicyDeleted" in event_reasons(cluster, "Normal")
    await run_drift(current(cluster, body), memo, cluster)
    assert POLICY not in cluster.objects
    stored(cluster, {**current(cluster, body), "spec": voice_agent()["spec"]})
    _, error = await run_reconcile(current(cluster, body), memo, cluster)
    assert error is None and cluster.objects[POLICY]["spec"] == made["spec"]


async def test_a_policy_the_api_server_refuses_is_an_apply_failure(cluster: FakeKubernetes,
                                                                   memo: kopf.Memo) -> None:
    """An ipBlock beside a selector in the VoiceAgent's peers: the API server refuses the NetworkPolicy, and the
    condition and event name it."""
    body = voice_agent(networkPolicy={"ingressFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}, **INGRESS_NGINX}]})
    patch, error = await run_reconcile(body, memo, cluster)
    assert isinstance(error, kopf.TemporaryError)
    found = conditions(patch)["ProxyAvailable"]
    assert found["reason"] == "ApplyFailed" and "NetworkPolicy voice/glimpse-museum-guide" in found["message"]
    assert "may not specify both ipBlock and another peer" in found["message"]
    assert POLICY not in cluster.objects
    assert DEPLOYMENT not in cluster.objects  # no pods run without their policy


async def test_the_policy_is_in_place_before_the_pods_and_stays_when_a_later_apply_is_refused(
        cluster: FakeKubernetes, memo: kopf.Memo) -> None:
    """The NetworkPolicy is applied before the Deployment: an Ingress an admission webhook refuses (ingress-nginx's
    snippet check, a duplicate host) stops the reconcile after the pods exist, and they are restricted all along."""
    cluster.refuse_apply["Ingress"] = (400, 'admission webhook "validate.nginx.ingress.kubernetes.io" denied the '
                                            'request: host "museum.example.com" and path "/" is already defined')
    patch, error = await run_reconcile(voice_agent(), memo, cluster)
    assert isinstance(error, kopf.TemporaryError)
    found = conditions(patch)["ProxyAvailable"]
    assert found["reason"] == "ApplyFailed" and "Ingress voice/glimpse-museum-guide" in found["message"]
    assert POLICY in cluster.objects and DEPLOYMENT in cluster.objects
    kinds = [a.body["kind"] for a in cluster.applies]
    assert kinds.index("NetworkPolicy") < kinds.index("Deployment")


async def test_a_policy_someone_else_made_under_the_name_is_never_taken_over(cluster: FakeKubernetes,
                                                                             memo: kopf.Memo) -> None:
    theirs = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
              "metadata": {"name": "glimpse-museum-guide", "namespace": "voice"},
              "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    cluster.put(POLICY, theirs)
    patch, error = await run_reconcile(voice_agent(), memo, cluster)
    assert isinstance(error, kopf.TemporaryError)
    found = conditions(patch)["ProxyAvailable"]
    assert found["reason"] == "ObjectConflict" and "NetworkPolicy voice/glimpse-museum-guide" in found["message"]
    assert cluster.objects[POLICY]["spec"] == theirs["spec"] and not cluster.applies
