"""The Gateway API's HTTPRoute, as the chart (proxy.httpRoute) and the operator (spec.httpRoute) render it: every
route, over several value combinations, held to the Gateway API's own schema and the CRD's CEL rules that concern it
(tests/gateway_api.py); the schema shown to refuse invalid routes; the route sending what the Ingress sends to the
API port only; the public URL on the route's first hostname; the values schema refusing a route that attaches to
nothing or has no hostname."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from glimpse_operator.render import render_proxy
from glimpse_operator.spec import with_defaults
from tests.delivery.test_chart import STANDALONE, notes
from tests.gateway_api import route_errors, schema_errors
from tests.operator.support import GATEWAY_CASES, MATRIX, voice_agent
from tools.render_install import render_chart

ENVOY_GATEWAY = {"name": "eg", "namespace": "envoy-gateway-system", "sectionName": "https"}


def standalone(**route: Any) -> dict[str, Any]:
    values = copy.deepcopy(STANDALONE)
    values["proxy"]["httpRoute"] = {"enabled": True, "parentRefs": [ENVOY_GATEWAY],
                                    "hostnames": ["voice.example.com"], **route}
    return values


CHART_CASES: dict[str, dict[str, Any]] = {
    "route-only": standalone(),
    "route-beside-ingress": {"proxy": {**standalone()["proxy"], "ingress": {
        "enabled": True, "className": "nginx", "host": "voice.example.com"}}},
    "two-listeners-two-hosts-labels": standalone(
        parentRefs=[ENVOY_GATEWAY, {**ENVOY_GATEWAY, "sectionName": "https-internal", "port": 8443}],
        hostnames=["voice.example.com", "voice.internal.example.com"], labels={"team": "voice"},
        annotations={"external-dns.alpha.kubernetes.io/ttl": "60"}),
    "explicit-kind-group-other-port": {"proxy": {
        **standalone(parentRefs=[{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "shared"}])["proxy"],
        "service": {"port": 8080}}},
}
OPERATOR_CASES: dict[str, dict[str, Any]] = {
    **{case: MATRIX[case] for case in GATEWAY_CASES},
    "route-autoscaled-s3": {**MATRIX["gateway-route"], "proxy__autoscaling": {"enabled": True},
                            "proxy__store": "redis://redis:6379/0", "images__storage": "s3://bucket/voice"},
}


def chart_route(values: dict[str, Any]) -> dict[str, Any]:
    [route] = [o for o in render_chart(values, namespace="voice") if o["kind"] == "HTTPRoute"]
    return route


def operator_route(changes: dict[str, Any]) -> dict[str, Any]:
    body = voice_agent(**changes)
    objects = render_proxy(body, with_defaults(body["spec"]), "agent_1", {"customLlmKey": "k", "signingSecret": "s"},
                           "registry.test/glimpse/proxy:1.2.3")
    [route] = [o for o in objects if o["kind"] == "HTTPRoute"]
    return route


def test_every_rendered_route_passes_the_gateway_api_schema() -> None:
    routes = [chart_route(values) for values in CHART_CASES.values()]
    routes += [operator_route(changes) for changes in OPERATOR_CASES.values()]
    assert len(routes) == len(CHART_CASES) + len(OPERATOR_CASES)
    assert route_errors(routes) == [[] for _ in routes]


@pytest.mark.parametrize(("break_it", "expected"), [
    (lambda spec: spec["parentRefs"][0].pop("name"), "/spec/parentRefs/0 must have required property name"),
    (lambda spec: spec["parentRefs"][0].update(port=70000), "/spec/parentRefs/0/port must be <= 65535"),
    (lambda spec: spec["hostnames"].append("Voice_Example"), "/spec/hostnames/1 must match pattern"),
    (lambda spec: spec["hostnames"].extend(f"h{i}.example.com" for i in range(16)),
     "/spec/hostnames must NOT have more than 16 items"),
    (lambda spec: spec["rules"][0]["matches"][0]["path"].update(type="Prefix"),
     "/spec/rules/0/matches/0/path/type must be equal to one of the allowed values"),
    (lambda spec: spec["rules"][0]["backendRefs"][0].pop("port"), "spec.rules[0].backendRefs[0]: Must have port"),
    (lambda spec: spec["rules"][0]["matches"][0]["path"].update(value="v1"),
     "spec.rules[0].matches[0].path: value must be an absolute path"),
    (lambda spec: spec["parentRefs"].append({"name": spec["parentRefs"][0]["name"],
                                             "namespace": spec["parentRefs"][0]["namespace"]}),
     "spec.parentRefs[0]: sectionName or port must be specified"),
])
def test_an_invalid_route_is_refused(break_it: Any, expected: str) -> None:
    """The checks are real: each breakage of a rendered route is named (the schema's or a CEL rule's message)."""
    route = chart_route(CHART_CASES["route-only"])
    assert route_errors([route]) == [[]]
    break_it(route["spec"])
    [errors] = route_errors([route])
    assert any(error.startswith(expected) for error in errors), errors


def test_a_route_that_is_no_httproute_is_refused() -> None:
    route = chart_route(CHART_CASES["route-only"])
    assert schema_errors([{**route, "apiVersion": "gateway.networking.k8s.io/v1beta2"}]) != [[]]


def test_the_route_sends_what_the_ingress_sends_to_the_api_port_only() -> None:
    objects = {o["kind"]: o for o in render_chart(CHART_CASES["route-beside-ingress"], namespace="voice")
               if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "proxy"}
    route, ingress, service = objects["HTTPRoute"], objects["Ingress"], objects["Service"]
    [ingress_path] = ingress["spec"]["rules"][0]["http"]["paths"]
    [rule] = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": ingress_path["pathType"].replace("Prefix", "PathPrefix"),
                                         "value": ingress_path["path"]}}]
    ports = {p["port"]: p["name"] for p in service["spec"]["ports"]}
    assert [(b["name"], ports[b["port"]]) for b in rule["backendRefs"]] == [(service["metadata"]["name"], "http")]
    assert ingress_path["backend"]["service"]["port"] == {"name": "http"}
    assert route["spec"]["parentRefs"] == [ENVOY_GATEWAY] and route["spec"]["hostnames"] == ["voice.example.com"]
    # the route's first hostname is the proxy's public URL (beside an Ingress too), and what helm install prints
    assert objects["ConfigMap"]["data"]["GLIMPSE_PUBLIC_BASE_URL"] == "https://voice.example.com"
    other = CHART_CASES["two-listeners-two-hosts-labels"]
    configmap = next(o for o in render_chart(other) if o["kind"] == "ConfigMap" and "GLIMPSE_PORT" in o["data"])
    assert configmap["data"]["GLIMPSE_PUBLIC_BASE_URL"] == "https://voice.example.com"
    assert "ElevenLabs' Server URL is https://voice.example.com/v1" in notes(other)
    labelled = chart_route(other)
    assert labelled["metadata"]["labels"]["team"] == "voice"
    assert labelled["metadata"]["labels"]["app.kubernetes.io/component"] == "proxy"
    assert chart_route(CHART_CASES["explicit-kind-group-other-port"])["spec"]["rules"][0]["backendRefs"][0][
        "port"] == 8080


def test_no_route_unless_asked_for() -> None:
    assert "HTTPRoute" not in [o["kind"] for o in render_chart(STANDALONE)]
    assert "HTTPRoute" not in [o["kind"] for o in render_chart({})]


@pytest.mark.parametrize(("route", "problem"), [
    ({"parentRefs": []}, "/proxy/httpRoute/parentRefs"),
    ({"hostnames": []}, "/proxy/httpRoute/hostnames"),
    ({"parentRefs": [{"namespace": "envoy-gateway-system"}]}, "missing property 'name'"),
    ({"hostnames": ["*.example.com"]}, "/proxy/httpRoute/hostnames/0"),
    ({"parentRefs": [{"name": "eg", "weight": 1}]}, "weight"),
])
def test_the_values_schema_refuses_a_route_that_cannot_work(route: dict[str, Any], problem: str) -> None:
    with pytest.raises(Exception, match="schema") as refused:
        render_chart(standalone(**route))
    assert problem in str(refused.value)
