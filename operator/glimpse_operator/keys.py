"""The Secrets a VoiceAgent names: the API keys read from them, and the one holding its ElevenLabs key kept until
the VoiceAgent's clean-up has used it.

That Secret gets a finalizer of the VoiceAgent's own, one per VoiceAgent (like Kubernetes' own
kubernetes.io/pvc-protection): it stays, Terminating but still readable, until the clean-up has deleted what the
VoiceAgent made in ElevenLabs, and releases it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from . import GROUP, KIND
from .cluster import Cluster, ClusterError
from .events import Events

KEY_FINALIZER_DOMAIN = f"voiceagent.{GROUP}"
MAX_FINALIZER_NAME = 63  # the part after the "/" is a qualified name: at most 63 characters


class MissingSecret(Exception):
    pass


@dataclass(frozen=True)
class Keys:
    llm: str
    elevenlabs: str
    fallbacks: tuple[str, ...]


def read_keys(cluster: Cluster, namespace: str, spec: dict[str, Any]) -> Keys:
    """Every key the spec (with defaults) names, in order: the LLM's, ElevenLabs', each fallback's; a
    `MissingSecret` names the first that is not there."""
    llm_key_ref, el_key_ref = spec["llm"]["apiKeySecretRef"], spec["elevenlabs"]["apiKeySecretRef"]
    return Keys(secret_value(cluster, namespace, llm_key_ref), secret_value(cluster, namespace, el_key_ref),
                tuple(secret_value(cluster, namespace, f["apiKeySecretRef"]) for f in spec["llm"]["fallbacks"]))


def secret_value(cluster: Cluster, namespace: str, ref: dict[str, str]) -> str:
    values = cluster.read_secret(namespace, ref["name"])
    if values is None:
        raise MissingSecret(f"Secret {namespace}/{ref['name']} does not exist.")
    if not values.get(ref["key"]):
        raise MissingSecret(f"Secret {namespace}/{ref['name']} has no key {ref['key']!r}.")
    return values[ref["key"]]


def key_secret_finalizer(voice_agent: str) -> str:
    if len(voice_agent) > MAX_FINALIZER_NAME:
        digest = hashlib.sha256(voice_agent.encode()).hexdigest()[:8]
        voice_agent = f"{voice_agent[:MAX_FINALIZER_NAME - 9].rstrip('-.')}-{digest}"
    return f"{KEY_FINALIZER_DOMAIN}/{voice_agent}"


def protect_key_secret(cluster: Cluster, events: Events, secret: str) -> None:
    """The VoiceAgent's finalizer on the Secret `secret` holding its ElevenLabs key. Not having it does not stop the
    reconcile: a Warning event says so."""
    meta = events.body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        if not cluster.add_finalizer("v1", "Secret", namespace, secret, key_secret_finalizer(name)):
            events.warning("KeySecretTerminating",
                           f"Secret {namespace}/{secret} is being deleted; the clean-up of {KIND} {name} can only "
                           "delete its ElevenLabs agent while the Secret is there.")
    except ClusterError as exc:
        events.warning("KeySecretNotProtected",
                       f"Could not put finalizer {key_secret_finalizer(name)} on Secret {namespace}/{secret}: "
                       f"{exc.message}.")


def release_key_secret(cluster: Cluster, body: dict[str, Any], secret: str) -> None:
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    cluster.remove_finalizer("v1", "Secret", namespace, secret, key_secret_finalizer(name))
