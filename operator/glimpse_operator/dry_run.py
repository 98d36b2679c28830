"""`glimpse-operator render`: what the operator would apply and send for VoiceAgents in a file, with no cluster and
no ElevenLabs call.

Pure, and built on the Reconciler's own spec and render functions. What does not exist before the first reconcile
(the generated secrets, the ElevenLabs ids, the resource's uid) is shown as a readable `<placeholder>`.
The agent body is one document of its own, shaped like a Kubernetes object so it reads like the rest (it is not one:
nothing in the cluster serves that kind):

    apiVersion: glimpse.dev/v1alpha1
    kind: ElevenLabsAgent
    metadata: {name, namespace, annotations: {glimpse.dev/elevenlabs-request: POST /v1/convai/agents/create}}
    spec: <the exact JSON body of that request>
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from . import GROUP, KIND, VERSION
from .pod_settings import with_pod_defaults
from .render import SECRET_KEYS, desired_agent, render_proxy, workspace_secret_name
from .spec import InvalidSpec, check_required, with_defaults

AGENT_KIND = "ElevenLabsAgent"
REQUEST_ANNOTATION = f"{GROUP}/elevenlabs-request"
DEFAULT_NAMESPACE = "default"  # where kubectl would put a VoiceAgent whose file names no namespace

_GENERATED = {"customLlmKey": "the custom-LLM bearer key", "signingSecret": "the image URL signing secret"}
GENERATED_SECRETS = {key: f"<generated on first reconcile: {_GENERATED[key]}>" for key in SECRET_KEYS}
NEW_AGENT_ID = "<ElevenLabs agent id, known once the agent is created>"


class InvalidVoiceAgent(ValueError):
    """A document the operator could not reconcile; the message is one line and names what is wrong."""


def workspace_secret_placeholder(namespace: str, name: str) -> str:
    return f"<id of the ElevenLabs workspace secret {workspace_secret_name(namespace, name)}>"


def load_voice_agents(text: str) -> list[dict[str, Any]]:
    """The VoiceAgents in a YAML (or JSON) stream; every non-empty document must be one."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise InvalidVoiceAgent(f"not valid YAML{where}: {problem}") from None
    if not documents:
        raise InvalidVoiceAgent("no VoiceAgent in it")
    for number, document in enumerate(documents, 1):
        _check_document(document, number)
    return documents


def _check_document(document: Any, number: int) -> None:
    if not isinstance(document, dict):
        raise InvalidVoiceAgent(f"document {number} is not a mapping")
    kind, api_version = document.get("kind"), document.get("apiVersion")
    if (api_version, kind) != (f"{GROUP}/{VERSION}", KIND):
        raise InvalidVoiceAgent(f"document {number} is {api_version}/{kind}, not a {GROUP}/{VERSION} {KIND}")
    metadata = document.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        raise InvalidVoiceAgent(f"document {number} has no metadata.name")
    if not isinstance(document.get("spec"), dict):
        raise InvalidVoiceAgent(f"{KIND} {metadata['name']} has no spec")


def render_voice_agent(document: dict[str, Any], proxy_image: str,
                       network_defaults: Mapping[str, Any] | None = None,
                       pod_defaults: dict[str, Any] | None = None,
                       tracing: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every Kubernetes object the operator would apply for one VoiceAgent, in apply order, then the agent body;
    `network_defaults`: the operator's GLIMPSE_PROXY_NETWORK_POLICY; `pod_defaults`: its GLIMPSE_PROXY_POD_DEFAULTS;
    `tracing`: its GLIMPSE_PROXY_TRACING."""
    metadata = document["metadata"]
    name = metadata["name"]
    namespace = metadata.get("namespace") or DEFAULT_NAMESPACE
    body = {**document, "metadata": {**metadata, "namespace": namespace,
                                     "uid": metadata.get("uid") or f"<uid of {KIND} {namespace}/{name}>"}}
    try:
        check_required(document["spec"])
        spec = with_pod_defaults(with_defaults(document["spec"]), pod_defaults or {})
        adopted = spec["elevenlabs"]["agentId"]
        objects = render_proxy(body, spec, adopted or NEW_AGENT_ID, GENERATED_SECRETS, proxy_image,
                               "<digest of the keys the pods read from Secrets>", network_defaults, tracing)
        agent_body = desired_agent(spec, workspace_secret_placeholder(namespace, name),
                                   None if adopted else body["metadata"]["uid"])
    except InvalidSpec as exc:
        raise InvalidVoiceAgent(f"{KIND} {namespace}/{name}: {exc}") from None
    except (KeyError, TypeError, AttributeError) as exc:  # a field of the wrong shape, which the CRD would refuse
        raise InvalidVoiceAgent(f"{KIND} {namespace}/{name}: its spec does not fit the CRD "
                                f"({type(exc).__name__}: {exc})") from None
    request = f"PATCH /v1/convai/agents/{adopted}" if adopted else "POST /v1/convai/agents/create"
    agent = {"apiVersion": f"{GROUP}/{VERSION}", "kind": AGENT_KIND,
             "metadata": {"name": name, "namespace": namespace, "annotations": {REQUEST_ANNOTATION: request}},
             "spec": agent_body}
    return [*objects, agent]


def render_file(text: str, proxy_image: str, network_defaults: Mapping[str, Any] | None = None,
                pod_defaults: dict[str, Any] | None = None,
                tracing: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    return [obj for document in load_voice_agents(text)
            for obj in render_voice_agent(document, proxy_image, network_defaults, pod_defaults, tracing)]


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # a value the render functions share (e.g. a probe's httpGet) is written out each time


def to_yaml(documents: list[dict[str, Any]], source: str) -> str:
    header = (f"# glimpse-operator render -f {source}: what the operator would apply and send to ElevenLabs.\n"
              "# <Placeholders> stand for what exists only after the first reconcile. To read, not to apply.\n")
    return header + yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, explicit_start=True, allow_unicode=True,
                                  width=120)
