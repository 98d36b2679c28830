"""`glimpse-operator`: `render -f` prints what the operator would apply and send, touching nothing; without a
subcommand it runs kopf exactly as the chart, the Dockerfile and the Tiltfile start it."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kopf.cli
import kubernetes_validate
import pytest
import yaml

from glimpse_operator import cli
from glimpse_operator.dry_run import AGENT_KIND, GENERATED_SECRETS, NEW_AGENT_ID, workspace_secret_placeholder
from glimpse_operator.render import SECRET_KEYS, desired_agent
from glimpse_operator.settings import load_settings
from glimpse_operator.spec import with_defaults
from tests.paths import ROOT

MUSEUM_GUIDE = ROOT / "manifests" / "examples" / "museum-guide.yaml"
GEMINI_DEV = ROOT / "manifests" / "examples" / "gemini-dev.yaml"
PROXY_IMAGE = "registry.test/glimpse/proxy:9.9.9"
KUBERNETES_KINDS = ["Secret", "ConfigMap", "NetworkPolicy", "Deployment", "Service", "Ingress", "PodDisruptionBudget"]


@pytest.fixture(autouse=True)
def clean_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("GLIMPSE_PROXY_IMAGE", "GLIMPSE_ELEVENLABS_BASE_URL", "GLIMPSE_PROXY_NETWORK_POLICY",
                 "GLIMPSE_PROXY_POD_DEFAULTS"):
        monkeypatch.delenv(name, raising=False)
    load_settings.cache_clear()
    yield
    load_settings.cache_clear()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens on it any more


def run_render(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """The installed `glimpse-operator`, with ElevenLabs at a closed port and no way to find a cluster."""
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    env |= {"HOME": str(home), "GLIMPSE_ELEVENLABS_BASE_URL": f"http://127.0.0.1:{closed_port()}",
            "GLIMPSE_PROXY_IMAGE": PROXY_IMAGE}
    program = Path(sys.executable).parent / "glimpse-operator"
    assert program.is_file(), f"{program} is not installed: pip install -e '.[operator]'"
    return subprocess.run([str(program), "render", *args], capture_output=True, text=True, env=env, timeout=60,
                          check=False)


def documents(output: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(output) if d is not None]


def test_render_prints_every_object_and_the_agent_body_without_a_cluster_or_network(tmp_path: Path) -> None:
    result = run_render("-f", str(MUSEUM_GUIDE), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rendered = documents(result.stdout)
    # the example's spec.pod asks for a ServiceAccount (Workload Identity): applied before the Deployment, as the
    # NetworkPolicy is
    assert [d["kind"] for d in rendered] == [*KUBERNETES_KINDS[:2], "ServiceAccount", *KUBERNETES_KINDS[2:],
                                             AGENT_KIND]
    assert result.stdout.splitlines().count("---") == len(rendered) and result.stdout.startswith("# ")

    example = yaml.safe_load(MUSEUM_GUIDE.read_text())
    [agent] = [d for d in rendered if d["kind"] == AGENT_KIND]
    assert agent["apiVersion"] == "glimpse.dev/v1alpha1"
    assert agent["metadata"] == {"name": "museum-guide", "namespace": "voice",
                                 "annotations": {"glimpse.dev/elevenlabs-request": "POST /v1/convai/agents/create"}}
    assert agent["spec"] == desired_agent(with_defaults(example["spec"]),
                                          workspace_secret_placeholder("voice", "museum-guide"),
                                          "<uid of VoiceAgent voice/museum-guide>")
    assert "glimpse-uid-<uid of VoiceAgent voice/museum-guide>" in agent["spec"]["tags"]  # as the real create tags it
    assert agent["spec"]["platform_settings"]["overrides"]["custom_llm_extra_body"] is True

    objects = {d["kind"]: d for d in rendered if d["kind"] != AGENT_KIND}
    for obj in objects.values():
        kubernetes_validate.validate(obj, "1.30.0", strict=True)
        assert obj["metadata"]["namespace"] == "voice" and obj["metadata"]["name"] == "glimpse-museum-guide"
    assert objects["Secret"]["stringData"] == GENERATED_SECRETS  # placeholders, never real-looking secrets
    assert all(value.startswith("<") and value.endswith(">") for value in GENERATED_SECRETS.values())
    assert set(GENERATED_SECRETS) == set(SECRET_KEYS)
    assert objects["ConfigMap"]["data"]["GLIMPSE_ELEVENLABS_AGENT_ID"] == NEW_AGENT_ID
    assert objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]["image"] == PROXY_IMAGE


def test_render_opens_no_connection(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("glimpse-operator render opened a connection")

    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(kopf.cli, "main", refuse)
    assert cli.main(["render", "-f", str(GEMINI_DEV)]) == 0
    rendered = documents(capsys.readouterr().out)
    assert [d["kind"] for d in rendered] == KUBERNETES_KINDS + [AGENT_KIND]
    assert rendered[-1]["spec"]["conversation_config"]["agent"]["prompt"]["custom_llm"]["api_type"] == \
        "chat_completions"


def test_render_shows_the_operators_network_policy_defaults(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The NetworkPolicy as the operator would apply it: GLIMPSE_PROXY_NETWORK_POLICY's peers (the chart's
    operator.proxyDefaults.networkPolicy) where the VoiceAgent sets none."""
    ingress_nginx = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    monkeypatch.setenv("GLIMPSE_PROXY_NETWORK_POLICY", json.dumps({"ingressFrom": [ingress_nginx]}))
    assert cli.main(["render", "-f", str(GEMINI_DEV)]) == 0
    [policy] = [d for d in documents(capsys.readouterr().out) if d["kind"] == "NetworkPolicy"]
    assert [rule.get("from") for rule in policy["spec"]["ingress"]] == [[ingress_nginx], None]


def test_render_shows_an_adopted_agent_as_a_patch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    example = yaml.safe_load(MUSEUM_GUIDE.read_text())
    example["spec"]["elevenlabs"]["agentId"] = "agent_0123"
    example["spec"]["llm"]["apiType"] = "responses"
    del example["metadata"]["namespace"]
    path = tmp_path / "adopted.yaml"
    path.write_text(yaml.safe_dump(example))
    assert cli.main(["render", "--filename", str(path)]) == 0
    rendered = {d["kind"]: d for d in documents(capsys.readouterr().out)}
    agent = rendered[AGENT_KIND]
    assert agent["metadata"]["annotations"]["glimpse.dev/elevenlabs-request"] == "PATCH /v1/convai/agents/agent_0123"
    assert agent["metadata"]["namespace"] == "default"  # as kubectl would place it
    assert agent["spec"]["conversation_config"]["agent"]["prompt"]["custom_llm"]["api_type"] == "responses"
    assert rendered["ConfigMap"]["data"]["GLIMPSE_ELEVENLABS_AGENT_ID"] == "agent_0123"


def test_render_fits_the_pods_as_the_operator_would(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The operator's pod defaults (GLIMPSE_PROXY_POD_DEFAULTS) merged under the file's spec.pod; what spec.pod may
    not say is one line, as the operator's InvalidSpec condition says it."""
    monkeypatch.setenv("GLIMPSE_PROXY_POD_DEFAULTS", '{"nodeSelector": {"pool": "voice"}, '
                                                     '"serviceAccount": {"create": true}}')
    assert cli.main(["render", "-f", str(GEMINI_DEV)]) == 0
    rendered = {d["kind"]: d for d in documents(capsys.readouterr().out)}
    assert list(rendered)[:3] == ["Secret", "ConfigMap", "ServiceAccount"]
    assert rendered["Deployment"]["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "voice"}

    example = yaml.safe_load(GEMINI_DEV.read_text())
    example["spec"]["pod"] = {"containerSecurityContext": {"capabilities": {"add": ["SYS_ADMIN"], "drop": ["ALL"]}}}
    path = tmp_path / "privileged.yaml"
    path.write_text(yaml.safe_dump(example))
    assert cli.main(["render", "-f", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"glimpse-operator render: {path}: VoiceAgent default/gemini-dev: "
        "spec.pod.containerSecurityContext.capabilities: no capability may be added\n")


def test_render_reads_every_voice_agent_of_a_stream(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    stream = MUSEUM_GUIDE.read_text() + "\n---\n" + GEMINI_DEV.read_text()
    monkeypatch.setattr(sys, "stdin", io.StringIO(stream))
    assert cli.main(["render", "-f", "-"]) == 0
    agents = [d for d in documents(capsys.readouterr().out) if d["kind"] == AGENT_KIND]
    assert [a["metadata"]["name"] for a in agents] == ["museum-guide", "gemini-dev"]


def _museum_guide(**changes: Any) -> str:
    document = yaml.safe_load(MUSEUM_GUIDE.read_text())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = document
        for part in parents:
            node = node[part]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    return yaml.safe_dump(document)


BAD_FILES = {
    "not YAML": ("kind: [VoiceAgent\n", "not valid YAML at line"),
    "empty": ("# nothing\n", "no VoiceAgent in it"),
    "another kind": ("apiVersion: v1\nkind: Secret\nmetadata: {name: openai}\n", "document 1 is v1/Secret"),
    "no name": (_museum_guide(metadata__name=None), "document 1 has no metadata.name"),
    "missing model": (_museum_guide(spec__llm__model=None),
                      "VoiceAgent voice/museum-guide: spec.llm.model is required"),
    "compatible without baseUrl": (_museum_guide(spec__llm__provider="openai-compatible"),
                                   "spec.llm.baseUrl is required when spec.llm.provider is openai-compatible"),
    "unknown apiType": (_museum_guide(spec__llm__apiType="completions"), "spec.llm.apiType must be one of"),
    "wrong shape": (_museum_guide(spec__images="gs://bucket"), "its spec does not fit the CRD"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_file_is_one_line_and_exit_2(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, expected = BAD_FILES[case]
    path = tmp_path / "voiceagent.yaml"
    path.write_text(text)
    assert cli.main(["render", "-f", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"glimpse-operator render: {path}: ") and expected in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_a_missing_file_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert cli.main(["render", "-f", str(missing)]) == 2
    assert capsys.readouterr().err == f"glimpse-operator render: {missing}: No such file or directory\n"


@pytest.mark.parametrize(("args", "kopf_args"), [
    # the operator image alone (no CMD), or make run-operator without NAMESPACE: its own namespace, never all of them
    ([], ["--namespace=team-voice"]),
    (["--standalone"], ["--namespace=team-voice", "--standalone"]),
    (["--namespace=voice"], ["--namespace=voice"]),  # make run-operator NAMESPACE=voice
    (["-n", "voice", "--standalone"], ["-n", "voice", "--standalone"]),
    (["-nvoice"], ["-nvoice"]),
    (["--all-namespaces"], ["--all-namespaces"]),  # asked for: operator.watchAllNamespaces
    (["-A"], ["-A"]),
    (["--all-namespaces", "--standalone"], ["--all-namespaces", "--standalone"]),  # someone's own deployment
    (["--all-namespaces", "--peering=p", "--priority=7"], ["--all-namespaces", "--peering=p", "--priority=7"]),
])
def test_without_a_subcommand_it_runs_kopf_in_the_namespaces_given_or_its_own(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str], kopf_args: list[str]) -> None:
    pod_namespace = tmp_path / "namespace"
    pod_namespace.write_text("team-voice")  # as the kubelet mounts it beside the service account's token
    monkeypatch.setattr(cli, "POD_NAMESPACE_FILE", pod_namespace)
    started: list[list[str]] = []
    monkeypatch.setattr(kopf.cli, "main", lambda: started.append(list(sys.argv)))
    monkeypatch.setattr(sys, "argv", ["glimpse-operator", *args])
    assert cli.main() == 0
    assert started == [["kopf", "run", "--module", "glimpse_operator.handlers", *kopf_args]]


def test_with_peering_each_replica_draws_its_own_priority(monkeypatch: pytest.MonkeyPatch) -> None:
    """kopf pauses every replica that shares its priority with another (kopf's peering docs): the chart's
    replicas must not all start at the default priority 0."""
    started: list[list[str]] = []
    monkeypatch.setattr(kopf.cli, "main", lambda: started.append(list(sys.argv)))
    # the chart's default: its release namespace only (test_chart: test_operator_runs_with_peering_not_standalone)
    chart_args = ["--namespace=glimpse-system", "--peering=glimpse-operator", "--liveness=http://0.0.0.0:8080/healthz"]
    for _ in range(5):
        monkeypatch.setattr(sys, "argv", ["glimpse-operator", *chart_args])
        assert cli.main() == 0
    priorities = [arg for argv in started for arg in argv if arg.startswith("--priority=")]
    assert len(priorities) == 5 and len(set(priorities)) == 5
    assert all(argv[4:7] == chart_args for argv in started)


@pytest.mark.parametrize(("context", "expected"), [
    ({"cluster": "kind", "user": "me", "namespace": "voice"}, "voice"),
    ({"cluster": "kind", "user": "me"}, "default"),
    (None, "default"),  # no kubeconfig at all
])
def test_run_from_a_machine_it_serves_the_kubeconfig_contexts_namespace(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, context: dict[str, str] | None, expected: str) -> None:
    monkeypatch.setattr(cli, "POD_NAMESPACE_FILE", tmp_path / "not-in-a-pod")
    kubeconfig = tmp_path / "config"
    if context is not None:
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "dev",
            "contexts": [{"name": "dev", "context": context}],
            "clusters": [{"name": "kind", "cluster": {"server": "https://127.0.0.1:6443"}}],
            "users": [{"name": "me", "user": {"token": "t"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    started: list[list[str]] = []
    monkeypatch.setattr(kopf.cli, "main", lambda: started.append(list(sys.argv)))
    monkeypatch.setattr(sys, "argv", ["glimpse-operator", "--peering=p", "--priority=1"])
    assert cli.main() == 0
    assert started == [["kopf", "run", "--module", "glimpse_operator.handlers", f"--namespace={expected}",
                        "--peering=p", "--priority=1"]]
