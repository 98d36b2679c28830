"""A VoiceAgent's Gateway API HTTPRoute (spec.httpRoute), reconciled by the handlers against the fake API server:
made beside or instead of the Ingress, the agent's custom LLM URL on the route's hostname, each route kind deleted
when the spec stops asking for it, the drift timer putting an edited route back, and a cluster without the Gateway
API's CRDs: a condition that says so, the rest of the proxy applied, and VoiceAgents without a route untouched. The
fake API server's HTTPRoute is held to what the real one does with and without the CRD."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import kopf
import pytest
import yaml
from kubernetes import client as k8s

from glimpse_operator import cli
from glimpse_operator.cluster import Cluster, ClusterError
from glimpse_operator.dry_run import AGENT_KIND
from glimpse_operator.render import render_httproute
from glimpse_operator.spec import InvalidSpec, check_required, with_defaults
from tests.fakes.elevenlabs_api import FakeElevenLabs
from tests.fakes.kubernetes_api import FakeKubernetes
from tests.operator.support import (
    DEPLOYMENT,
    MATRIX,
    conditions,
    current,
    event_reasons,
    run_drift,
    run_reconcile,
    stored,
    voice_agent,
    written_voice_agent,
)
from tests.paths import ROOT

ROUTE = "/apis/gateway.networking.k8s.io/v1/namespaces/voice/httproutes/glimpse-museum-guide"
INGRESS = "/apis/networking.k8s.io/v1/namespaces/voice/ingresses/glimpse-museum-guide"
SERVICE = "/api/v1/namespaces/voice/services/glimpse-museum-guide"
CONFIGMAP = "/api/v1/namespaces/voice/configmaps/glimpse-museum-guide"


def custom_llm_url(elevenlabs: FakeElevenLabs, patch: kopf.Patch) -> str:
    agent = elevenlabs.created_agents[patch["status"]["agentId"]]
    return str(agent["conversation_config"]["agent"]["prompt"]["custom_llm"]["url"])


async def test_a_route_instead_of_the_ingress_is_what_elevenlabs_calls(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    body = voice_agent(**MATRIX["gateway-route"])
    patch, error = await run_reconcile(body, memo, cluster)
    assert error is None
    assert INGRESS not in cluster.objects
    route = cluster.objects[ROUTE]
    assert route["spec"]["parentRefs"] == [{"name": "eg", "namespace": "envoy-gateway"}]
    assert route["spec"]["hostnames"] == ["voice.gateway.example.com"]
    # the API port only: the Service's port named http, never the metrics port
    ports = {p["port"]: p["name"] for p in cluster.objects[SERVICE]["spec"]["ports"]}
    [backend] = route["spec"]["rules"][0]["backendRefs"]
    assert backend["name"] == "glimpse-museum-guide" and ports[backend["port"]] == "http"
    assert route["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]
    assert custom_llm_url(elevenlabs, patch) == "https://voice.gateway.example.com/v1" == patch["status"]["url"]
    assert cluster.objects[CONFIGMAP]["data"]["GLIMPSE_PUBLIC_BASE_URL"] == "https://voice.gateway.example.com"
    assert conditions(patch)["ProxyAvailable"]["reason"] == "Progressing"


async def test_moving_from_the_ingress_to_a_route_and_back_deletes_what_is_no_longer_asked_for(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    body = voice_agent()
    await run_reconcile(body, memo, cluster)
    assert INGRESS in cluster.objects and ROUTE not in cluster.objects

    beside = stored(cluster, {**current(cluster, body), "spec": voice_agent(**MATRIX["route-beside-ingress"])["spec"]})
    patch, error = await run_reconcile(beside, memo, cluster)
    assert error is None and INGRESS in cluster.objects and ROUTE in cluster.objects
    assert patch["status"]["url"] == "https://voice.example.org/v1"  # the route's first hostname wins
    assert cluster.objects[ROUTE]["metadata"]["annotations"] == {"external-dns.alpha.kubernetes.io/ttl": "60"}

    instead = stored(cluster, {**current(cluster, body), "spec": voice_agent(**MATRIX["gateway-route"])["spec"]})
    patch, error = await run_reconcile(instead, memo, cluster)
    assert error is None and INGRESS not in cluster.objects and ROUTE in cluster.objects
    assert "IngressDeleted" in event_reasons(cluster, "Normal")

    back = stored(cluster, {**current(cluster, body), "spec": voice_agent()["spec"]})
    patch, error = await run_reconcile(back, memo, cluster)
    assert error is None and INGRESS in cluster.objects and ROUTE not in cluster.objects
    assert "HTTPRouteDeleted" in event_reasons(cluster, "Normal")
    assert patch["status"]["url"] == "https://voice.example.com/v1"
    [agent] = elevenlabs.created_agents.values()
    assert agent["conversation_config"]["agent"]["prompt"]["custom_llm"]["url"] == "https://voice.example.com/v1"


@pytest.fixture
def no_gateway_api(cluster: FakeKubernetes) -> FakeKubernetes:
    cluster.gateway_api = False  # a cluster without the Gateway API's CRDs
    return cluster


async def test_without_the_gateway_api_a_route_is_a_condition_and_the_rest_is_applied(
        no_gateway_api: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    cluster = no_gateway_api
    body = voice_agent(**MATRIX["gateway-route"])
    patch, error = await run_reconcile(body, memo, cluster)
    assert isinstance(error, kopf.TemporaryError)  # retried with backoff, not a crash
    found = conditions(patch)
    assert (found["ProxyAvailable"]["status"], found["ProxyAvailable"]["reason"]) == ("False", "GatewayAPIMissing")
    assert "Gateway API" in found["ProxyAvailable"]["message"]
    assert "spec.httpRoute" in found["ProxyAvailable"]["message"]
    assert found["Ready"]["status"] == "False"
    assert "GatewayAPIMissing" in event_reasons(cluster, "Warning")
    assert DEPLOYMENT in cluster.objects and SERVICE in cluster.objects and ROUTE not in cluster.objects
    assert len(elevenlabs.created_agents) == 1  # the agent is there, on the route's hostname


async def test_without_the_gateway_api_a_voice_agent_without_a_route_is_untouched(
        no_gateway_api: FakeKubernetes, memo: kopf.Memo) -> None:
    cluster = no_gateway_api
    patch, error = await run_reconcile(voice_agent(), memo, cluster)
    assert error is None and INGRESS in cluster.objects
    assert conditions(patch)["ProxyAvailable"]["reason"] == "Progressing"
    # the operator looked for a route of its name (a 404, as for a missing object) and went on
    assert any(r.path == ROUTE and r.method == "GET" for r in cluster.requests)


@pytest.mark.parametrize(("changes", "message"), [
    ({"ingress": None}, "spec.ingress or spec.httpRoute is required"),
    ({"ingress": None, "httpRoute": {"parentRefs": [], "hostnames": ["a.example.com"]}},
     "spec.httpRoute.parentRefs is required"),
    ({"httpRoute": {"parentRefs": [{"name": "eg"}]}}, "spec.httpRoute.hostnames is required"),
])
def test_the_render_dry_run_refuses_a_spec_no_one_can_reach(changes: dict[str, Any], message: str) -> None:
    spec = with_defaults(written_voice_agent(**changes)["spec"])
    with pytest.raises(InvalidSpec, match=message):
        check_required(spec)


async def test_the_drift_timer_puts_an_edited_route_back(
        cluster: FakeKubernetes, memo: kopf.Memo) -> None:
    body = voice_agent(**MATRIX["gateway-route"])
    await run_reconcile(body, memo, cluster)
    edited = {**cluster.objects[ROUTE], "spec": {**cluster.objects[ROUTE]["spec"], "hostnames": ["other.example.com"]}}
    cluster.put(ROUTE, edited)
    await run_drift(current(cluster, body), memo, cluster)
    assert cluster.objects[ROUTE]["spec"]["hostnames"] == ["voice.gateway.example.com"]


def api(cluster: FakeKubernetes) -> Cluster:
    configuration = k8s.Configuration(host=cluster.base_url)
    configuration.api_key = {"BearerToken": "Bearer test-token"}
    return Cluster(k8s.ApiClient(configuration))


async def test_the_fake_serves_httproute_as_its_crd_does_and_404s_without_it(cluster: FakeKubernetes) -> None:
    route = operator_route_object()
    applied = await asyncio.to_thread(api(cluster).apply, route)
    assert applied["metadata"]["uid"] and cluster.objects[ROUTE]["spec"] == route["spec"]
    discovery = await asyncio.to_thread(api(cluster)._request, "GET", "/apis")
    assert "gateway.networking.k8s.io" in {g["name"] for g in (discovery or {})["groups"]}
    broken = copy.deepcopy(route)
    del broken["spec"]["parentRefs"][0]["name"]
    with pytest.raises(ClusterError) as refused:
        await asyncio.to_thread(api(cluster).apply, broken)
    assert refused.value.status == 422 and "parentRefs[0].name" in refused.value.message
    no_port = copy.deepcopy(route)
    del no_port["spec"]["rules"][0]["backendRefs"][0]["port"]
    with pytest.raises(ClusterError) as refused:
        await asyncio.to_thread(api(cluster).apply, no_port)
    assert refused.value.status == 422 and "Must have port for Service reference" in refused.value.message

    cluster.gateway_api = False
    assert await asyncio.to_thread(api(cluster).get, "gateway.networking.k8s.io/v1", "HTTPRoute", "voice",
                                   "glimpse-museum-guide") is None
    with pytest.raises(ClusterError) as missing:
        await asyncio.to_thread(api(cluster).apply, route)
    assert missing.value.status == 404 and "could not find the requested resource" in missing.value.message
    discovery = await asyncio.to_thread(api(cluster)._request, "GET", "/apis")
    assert "gateway.networking.k8s.io" not in {g["name"] for g in (discovery or {})["groups"]}
    assert await asyncio.to_thread(api(cluster)._request, "GET", "/apis/gateway.networking.k8s.io/v1") is None


def operator_route_object() -> dict[str, Any]:
    body = voice_agent(**MATRIX["gateway-route"])
    route = render_httproute(body, with_defaults(body["spec"]))
    assert route is not None
    return route


def test_the_dry_run_shows_the_route_and_the_url_on_its_hostname(capsys: pytest.CaptureFixture[str]) -> None:
    """`glimpse-operator render` on manifests/examples/gateway-api.yaml: the HTTPRoute last of the objects, no Ingress,
    and the agent's custom LLM on the route's hostname."""
    assert cli.main(["render", "-f", str(ROOT / "manifests" / "examples" / "gateway-api.yaml")]) == 0
    documents = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    kinds = [d["kind"] for d in documents]
    assert "Ingress" not in kinds and kinds[kinds.index("HTTPRoute") + 1:] == [AGENT_KIND]
    custom_llm = documents[-1]["spec"]["conversation_config"]["agent"]["prompt"]["custom_llm"]
    assert custom_llm["url"] == "https://voice.example.com/v1"
