"""Before a VoiceAgent is deleted: what it made in ElevenLabs is deleted (the agent only if the operator created it,
and the workspace secret), then the Secret holding its ElevenLabs key is released.

`clean_up` returns when done, skipped or given up (each with an event saying what is left in ElevenLabs); it raises
`CleanupPending` when a later attempt may succeed, `CleanupRefused` when none can. The handler maps them to kopf's
retries."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from glimpse.config import BOOLEAN

from . import GROUP, KIND
from .agent_plan import SecretCandidate
from .cluster import Cluster
from .elevenlabs_api import ElevenLabsClient, ElevenLabsError
from .events import Events
from .keys import MissingSecret, release_key_secret, secret_value
from .render import owner_tag, workspace_secret_name
from .spec import with_defaults

log = logging.getLogger(__name__)

# Set to "true" on a VoiceAgent to delete it without touching ElevenLabs (its agent and workspace secret stay).
SKIP_CLEANUP_ANNOTATION = f"{GROUP}/skip-elevenlabs-cleanup"


class CleanupPending(Exception):
    """The clean-up failed for now (ElevenLabs down, rate limited): try again later."""


class CleanupRefused(Exception):
    """ElevenLabs refused the key (401/403): trying again cannot help."""


def clean_up(cluster: Cluster, clients: Callable[[str], ElevenLabsClient], body: dict[str, Any], *,
             final_attempt: bool, attempt: int, attempts: int) -> None:
    """`body`: the VoiceAgent with its latest status; `clients`: an ElevenLabs client for a key. The key Secret is
    released unless a later attempt will still need it."""
    spec = with_defaults(body["spec"])
    key_secret = spec["elevenlabs"]["apiKeySecretRef"]["name"]
    try:
        _clean_up(cluster, clients, body, spec, final_attempt=final_attempt, attempt=attempt, attempts=attempts)
    except CleanupRefused:
        release_key_secret(cluster, body, key_secret)
        raise
    release_key_secret(cluster, body, key_secret)


def _clean_up(cluster: Cluster, clients: Callable[[str], ElevenLabsClient], body: dict[str, Any],
              spec: dict[str, Any], *, final_attempt: bool, attempt: int, attempts: int) -> None:
    meta, status = body["metadata"], body.get("status") or {}
    namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
    events = Events(cluster, body)
    adopted = spec["elevenlabs"]["agentId"]
    agent_id = status.get("agentId") if status.get("agentCreated") and not adopted else None
    secret_id = status.get("workspaceSecretId")
    left = _leftovers(agent_id, secret_id, uid, namespace, name, look_up=not adopted)

    annotation = (meta.get("annotations") or {}).get(SKIP_CLEANUP_ANNOTATION)
    if annotation is not None and _is_true(annotation):
        events.normal("CleanupSkipped",
                      f"{SKIP_CLEANUP_ANNOTATION} is set: nothing is deleted in ElevenLabs. Left there: {left}.")
        return
    if annotation is not None and not _is_true(annotation):
        log.info("%s/%s: %s=%r is not true: cleaning up", namespace, name, SKIP_CLEANUP_ANNOTATION, annotation)

    key_ref = spec["elevenlabs"]["apiKeySecretRef"]
    try:
        key = secret_value(cluster, namespace, key_ref)
    except MissingSecret as exc:
        events.warning("CleanupSkipped",
                       f"{exc} Without the ElevenLabs key nothing can be deleted there. Left there: {left}.")
        return
    try:
        deleted = _delete_remote(clients(key), body, agent_id, secret_id, look_up=not adopted)
    except ElevenLabsError as exc:
        if exc.refused:
            events.warning("CleanupRefused",
                           f"ElevenLabs refused the key in Secret {namespace}/{key_ref['name']} ({exc}); nothing more "
                           f"is tried. Left there: {left}.")
            raise CleanupRefused(str(exc)) from exc
        if final_attempt:
            events.warning("CleanupAbandoned",
                           f"Giving up after {attempt} attempt(s): {exc}. The {KIND} is released; left in "
                           f"ElevenLabs: {left}.")
            return
        events.warning("CleanupFailed", f"Attempt {attempt} of {attempts} failed: {exc}. Will try again.")
        raise CleanupPending(str(exc)) from exc
    events.normal("CleanedUp", ("Deleted in ElevenLabs: " + ", ".join(deleted) + ".") if deleted
                  else "Nothing to delete in ElevenLabs.")


def _delete_remote(client: ElevenLabsClient, body: dict[str, Any], agent_id: str | None, secret_id: str | None, *,
                   look_up: bool) -> list[str]:
    """Delete the agent and workspace secret (the agent first: the secret is in use until it is gone). Ids the
    status lacks are looked up, as a reconcile would have; both deletions ignore what is already gone."""
    meta, status = body["metadata"], body.get("status") or {}
    agent_ids = [agent_id] if agent_id else []
    if look_up and not status.get("agentId"):  # created, maybe, but never recorded
        agent_ids = [str(a["agent_id"]) for a in client.find_agents(owner_tag(meta["uid"]))]
    secret_ids = [secret_id] if secret_id else []
    if not secret_id:
        ours = set(agent_ids) | {status.get("agentId") or ""}
        found = map(SecretCandidate.of, client.find_secrets(workspace_secret_name(meta["namespace"], meta["name"])))
        secret_ids = [candidate.secret_id for candidate in found if candidate.users <= ours]
    for agent in agent_ids:
        client.delete_agent(agent)
    for secret in secret_ids:
        client.delete_secret(secret)
    return [f"agent {a}" for a in agent_ids] + [f"workspace secret {s}" for s in secret_ids]


def _is_true(value: str) -> bool:
    try:
        return bool(BOOLEAN.validate_python(value.strip()))
    except ValidationError:
        return False


def _leftovers(agent_id: str | None, secret_id: str | None, uid: str, namespace: str, name: str, *,
               look_up: bool) -> str:
    agent = (f"agent {agent_id}" if agent_id
             else f"any agent tagged {owner_tag(uid)}" if look_up else "no agent (it was adopted)")
    secret = (f"workspace secret {secret_id}" if secret_id
              else f"any workspace secret named {workspace_secret_name(namespace, name)}")
    return f"{agent}; {secret}"
