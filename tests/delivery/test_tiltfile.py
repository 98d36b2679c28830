"""The Tiltfile, without Tilt: it is run here (Starlark is close enough to Python) with stand-ins for Tilt's functions
that record each call, and what it asks for is checked against what the chart and the operator render.

What this guards: Tilt must find the proxy image where it is named (the operator's GLIMPSE_PROXY_IMAGE and the dev
VoiceAgent's spec.proxy.image; no container Tilt applies runs it); the restart file must be where the pods can
see and write it; live update must be able to write into the operator's container; the namespace must exist, and the
operator must serve the dev VoiceAgent's.
"""

from __future__ import annotations

import copy
import json
import re
import types
from typing import Any

import jsonschema
import pytest
import yaml

from glimpse_operator.render import PORT, render_proxy
from glimpse_operator.spec import with_defaults
from tests.paths import ROOT
from tools.render_install import CHART, NAMESPACE, render_chart

TILT_BUILD = ":tilt-5f0c2d9e41b7a3c8"  # the tag Tilt gives its builds


class Blob(str):
    """Tilt's read_file/encode_yaml result."""


class Call:
    def __init__(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.name, self.args, self.kwargs = name, args, kwargs

    def __repr__(self) -> str:
        return f"{self.name}{self.args}{self.kwargs}"


class Tilt:
    """The Tiltfile's calls, in order, and its top-level names."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.scope: dict[str, Any] = {}

    def all(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]

    def one(self, name: str, first: Any = None) -> Call:
        found = [c for c in self.all(name) if first is None or (c.args and c.args[0] == first)]
        assert len(found) == 1, (name, first, found)
        return found[0]


def run_tiltfile() -> Tilt:
    tilt = Tilt()

    def recorder(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Call:
            recorded = Call(name, args, kwargs)
            tilt.calls.append(recorded)
            return recorded
        return call

    def load(module: str, *names: str) -> None:
        tilt.calls.append(Call("load", (module, *names), {}))
        for name in names:
            tilt.scope[name] = recorder(name)

    def read_file(path: str) -> Blob:
        return Blob((ROOT / path).read_text())

    def exists(path: str) -> bool:
        return path != ".env" and (ROOT / path).exists()  # as on a fresh clone

    tilt.scope.update(
        {name: recorder(name) for name in ("allow_k8s_contexts", "docker_build", "sync", "run", "helm", "k8s_yaml",
                                           "k8s_resource", "k8s_kind", "local_resource")},
        load=load, read_file=read_file, decode_yaml=yaml.safe_load,
        encode_yaml=lambda obj: Blob(yaml.safe_dump(obj)),
        os=types.SimpleNamespace(path=types.SimpleNamespace(exists=exists), getenv=lambda name, default="": default),
    )
    exec(compile((ROOT / "Tiltfile").read_text(), "Tiltfile", "exec"), tilt.scope)  # noqa: S102 (our own file)
    return tilt


@pytest.fixture(scope="module")
def tilt() -> Tilt:
    return run_tiltfile()


def image_name(ref: str) -> str:
    """What Tilt matches a docker_build's untagged ref against: the name without the tag."""
    name, _, tag = ref.rpartition(":")
    return name if name and "/" not in tag else ref


def helm_values(tilt: Tilt) -> dict[str, Any]:
    helm = tilt.one("helm")
    values: dict[str, Any] = {}
    for path in helm.kwargs["values"]:
        values.update(yaml.safe_load((ROOT / path).read_text()))
    for assignment in helm.kwargs.get("set", []):
        dotted, _, value = assignment.partition("=")
        node = values
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return values


def operator_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = next(o for o in objects if o["kind"] == "Deployment"
                      and o["metadata"]["labels"].get("app.kubernetes.io/component") == "operator")
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def the_voice_agent(tilt: Tilt) -> dict[str, Any]:
    applied = [yaml.safe_load(c.args[0]) for c in tilt.all("k8s_yaml") if isinstance(c.args[0], Blob)]
    agents = [o for o in applied if o["kind"] == "VoiceAgent"]
    assert len(agents) == 1
    agent: dict[str, Any] = agents[0]
    return agent


def jsonpath(obj: dict[str, Any], path: str) -> Any:
    """The simple `{.a.b.c}` paths k8s_kind takes."""
    match = re.fullmatch(r"\{\.([\w.]+)\}", path)
    assert match, path
    for key in match.group(1).split("."):
        obj = obj[key]
    return obj


def proxy_pod(tilt: Tilt) -> dict[str, Any]:
    """The pod the operator makes for the dev VoiceAgent once Tilt has put its build into spec.proxy.image."""
    agent = copy.deepcopy(the_voice_agent(tilt))
    agent["metadata"]["uid"] = "4c1d7a52-2b39-4d1e-9f36-5b8a0e7c2f10"
    agent["spec"]["proxy"]["image"] += TILT_BUILD
    generated = {"customLlmKey": "k", "signingSecret": "s"}
    objects = render_proxy(agent, with_defaults(agent["spec"]), "agent_dev", generated,
                           "glimpse/proxy:from-the-operators-env")
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def entrypoint(dockerfile: str) -> list[str]:
    lines = [line for line in dockerfile.splitlines() if line.startswith("ENTRYPOINT ")]
    found: list[str] = json.loads(lines[-1].removeprefix("ENTRYPOINT "))
    return found


def test_helm_takes_the_checked_in_tilt_values(tilt: Tilt) -> None:
    helm = tilt.one("helm")
    assert helm.args == ("charts/glimpse",) and helm.kwargs["name"] == "glimpse"
    assert helm.kwargs["values"] == ["charts/glimpse/values-tilt.yaml"]
    jsonschema.validate(helm_values(tilt), json.loads((CHART / "values.schema.json").read_text()))


def test_the_namespace_is_created(tilt: Tilt) -> None:
    """helm() runs `helm template`, which creates no namespace."""
    assert any(c.args == ("ext://namespace", "namespace_create") for c in tilt.all("load"))
    created = tilt.one("namespace_create")
    assert created.args == (NAMESPACE,) == (tilt.scope["NAMESPACE"],) == (tilt.one("helm").kwargs["namespace"],)
    assert "pod-security.kubernetes.io/enforce: restricted" in created.kwargs["labels"]  # as manifests/install.yaml


def test_the_proxy_image_is_found_where_it_is_named(tilt: Tilt) -> None:
    """No container Tilt applies runs the proxy image: the operator's GLIMPSE_PROXY_IMAGE names it (Tilt puts its
    build there with match_in_env_vars) and so does the dev VoiceAgent's spec.proxy.image (k8s_kind)."""
    proxy = tilt.one("docker_build", "glimpse/proxy")
    assert proxy.kwargs["match_in_env_vars"] is True
    # an entrypoint makes Tilt rewrite the container's command, which it cannot do in an env var or a VoiceAgent
    assert "entrypoint" not in proxy.kwargs and not tilt.all("docker_build_with_restart")

    objects = render_chart(helm_values(tilt))
    container = operator_pod(objects)["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert image_name(env["GLIMPSE_PROXY_IMAGE"]) == "glimpse/proxy"
    assert image_name(container["image"]) == tilt.one("docker_build", "glimpse/operator").args[0]

    kind = tilt.one("k8s_kind", "VoiceAgent")
    agent = the_voice_agent(tilt)
    assert kind.kwargs["api_version"] == agent["apiVersion"] and kind.kwargs["pod_readiness"] == "wait"
    assert jsonpath(agent, kind.kwargs["image_json_path"]) == "glimpse/proxy"
    # the spec's image wins over the operator's default: the proxy runs what Tilt built last
    assert proxy_pod(tilt)["containers"][0]["image"] == "glimpse/proxy" + TILT_BUILD


@pytest.mark.parametrize(("image", "dockerfile", "program"), [
    ("glimpse/proxy", "Dockerfile", "glimpse"), ("glimpse/operator", "Dockerfile.operator", "glimpse-operator")])
def test_the_restart_wrapper_runs_the_program_with_the_pods_args(tilt: Tilt, image: str, dockerfile: str,
                                                                 program: str) -> None:
    """The image's own ENTRYPOINT is Tilt's restart wrapper around the program; the Deployment gives no command,
    only args, which Kubernetes appends: `glimpse serve`, `glimpse-operator --namespace=… …`."""
    contents = tilt.one("docker_build", image).kwargs["dockerfile_contents"]
    restart = tilt.scope["RESTART_FILE"]
    # the release Dockerfile, unchanged and first: its ARGs before the first FROM (the base images) stay global
    assert contents.startswith((ROOT / dockerfile).read_text()), "the release Dockerfile, unchanged, first"
    assert entrypoint(contents) == ["/tilt-restart-wrapper", f"--watch_file={restart}", program]
    assert "COPY --from=tiltdev/restart-helper:2025-02-17 /tilt-restart-wrapper /entr /" in contents
    assert contents.rstrip().splitlines()[-2] == "USER 10001:0"  # the release image's user, again
    pod = operator_pod(render_chart(helm_values(tilt))) if image == "glimpse/operator" else proxy_pod(tilt)
    container = pod["containers"][0]
    assert "command" not in container
    if program == "glimpse":
        assert container["args"] == ["serve"]
    else:
        assert all(arg.startswith("--") for arg in container["args"])


def test_live_update_can_write_what_it_writes(tilt: Tilt) -> None:
    """The synced packages and the restart file belong to the runtime user (10001, group 0) in the Tilt image; the
    restart file is not under /tmp nor any other mount of either pod (an emptyDir there hides the image's file)."""
    restart, site = tilt.scope["RESTART_FILE"], tilt.scope["SITE"]
    steps = tilt.scope["live_update"]
    syncs, last = steps[:-1], steps[-1]
    assert all(s.name == "sync" for s in syncs) and (last.name, last.args) == ("run", (f"date > {restart}",))
    for step in syncs:
        assert (ROOT / step.args[0]).is_dir() and step.args[1].startswith(site)
    for image in ("glimpse/proxy", "glimpse/operator"):
        build = tilt.one("docker_build", image)
        assert build.kwargs["live_update"] is steps
        chown = next(line for line in build.kwargs["dockerfile_contents"].splitlines() if line.startswith("RUN chown"))
        assert all(f" {step.args[1]} " in chown for step in syncs)
        assert f"touch {restart} && chown 10001:0 {restart}" in chown
    assert not restart.startswith("/tmp/")
    mounts = [m["mountPath"] for pod in (operator_pod(render_chart(helm_values(tilt))), proxy_pod(tilt))
              for c in pod["containers"] for m in c.get("volumeMounts", [])]
    assert "/tmp" in mounts and not any(restart.startswith(mount.rstrip("/") + "/") for mount in mounts)
    # the images' venv: Dockerfile's python:3.X base (PYTHON_IMAGE) and /opt/glimpse
    for dockerfile in ("Dockerfile", "Dockerfile.operator"):
        text = (ROOT / dockerfile).read_text()
        version = re.findall(r"^ARG PYTHON_IMAGE=python:(\d+\.\d+)", text, re.MULTILINE)[-1]
        assert re.findall(r"^FROM (\S+)", text, re.MULTILINE)[-1] == "${PYTHON_IMAGE}"
        assert "python -m venv /opt/glimpse" in text and site == f"/opt/glimpse/lib/python{version}/site-packages/"


def test_under_tilt_only_the_operators_root_filesystem_is_writable(tilt: Tilt) -> None:
    """live update copies into the operator's container; everything else the chart renders is as without Tilt."""
    default, under_tilt = render_chart(), render_chart(helm_values(tilt))
    context = operator_pod(under_tilt)["containers"][0]["securityContext"]
    assert context == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": False,
                       "capabilities": {"drop": ["ALL"]}}
    assert operator_pod(under_tilt)["securityContext"]["runAsNonRoot"] is True
    context["readOnlyRootFilesystem"] = True
    assert under_tilt == default


def test_resources_and_what_they_wait_for(tilt: Tilt) -> None:
    agent = the_voice_agent(tilt)
    deployments = [o["metadata"]["name"] for o in render_chart(helm_values(tilt)) if o["kind"] == "Deployment"]
    resources = {c.args[0]: c for c in tilt.all("k8s_resource")}
    local = {c.args[0]: c for c in tilt.all("local_resource")}
    assert set(resources) == {"glimpse-operator", agent["metadata"]["name"]} and "glimpse-operator" in deployments
    for resource in [*resources.values(), *local.values()]:
        assert set(resource.kwargs.get("resource_deps", [])) <= set(resources) | set(local)
    proxy = resources[agent["metadata"]["name"]]
    assert proxy.kwargs["resource_deps"] == ["glimpse-operator", "dev-secrets"]
    assert proxy.kwargs["port_forwards"] == [f"8080:{PORT}"]  # where the page's Vite dev server sends /v1
    # the keys go where the VoiceAgent reads them
    secrets = local["dev-secrets"].kwargs["cmd"]
    for ref in (agent["spec"]["llm"]["apiKeySecretRef"], agent["spec"]["elevenlabs"]["apiKeySecretRef"]):
        assert f"kubectl -n {agent['metadata']['namespace']} create secret generic {ref['name']} " \
               f"--from-literal={ref.get('key', 'apiKey')}=" in secrets


def test_the_operator_serves_the_dev_voice_agent(tilt: Tilt) -> None:
    """The chart's operator serves its release namespace only unless told otherwise: the dev VoiceAgent (and its key
    Secrets, test_resources_and_what_they_wait_for) must be in a namespace it is given, with a Role there."""
    namespace = the_voice_agent(tilt)["metadata"]["namespace"]
    objects = render_chart(helm_values(tilt), namespace=tilt.one("helm").kwargs["namespace"])
    args = operator_pod(objects)["containers"][0]["args"]
    assert f"--namespace={namespace}" in args and "--all-namespaces" not in args
    assert any(o["kind"] == "Role" and o["metadata"]["namespace"] == namespace
               and any("secrets" in rule["resources"] for rule in o["rules"]) for o in objects)


def test_the_operator_image_ignores_what_it_does_not_copy(tilt: Tilt) -> None:
    """A change to the page or the docs must not rebuild the operator (no sync step matches it)."""
    assert tilt.one("docker_build", "glimpse/operator").kwargs["ignore"] == ["docs", "frontend"]
    text = (ROOT / "Dockerfile.operator").read_text()
    assert "frontend" not in text and "docs" not in text
