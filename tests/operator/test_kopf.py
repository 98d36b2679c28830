"""The operator run by kopf itself (`kopf.testing.KopfRunner`, as `glimpse-operator` runs it) against the fake API
server: kopf discovers the CRD, lists and watches VoiceAgents, adds its finalizer with a resourceVersion-guarded JSON
patch, writes status and progress with merge patches, and retries with the handlers' own delays.

An apply error, then recovery: exactly one ElevenLabs agent and one workspace secret. Then a deletion with
ElevenLabs down: the VoiceAgent is gone within the clean-up bound, with a Warning event. Every request made is one
the chart's default RBAC (a Role in the release namespace) allows when the VoiceAgent is in that namespace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kopf.testing import KopfRunner
from kubernetes import client as k8s
from kubernetes.config import kube_config

from glimpse_operator import handlers
from glimpse_operator.settings import load_settings
from tests.fakes.elevenlabs_api import FakeElevenLabs
from tests.fakes.kubernetes_api import FakeKubernetes, Request, parse
from tests.operator.support import (
    DEPLOYMENT,
    KEY_SECRET,
    MATRIX,
    current,
    secret,
    stored,
    voice_agent,
    voice_agent_path,
)
from tests.processes import free_port
from tools.render_install import render_chart

KOPF_RUN = ["run", "-m", "glimpse_operator.handlers", "--standalone", "--namespace", "voice"]


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster: FakeKubernetes,
               elevenlabs: FakeElevenLabs) -> None:
    """kopf's login and the operator's startup handler both read the kubeconfig: point it at the fake, and the
    operator's settings at the fake ElevenLabs."""
    path = tmp_path / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: fake, cluster: {{server: "{cluster.base_url}"}}}}]
users: [{{name: tests, user: {{token: test-token}}}}]
contexts: [{{name: fake, context: {{cluster: fake, user: tests, namespace: voice}}}}]
current-context: fake
""")
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(k8s.Configuration, "_default", None)  # load_kube_config sets the process-wide default
    monkeypatch.setenv("GLIMPSE_ELEVENLABS_BASE_URL", elevenlabs.base_url)
    monkeypatch.delenv("GLIMPSE_PROXY_IMAGE", raising=False)
    monkeypatch.delenv("GLIMPSE_PROXY_NETWORK_POLICY", raising=False)
    monkeypatch.setenv("GLIMPSE_METRICS_PORT", str(free_port()))  # the operator's /metrics, on a port of its own
    load_settings.cache_clear()
    monkeypatch.setattr(handlers, "RETRY_DELAY_SECONDS", 0.05)  # 0.05 s, 0.1 s, 0.2 s …: the same steps, faster
    yield
    load_settings.cache_clear()


async def until(what: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def chart_rbac(namespace: str) -> tuple[dict[tuple[str, str], set[str]], dict[tuple[str, str], set[str]]]:
    """What the chart's default grants its operator when released into `namespace`: (group, resource) -> verbs, in
    that namespace (its Role) and anywhere (its ClusterRole)."""
    def rules(kind: str) -> dict[tuple[str, str], set[str]]:
        found: dict[tuple[str, str], set[str]] = {}
        for role in (o for o in render_chart(namespace=namespace) if o["kind"] == kind):
            assert role["metadata"].get("namespace") in (None, namespace)
            for rule in role["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        found.setdefault((group, resource), set()).update(rule["verbs"])
        return found
    return rules("Role"), rules("ClusterRole")


def unauthorized(requests: list[Request], namespace: str) -> list[str]:
    """Each request kopf and the operator made that the chart's default RBAC, released into `namespace`, would refuse
    (discovery is every account's). The fake records no query: a collection's GET may be a list or a watch, and
    kopf does both; a server-side apply may create."""
    in_namespace, anywhere = chart_rbac(namespace)
    refused = []
    for request in requests:
        target = parse(request.path)
        if target is None:
            continue  # discovery: /api, /apis, a group version's resource list
        group = target.kind.prefix.removeprefix("/apis/").rpartition("/")[0] if target.kind.prefix != "/api/v1" else ""
        resource = target.kind.plural + (f"/{target.subresource}" if target.subresource else "")
        if request.method == "GET":
            verbs = {"get"} if target.name else {"list", "watch"}
        elif request.method == "PATCH":
            verbs = {"patch", "create"} if request.content_type.startswith("application/apply-patch") else {"patch"}
        else:
            verbs = {"POST": {"create"}, "DELETE": {"delete"}}.get(request.method, {request.method})
        granted = anywhere.get((group, resource), set()) | (
            in_namespace.get((group, resource), set()) if target.namespace == namespace else set())
        if not verbs <= granted:
            refused.append(f"{request.method} {request.path}: {sorted(verbs - granted)}")
    return sorted(set(refused))


def reasons(cluster: FakeKubernetes, type_: str) -> list[str]:
    return [e["reason"] for e in cluster.events("museum-guide") if e["type"] == type_]


@pytest.mark.usefixtures("kubeconfig")
async def test_kopf_runs_it_apply_error_recovery_and_deletion_with_elevenlabs_down(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs) -> None:
    cluster.refuse_apply["Deployment"] = (400, 'admission webhook "policy.example.com" denied the request: no')
    body = stored(cluster, voice_agent())
    path = voice_agent_path(body)
    runner = KopfRunner(KOPF_RUN, timeout=30)
    await asyncio.to_thread(runner.__enter__)
    try:
        await until(lambda: reasons(cluster, "Warning").count("ApplyFailed") >= 3)
        assert cluster.objects[path]["metadata"]["finalizers"] == ["glimpse.dev/cleanup"]
        status = cluster.objects[path]["status"]
        assert status["agentId"] in elevenlabs.created_agents and len(elevenlabs.created_agents) == 1

        cluster.refuse_apply.clear()
        await until(lambda: DEPLOYMENT in cluster.objects and {
            c["type"]: c["reason"] for c in cluster.objects[path]["status"]["conditions"]}["ProxyAvailable"]
            == "Progressing")
        status = cluster.objects[path]["status"]
        assert list(elevenlabs.created_agents) == [status["agentId"]]
        assert list(elevenlabs.workspace_secrets) == [status["workspaceSecretId"]]
        assert cluster.objects[KEY_SECRET]["metadata"]["finalizers"] == ["voiceagent.glimpse.dev/museum-guide"]

        elevenlabs.fail_with = 503
        started = time.monotonic()
        cluster.delete(path)
        await until(lambda: path not in cluster.objects)
        assert time.monotonic() - started < 10  # four short delays, then released
        assert "CleanupAbandoned" in reasons(cluster, "Warning")
        assert reasons(cluster, "Warning").count("CleanupFailed") == handlers.CLEANUP_ATTEMPTS - 1
        assert "finalizers" not in cluster.objects[KEY_SECRET]["metadata"]
        assert list(elevenlabs.created_agents) == [status["agentId"]]  # left there, and the Warning says so
        # kopf's finalizer came and went by resourceVersion-guarded JSON patches; status and progress by merge patches
        patches = {(r.path.removeprefix(path) or "/", r.content_type.split(";")[0])
                   for r in cluster.requests if r.method == "PATCH" and r.path.startswith(path)}
        assert {("/", "application/json-patch+json"), ("/", "application/merge-patch+json"),
                ("/status", "application/merge-patch+json")} <= patches
        assert any(isinstance(r.body, list) and r.body[0] == {"op": "test", "path": "/metadata/resourceVersion",
                                                               "value": r.body[0]["value"]}
                   for r in cluster.requests if r.method == "PATCH")
        # the chart's default RBAC, released into the VoiceAgent's namespace, allows every request; released elsewhere
        # (and so serving only there), it allows none of its Secret reads here
        assert unauthorized(cluster.requests, "voice") == []
        assert any("/namespaces/voice/secrets" in r for r in unauthorized(cluster.requests, "glimpse-system"))
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)


def conditions(cluster: FakeKubernetes, path: str) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"])
            for c in (cluster.objects[path].get("status") or {}).get("conditions") or []}


def template_annotation(cluster: FakeKubernetes, key: str) -> str:
    return str(cluster.objects[DEPLOYMENT]["spec"]["template"]["metadata"]["annotations"][key])


HPA = "/apis/autoscaling/v2/namespaces/voice/horizontalpodautoscalers/glimpse-museum-guide"
NETWORK_POLICY = "/apis/networking.k8s.io/v1/namespaces/voice/networkpolicies/glimpse-museum-guide"


def deployment_selector(cluster: FakeKubernetes) -> dict[str, dict[str, str]]:
    return {"matchLabels": cluster.objects[DEPLOYMENT]["spec"]["selector"]["matchLabels"]}
OPENAI_SECRET = "/api/v1/namespaces/voice/secrets/openai"


@pytest.mark.usefixtures("kubeconfig")
async def test_kopf_follows_what_a_voice_agent_depends_on(cluster: FakeKubernetes, elevenlabs: FakeElevenLabs
                                                          ) -> None:
    """Without waiting for the 5-minute drift timer: READY follows the proxy's rollout, a rotated key rolls the pods,
    a proxy Deployment deleted by hand comes back, an HPA autoscaling no longer wants is deleted, so is a NetworkPolicy
    turned off, and deleting the VoiceAgent garbage-collects what it owned (the NetworkPolicy too)."""
    body = stored(cluster, voice_agent())
    path = voice_agent_path(body)
    runner = KopfRunner(KOPF_RUN, timeout=30)
    await asyncio.to_thread(runner.__enter__)
    try:
        await until(lambda: conditions(cluster, path).get("ProxyAvailable") == ("False", "Progressing"))
        assert conditions(cluster, path)["Ready"][0] == "False"
        # kopf asked only for the proxies' Deployments (the operator's label selector, filtered by the API server)
        assert any(r.path == "/apis/apps/v1/namespaces/voice/deployments" for r in cluster.requests)

        # what the deployment controller reports once a pod is ready
        cluster.put_status(DEPLOYMENT, {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1})
        await until(lambda: conditions(cluster, path).get("Ready") == ("True", "Ready"), timeout=5)
        assert conditions(cluster, path)["ProxyAvailable"] == ("True", "Available")

        before = template_annotation(cluster, "glimpse.dev/secrets-hash")
        config_before = template_annotation(cluster, "glimpse.dev/config-hash")
        cluster.put(OPENAI_SECRET, secret("openai", "sk-openai-rotated"))
        await until(lambda: template_annotation(cluster, "glimpse.dev/secrets-hash") != before, timeout=5)
        assert template_annotation(cluster, "glimpse.dev/config-hash") == config_before  # only the keys changed
        assert len(elevenlabs.created_agents) == 1

        cluster.delete(DEPLOYMENT)
        await until(lambda: DEPLOYMENT in cluster.objects, timeout=5)

        scaled = voice_agent(proxy__autoscaling={"enabled": True, "metric": "activeStreams"},
                             proxy__store="redis://redis:6379/0", images__storage="gs://bucket/glimpse")
        stored(cluster, {**current(cluster, body), "spec": scaled["spec"]})
        await until(lambda: HPA in cluster.objects)
        assert cluster.objects[HPA]["spec"]["metrics"][0]["pods"]["metric"]["name"] == "glimpse_active_streams"
        assert "replicas" not in cluster.objects[DEPLOYMENT]["spec"]  # the HPA owns the count
        stored(cluster, {**current(cluster, body), "spec": voice_agent()["spec"]})
        await until(lambda: HPA not in cluster.objects)
        assert cluster.objects[DEPLOYMENT]["spec"]["replicas"] == 1
        assert "AutoscalerDeleted" in reasons(cluster, "Normal")

        # the proxy's NetworkPolicy, made with the rest; turned off it is deleted, turned on made again
        assert cluster.objects[NETWORK_POLICY]["spec"]["podSelector"] == deployment_selector(cluster)
        stored(cluster, {**current(cluster, body), "spec": voice_agent(networkPolicy={"enabled": False})["spec"]})
        await until(lambda: NETWORK_POLICY not in cluster.objects)
        assert "NetworkPolicyDeleted" in reasons(cluster, "Normal")
        stored(cluster, {**current(cluster, body), "spec": voice_agent()["spec"]})
        await until(lambda: NETWORK_POLICY in cluster.objects)

        cluster.delete(path)
        await until(lambda: path not in cluster.objects)
        assert not [key for key in cluster.objects if key.endswith("/glimpse-museum-guide")]
        assert not elevenlabs.created_agents
        # the chart's default RBAC, released into the VoiceAgent's namespace, allows every request; released elsewhere
        # (and so serving only there), it allows none of its Secret reads here
        assert unauthorized(cluster.requests, "voice") == []
        assert any("/namespaces/voice/secrets" in r for r in unauthorized(cluster.requests, "glimpse-system"))
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)


ROUTE = "/apis/gateway.networking.k8s.io/v1/namespaces/voice/httproutes/glimpse-museum-guide"
INGRESS = "/apis/networking.k8s.io/v1/namespaces/voice/ingresses/glimpse-museum-guide"


@pytest.mark.usefixtures("kubeconfig")
async def test_kopf_makes_and_removes_a_gateway_api_route(cluster: FakeKubernetes, elevenlabs: FakeElevenLabs
                                                          ) -> None:
    """A VoiceAgent's spec.httpRoute becomes an HTTPRoute (no Ingress); the spec back on an Ingress deletes the route;
    the VoiceAgent deleted, nothing of it is left. The chart's default RBAC allows every request made."""
    body = stored(cluster, voice_agent(**MATRIX["gateway-route"]))
    path = voice_agent_path(body)
    runner = KopfRunner(KOPF_RUN, timeout=30)
    await asyncio.to_thread(runner.__enter__)
    try:
        await until(lambda: ROUTE in cluster.objects)
        assert INGRESS not in cluster.objects
        assert cluster.objects[ROUTE]["spec"]["hostnames"] == ["voice.gateway.example.com"]
        await until(lambda: (cluster.objects[path].get("status") or {}).get("url")
                    == "https://voice.gateway.example.com/v1")

        stored(cluster, {**current(cluster, body), "spec": voice_agent()["spec"]})
        await until(lambda: ROUTE not in cluster.objects and INGRESS in cluster.objects)
        assert "HTTPRouteDeleted" in reasons(cluster, "Normal")
        await until(lambda: [a["conversation_config"]["agent"]["prompt"]["custom_llm"]["url"]
                             for a in elevenlabs.created_agents.values()] == ["https://voice.example.com/v1"])

        cluster.delete(path)
        await until(lambda: path not in cluster.objects)
        assert not [key for key in cluster.objects if key.endswith("/glimpse-museum-guide")]
        assert unauthorized(cluster.requests, "voice") == []
        assert any(r.method == "DELETE" and r.path == ROUTE for r in cluster.requests)
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)
