"""Reconciling one VoiceAgent: secrets, the ElevenLabs agent, the proxy's objects, and its status. What it made in
ElevenLabs is cleaned up before it is deleted by `cleanup.py`; the Secrets it names are read (and the ElevenLabs key's
kept for that clean-up) by `keys.py`.

A plain class: the kopf handlers call it, and so can a test, with a real Kubernetes client pointed
anywhere and an ElevenLabs client pointed at a fake.

What keeps ElevenLabs free of duplicates, whatever fails and whenever the operator dies:
- every ElevenLabs id is written to the VoiceAgent's status the moment it exists (a status patch right after the
  create), not at the end of the reconcile;
- what could not be recorded is found again before anything is created: the agent by a tag naming the VoiceAgent's
  uid (`owner_tag`), the workspace secret by its deterministic name (`workspace_secret_name`);
- one object is never reconciled twice at once (`ObjectLocks`), and each reconcile starts from the object as the API
  server has it now, so the ids an earlier run recorded are seen.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from typing import Any

from . import KIND, cleanup
from .agent_sync import AgentSync
from .cluster import RESOURCES, Cluster, ClusterError, secret_values
from .conditions import availability, set_condition, with_ready
from .elevenlabs_api import ElevenLabsClient, ElevenLabsError
from .events import Events
from .keys import MissingSecret, protect_key_secret, read_keys
from .locks import ObjectLocks
from .render import (
    SECRET_KEYS,
    controller_uid,
    object_name,
    render_proxy,
    render_secret,
    secrets_hash,
)
from .settings import OperatorSettings
from .spec import (
    InvalidSpec,
    custom_llm_api_type,
    fallback_base_urls,
    public_url,
    upstream_base_url,
    with_defaults,
)
from .status import Outcome, StatusDraft


class Reconciler:
    """One per operator (kopf's `memo.reconciler`), built at startup from the settings."""

    def __init__(self, cluster: Cluster, settings: OperatorSettings,
                 agents: Callable[[str], ElevenLabsClient] | None = None) -> None:
        self.cluster = cluster
        self.proxy_image = settings.proxy_image
        base_url = settings.elevenlabs_base_url
        self.agents: Callable[[str], ElevenLabsClient] = agents or (lambda key: ElevenLabsClient(key, base_url))
        self.locks = ObjectLocks()

    # -- reconcile ----------------------------------------------------------------------------------------------

    def reconcile(self, body: dict[str, Any], *, wait: bool = True, repair: bool = False) -> Outcome | None:
        """Bring the proxy and the agent to what the spec says. None: nothing was done, because the object is gone
        or being deleted, or (with `wait=False`) because another handler is reconciling it right now. `repair`:
        write the ElevenLabs agent even if the spec did not change (edited or deleted outside Glimpse)."""
        with self.locks.hold(body["metadata"]["uid"], wait=wait) as held:
            if not held:
                return None
            current = self._current(body)
            if current is None or current["metadata"].get("deletionTimestamp"):
                return None
            return self._reconcile(current, repair=repair)

    def _current(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The object as the API server has it now (with the ids an earlier run recorded), or None if it is gone
        (or replaced by another object of the same name)."""
        meta = body["metadata"]
        current = self.cluster.get_voice_agent(meta["namespace"], meta["name"])
        if current is None or current.get("metadata", {}).get("uid") != meta["uid"]:
            return None
        return current

    def _reconcile(self, body: dict[str, Any], *, repair: bool = False) -> Outcome:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        draft = StatusDraft(body, functools.partial(self.cluster.patch_status, namespace, name))
        events = Events(self.cluster, body)
        spec = with_defaults(body["spec"])
        try:
            upstream_base_url(spec)
            fallback_base_urls(spec)
            custom_llm_api_type(spec)
            keys = read_keys(self.cluster, namespace, spec)
        except (InvalidSpec, MissingSecret) as exc:
            reason = "InvalidSpec" if isinstance(exc, InvalidSpec) else "SecretMissing"
            return _stop(draft, events, reason, str(exc), "AgentSynced", "ProxyAvailable")

        # Before anything is made: an object of ours that exists but belongs to someone else is never taken over.
        existing = self._existing_objects(namespace, object_name(name))
        foreign = [(kind, uid) for kind, obj in existing.items() if (uid := controller_uid(obj)) != meta["uid"]]
        if foreign:
            owners = ", ".join(f"{kind} {namespace}/{object_name(name)} "
                               f"({f'controlled by uid {uid}' if uid else 'made by someone else'})"
                               for kind, uid in foreign)
            message = (f"{owners} already exist(s) and {'is' if len(foreign) == 1 else 'are'} not this {KIND}'s: "
                       "nothing is changed. Remove or rename it, or give the VoiceAgent another name.")
            return _stop(draft, events, "ObjectConflict", message, "ProxyAvailable")

        protect_key_secret(self.cluster, events, spec["elevenlabs"]["apiKeySecretRef"]["name"])
        generated = self._generated_secrets(existing.get("Secret"))
        # The proxy's Secret first: it keeps the bearer key the workspace secret is about to hold, so a key made
        # here is never one that exists only in ElevenLabs.
        proxy_secret = render_secret(body, generated)
        try:
            self.cluster.apply(proxy_secret)
        except ClusterError as exc:
            return _apply_failed(draft, events, proxy_secret, exc)

        status = draft.status
        status["url"] = public_url(spec) + "/v1"
        retry = None
        try:
            AgentSync(self.agents(keys.elevenlabs), draft, events).run(spec, generated["customLlmKey"], repair=repair)
            draft.condition("AgentSynced", True, "Synced",
                            f"Agent {status['agentId']} uses {status['url']} as custom LLM.")
        except ElevenLabsError as exc:
            draft.condition("AgentSynced", False, "ElevenLabsError", str(exc))
            events.warning("ElevenLabsError", str(exc))
            retry = str(exc)

        digest = secrets_hash({"llm": keys.llm, "elevenlabs": keys.elevenlabs, "fallbacks": "\n".join(keys.fallbacks),
                               **generated})
        objects = [o for o in render_proxy(body, spec, status.get("agentId", ""), generated, self.proxy_image, digest)
                   if o["kind"] != "Secret"]
        for obj in objects:
            try:
                self.cluster.apply(obj)
            except ClusterError as exc:
                return _apply_failed(draft, events, obj, exc)
        applied = [proxy_secret, *objects]
        if "HorizontalPodAutoscaler" in existing and not any(o["kind"] == "HorizontalPodAutoscaler" for o in objects):
            # autoscaling was turned off: a forgotten HPA would keep setting the Deployment's replicas
            try:
                self.cluster.delete("autoscaling/v2", "HorizontalPodAutoscaler", namespace, object_name(name),
                                    uid=str(existing["HorizontalPodAutoscaler"]["metadata"]["uid"]))
            except ClusterError as exc:
                return _apply_failed(draft, events, existing["HorizontalPodAutoscaler"], exc)
            events.normal("AutoscalerDeleted",
                          f"Deleted HorizontalPodAutoscaler {object_name(name)}: autoscaling is off, the Deployment "
                          f"runs {spec['proxy']['replicas']} replica(s).")
        if draft.news:
            events.normal("ObjectsApplied", "Applied " + ", ".join(
                f"{o['kind']} {o['metadata']['name']}" for o in applied) + ".")
        draft.condition("ProxyAvailable", *availability(existing.get("Deployment")))
        return draft.outcome(retry)

    def _existing_objects(self, namespace: str, name: str) -> dict[str, dict[str, Any]]:
        """Every kind the operator makes for one VoiceAgent, as it exists now under that name (by kind)."""
        found = {}
        for api_version, kind in RESOURCES:
            if kind != KIND and (obj := self.cluster.get(api_version, kind, namespace, name)) is not None:
                found[kind] = obj
        return found

    # -- the proxy's availability, from its Deployment's events ---------------------------------------------------

    def refresh_availability(self, namespace: str, name: str, uid: str) -> None:
        """The proxy's Deployment changed: bring ProxyAvailable and Ready up to date at once (not at the next drift
        tick). Only a waiting proxy becomes available, or an available one waiting: other reasons (an apply error,
        a missing Secret) are the reconcile's to clear."""
        with self.locks.hold(uid):
            current = self._current({"metadata": {"namespace": namespace, "name": name, "uid": uid}})
            if current is None or current["metadata"].get("deletionTimestamp"):
                return
            status = current.get("status") or {}
            conditions: list[dict[str, Any]] = list(status.get("conditions") or [])
            proxy = next((c for c in conditions if c.get("type") == "ProxyAvailable"), None)
            if proxy is None or proxy.get("reason") not in ("Available", "Progressing"):
                return
            ok, reason, message = availability(self.cluster.get("apps/v1", "Deployment", namespace,
                                                                object_name(name)))
            if proxy.get("reason") == reason and proxy.get("message") == message:
                return
            generation = proxy.get("observedGeneration")
            conditions = set_condition(conditions, "ProxyAvailable", ok, reason, message, generation)
            conditions = with_ready(conditions, message, generation)
            self.cluster.patch_status(namespace, name, {"conditions": conditions})

    @staticmethod
    def _generated_secrets(existing: dict[str, Any] | None) -> dict[str, str]:
        """Kept across reconciles (from the proxy's Secret as it exists): regenerating the bearer key would lock
        ElevenLabs out."""
        values = secret_values(existing or {})
        return {key: values.get(key) or secrets.token_urlsafe(32) for key in SECRET_KEYS}

    def clean_up(self, body: dict[str, Any], *, final_attempt: bool = False, attempt: int = 1,
                 attempts: int = 1) -> None:
        """Before deletion (`cleanup.clean_up`), with the object's latest status (ids recorded after kopf read
        it); then its lock is forgotten."""
        uid = body["metadata"]["uid"]
        with self.locks.hold(uid):
            cleanup.clean_up(self.cluster, self.agents, self._current(body) or body, final_attempt=final_attempt,
                             attempt=attempt, attempts=attempts)
        self.locks.forget(uid)


def _stop(draft: StatusDraft, events: Events, reason: str, message: str, *conditions: str) -> Outcome:
    """The reconcile stops here: `conditions` False for `reason`, a Warning event, and a retry."""
    for type_ in conditions:
        draft.condition(type_, False, reason, message)
    events.warning(reason, message)
    return draft.outcome(message)


def _apply_failed(draft: StatusDraft, events: Events, obj: dict[str, Any], exc: ClusterError) -> Outcome:
    what = f"{obj['kind']} {obj['metadata']['namespace']}/{obj['metadata']['name']}"
    message = f"Could not apply {what}: {exc.message} (HTTP {exc.status or 'no answer'})."
    return _stop(draft, events, "ApplyFailed", message, "ProxyAvailable")
