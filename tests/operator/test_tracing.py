"""Tracing for the operator's proxies: GLIMPSE_PROXY_TRACING (the chart's operator.proxyDefaults.tracing) becomes the
OTEL_* variables of every proxy's ConfigMap, which the proxy's SDK reads as they are; the collector's header Secret
is read by the kubelet; the proxy's NetworkPolicy lets it out to the collector's port. (The chart's standalone proxy
renders the same for the same settings: tests/delivery/test_proxy_parity.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased

from glimpse.observability.tracing import Tracing
from glimpse_operator import pod_settings
from glimpse_operator.render import OPERATOR_ENV, render_proxy
from glimpse_operator.settings import ConfigError, OperatorSettings, ProxyTracing, load_settings
from glimpse_operator.spec import with_defaults
from glimpse_operator.tracing import VARIABLES
from tests.operator.support import voice_agent

SECRETS = {"customLlmKey": "k" * 43, "signingSecret": "s" * 43}
COLLECTOR = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}]
TRACING = {"otlpEndpoint": "http://otel-collector.observability:4318", "headersSecret": {"name": "otel-auth"},
           "resourceAttributes": {"deployment.environment": "prod"}, "sampler": "parentbased_traceidratio",
           "samplerArg": "0.25", "egressTo": COLLECTOR}


def objects(tracing: dict[str, Any] | None, **spec_changes: Any) -> dict[str, dict[str, Any]]:
    body = voice_agent(**spec_changes)
    settings = ProxyTracing.model_validate(tracing or {}).as_spec()
    return {o["kind"]: o for o in render_proxy(body, with_defaults(body["spec"]), "agent_1", SECRETS,
                                               "glimpse/proxy:1", tracing=settings)}


def container_env(rendered: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = rendered["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]
    return env


def test_every_proxy_gets_the_otel_variables_the_header_secret_and_the_egress() -> None:
    rendered = objects(TRACING)
    assert {k: v for k, v in rendered["ConfigMap"]["data"].items() if k.startswith("OTEL_")} == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4318", "OTEL_SERVICE_NAME": "glimpse",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,glimpse.voiceagent=museum-guide,"
                                    "k8s.namespace.name=voice",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}
    assert {"name": "OTEL_EXPORTER_OTLP_HEADERS", "valueFrom": {"secretKeyRef": {
        "name": "otel-auth", "key": "headers", "optional": True}}} in container_env(rendered)
    egress = rendered["NetworkPolicy"]["spec"]["egress"]
    assert egress[2:] == [{"ports": [{"port": 4318, "protocol": "TCP"}], "to": COLLECTOR}]


def test_without_an_endpoint_nothing_changes() -> None:
    """No OTEL_* variable, no header, no egress rule: an operator upgraded without tracing rolls no pod."""
    untouched, headers_only = objects(None), objects({"headersSecret": {"name": "otel-auth"}, "sampler": "always_on"})
    assert untouched == headers_only
    assert not [key for key in untouched["ConfigMap"]["data"] if key.startswith("OTEL_")]
    assert len(untouched["NetworkPolicy"]["spec"]["egress"]) == 2


def config_hash(rendered: dict[str, dict[str, Any]]) -> str:
    return str(rendered["Deployment"]["spec"]["template"]["metadata"]["annotations"]["glimpse.dev/config-hash"])


def test_a_new_collector_rolls_the_pods() -> None:
    hashes = {config_hash(objects(tracing)) for tracing in (None, TRACING, {**TRACING, "otlpEndpoint": "http://c:4318"})}
    assert len(hashes) == 3


def test_a_voice_agents_own_otel_variables_win() -> None:
    """spec.pod.env may set OTEL_* (env wins over the ConfigMap's envFrom); the header from its own Secret replaces
    the operator's instead of a second entry of the same name, which server-side apply refuses."""
    own = [{"name": "OTEL_EXPORTER_OTLP_HEADERS", "valueFrom": {"secretKeyRef": {"name": "team-otel", "key": "h"}}},
           {"name": "OTEL_SERVICE_NAME", "value": "museum"}]
    env = container_env(objects(TRACING, pod={"env": own}))
    assert [e for e in env if e["name"].startswith("OTEL_")] == own


def test_a_voice_agent_may_set_every_variable_tracing_sets() -> None:
    """The tracing variables are the only ones the operator sets that spec.pod.env (and the CRD) lets a VoiceAgent
    set too: OPERATOR_ENV, which it may not, holds every other."""
    rendered = objects(TRACING)
    names = set(rendered["ConfigMap"]["data"]) | {e["name"] for e in container_env(rendered)}
    assert names - OPERATOR_ENV == set(VARIABLES)
    own = [{"name": name, "value": "x"} for name in VARIABLES]
    assert pod_settings.check({"env": own}, "spec.pod") == {"env": own}


def test_the_proxy_reads_what_the_operator_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ConfigMap's variables, as the pod's environment, turn the proxy's tracing on with the resource and the
    sampler they name (the OpenTelemetry SDK reads them: service/glimpse/observability/tracing.py)."""
    for key, value in objects(TRACING)["ConfigMap"]["data"].items():
        monkeypatch.setenv(key, value)
    tracing = Tracing.from_environment()
    try:
        assert tracing.enabled and isinstance(tracing.provider, TracerProvider)
        attributes = tracing.provider.resource.attributes
        assert attributes["glimpse.voiceagent"] == "museum-guide" and attributes["k8s.namespace.name"] == "voice"
        assert attributes["deployment.environment"] == "prod" and attributes["service.name"] == "glimpse"
        sampler = tracing.provider.sampler
        assert isinstance(sampler, ParentBased) and "0.25" in sampler.get_description()
    finally:
        tracing.shutdown()


@pytest.fixture
def clean_settings(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("GLIMPSE_PROXY_TRACING", raising=False)
    load_settings.cache_clear()
    yield monkeypatch
    load_settings.cache_clear()


def test_glimpse_proxy_tracing_is_json_in_the_charts_shape(clean_settings: pytest.MonkeyPatch) -> None:
    assert OperatorSettings.from_environment().proxy_tracing.as_spec()["otlpEndpoint"] == ""
    given = {**TRACING, "headersSecret": {"name": "otel-auth", "key": "authorization"}}
    clean_settings.setenv("GLIMPSE_PROXY_TRACING", ProxyTracing.model_validate(given).model_dump_json(by_alias=True))
    assert OperatorSettings.from_environment().proxy_tracing.as_spec() == {**ProxyTracing().as_spec(), **given}


@pytest.mark.parametrize(("tracing", "problem"), [
    ('{"otlpEndpoint": "otel-collector:4318"}', "must be an http(s) URL"),
    ('{"sampler": "ratio"}', "must be one of always_on"),
    ('{"resourceAttributes": {"team": "voice,ops"}}', "hold no comma"),
    ('{"headersSecret": {"name": "Otel_Auth"}}', "GLIMPSE_PROXY_TRACING"),
    ('{"protocol": "grpc"}', "GLIMPSE_PROXY_TRACING"),
])
def test_bad_tracing_settings_name_the_variable(clean_settings: pytest.MonkeyPatch, tracing: str,
                                                problem: str) -> None:
    clean_settings.setenv("GLIMPSE_PROXY_TRACING", tracing)
    with pytest.raises(ConfigError, match=r"^GLIMPSE_PROXY_TRACING") as caught:
        OperatorSettings.from_environment()
    assert problem in str(caught.value) and "\n" not in str(caught.value)
