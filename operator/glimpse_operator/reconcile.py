"""Reconciling one VoiceAgent: the order of the work, and what its status says. The work is done by

- `keys.py`: the API keys the spec names, read from their Secrets; the ElevenLabs key's Secret kept until the
  clean-up has used it;
- `proxy_objects.py`: the proxy's objects, whose they are, applying them;
- `agent_sync.py`, deciding with the pure `agent_plan.py`: the ElevenLabs workspace secret and agent;
- `status.py`: the status, drafted as the reconcile goes; `events.py`: what `kubectl describe` lists;
- `cleanup.py`: what is deleted in ElevenLabs before a VoiceAgent goes.

A plain class: the kopf handlers call it, and so can a test, with a real Kubernetes client pointed anywhere and an
ElevenLabs client pointed at a fake.

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
from collections.abc import Callable
from typing import Any

from . import cleanup
from .agent_sync import AgentSync
from .cluster import Cluster
from .conditions import availability, set_condition, with_ready
from .elevenlabs_api import ElevenLabsClient, ElevenLabsError
from .events import Events
from .keys import Keys, MissingSecret, protect_key_secret, read_keys
from .locks import ObjectLocks
from .metrics import OperatorMetrics
from .pod_settings import with_pod_defaults
from .proxy_objects import (
    ApplyFailed,
    apply,
    delete_unwanted,
    existing_objects,
    generated_secrets,
    ownership_conflict,
)
from .render import makes_service_account, object_name, render_proxy, render_secret, secrets_hash
from .settings import OperatorSettings
from .spec import InvalidSpec, custom_llm_api_type, fallback_base_urls, public_url, upstream_base_url, with_defaults
from .status import Outcome, StatusDraft


class Reconciler:
    """One per operator (kopf's `memo.reconciler`), built at startup from the settings."""

    def __init__(self, cluster: Cluster, settings: OperatorSettings,
                 agents: Callable[[str], ElevenLabsClient] | None = None,
                 metrics: OperatorMetrics | None = None) -> None:
        self.cluster = cluster
        # the operator's metrics: the handlers count their runs in them, the ElevenLabs client its calls, the
        # VoiceAgents' conditions are tracked here
        self.metrics = metrics or OperatorMetrics()
        self.proxy_image = settings.proxy_image
        self.network_defaults = settings.proxy_network_policy.as_spec()
        self.tracing = settings.proxy_tracing.as_spec()
        self.pod_defaults = settings.proxy_pod_defaults
        base_url = settings.elevenlabs_base_url
        # an ElevenLabs API client for a key (each VoiceAgent names its own)
        self.agents: Callable[[str], ElevenLabsClient] = agents or (
            lambda key: ElevenLabsClient(key, base_url, metrics=self.metrics))
        self.locks = ObjectLocks()

    def reconcile(self, body: dict[str, Any], *, wait: bool = True, repair: bool = False) -> Outcome | None:
        """Bring the proxy and the agent to what the spec says. None: nothing was done, because the object is gone
        or being deleted, or (with `wait=False`) because another handler is reconciling it right now. `repair`:
        write the ElevenLabs agent even if the spec did not change (edited or deleted outside Glimpse)."""
        with self.locks.hold(body["metadata"]["uid"], wait=wait) as held:
            if not held:
                return None
            current = self._current(body)
            if current is None or current["metadata"].get("deletionTimestamp"):
                self.metrics.forget(body["metadata"]["uid"])
                return None
            outcome = self._reconcile(current, repair=repair)
            self.metrics.track(body["metadata"]["uid"], outcome.status["conditions"])
            return outcome

    def _current(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The object as the API server has it now (with the ids an earlier run recorded), or None if it is gone
        (or replaced by another object of the same name)."""
        meta = body["metadata"]
        current = self.cluster.get_voice_agent(meta["namespace"], meta["name"])
        if current is None or current.get("metadata", {}).get("uid") != meta["uid"]:
            return None
        return current

    def _reconcile(self, body: dict[str, Any], *, repair: bool) -> Outcome:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        draft = StatusDraft(body, functools.partial(self.cluster.patch_status, namespace, name))
        events = Events(self.cluster, body)
        spec = with_defaults(body["spec"])
        try:
            upstream_base_url(spec)
            fallback_base_urls(spec)
            custom_llm_api_type(spec)
            public_url(spec)
            spec = with_pod_defaults(spec, self.pod_defaults)
            keys = read_keys(self.cluster, namespace, spec)
        except (InvalidSpec, MissingSecret) as exc:
            reason = "InvalidSpec" if isinstance(exc, InvalidSpec) else "SecretMissing"
            return _stop(draft, events, reason, str(exc), "AgentSynced", "ProxyAvailable")

        # Before anything is made: an object of ours that exists but belongs to someone else is never taken over.
        existing = existing_objects(self.cluster, namespace, name)
        if not makes_service_account(spec["pod"]):  # none made: another's of the name is used by nothing of ours
            existing.pop("ServiceAccount", None)
        if conflict := ownership_conflict(existing, namespace, name, meta["uid"]):
            return _stop(draft, events, "ObjectConflict", conflict, "ProxyAvailable")

        protect_key_secret(self.cluster, events, spec["elevenlabs"]["apiKeySecretRef"]["name"])
        generated = generated_secrets(existing.get("Secret"))
        try:
            # The proxy's Secret first: it keeps the bearer key the workspace secret is about to hold, so a key made
            # here is never one that exists only in ElevenLabs.
            proxy_secret = render_secret(body, generated)
            apply(self.cluster, [proxy_secret])
            draft.status["url"] = public_url(spec) + "/v1"
            retry = self._sync_agent(spec, keys, generated, draft, events, repair=repair)
            applied = [proxy_secret, *self._apply_proxy(body, spec, keys, generated, existing, draft, events)]
        except ApplyFailed as exc:
            return _stop(draft, events, exc.reason, str(exc), "ProxyAvailable")
        if draft.news:
            events.normal("ObjectsApplied", "Applied " + ", ".join(
                f"{o['kind']} {o['metadata']['name']}" for o in applied) + ".")
        draft.condition("ProxyAvailable", *availability(existing.get("Deployment")))
        return draft.outcome(retry)

    def _sync_agent(self, spec: dict[str, Any], keys: Keys, generated: dict[str, str], draft: StatusDraft,
                    events: Events, *, repair: bool) -> str | None:
        """The ElevenLabs workspace secret and agent, and AgentSynced; a retry reason when ElevenLabs failed."""
        try:
            AgentSync(self.agents(keys.elevenlabs), draft, events).run(spec, generated["customLlmKey"], repair=repair)
        except ElevenLabsError as exc:
            draft.condition("AgentSynced", False, "ElevenLabsError", str(exc))
            events.warning("ElevenLabsError", str(exc))
            return str(exc)
        status = draft.status
        draft.condition("AgentSynced", True, "Synced", f"Agent {status['agentId']} uses {status['url']} as custom LLM.")
        return None

    def _apply_proxy(self, body: dict[str, Any], spec: dict[str, Any], keys: Keys, generated: dict[str, str],
                     existing: dict[str, dict[str, Any]], draft: StatusDraft, events: Events) -> list[dict[str, Any]]:
        """The proxy's objects but its Secret (applied before), with the agent the status has now; an HPA, Ingress or
        HTTPRoute the spec no longer asks for deleted. `ApplyFailed` when the API server refuses one."""
        digest = secrets_hash({"llm": keys.llm, "elevenlabs": keys.elevenlabs, "fallbacks": "\n".join(keys.fallbacks),
                               **generated})
        objects = [o for o in render_proxy(body, spec, draft.status.get("agentId", ""), generated, self.proxy_image,
                                           digest, self.network_defaults, self.tracing) if o["kind"] != "Secret"]
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        # the unwanted go first: an Ingress replaced by an HTTPRoute is gone even where the route cannot be made yet
        for kind in delete_unwanted(self.cluster, existing, objects, namespace, name):
            events.normal(*_DELETED_EVENTS[kind](object_name(name), spec))
        apply(self.cluster, objects)
        return objects

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
            self.metrics.track(uid, conditions)

    def clean_up(self, body: dict[str, Any], *, final_attempt: bool = False, attempt: int = 1,
                 attempts: int = 1) -> None:
        """Before deletion (`cleanup.clean_up`), with the object's latest status (ids recorded after kopf read
        it); then its lock is forgotten."""
        uid = body["metadata"]["uid"]
        with self.locks.hold(uid):
            cleanup.clean_up(self.cluster, self.agents, self._current(body) or body, final_attempt=final_attempt,
                             attempt=attempt, attempts=attempts)
        self.locks.forget(uid)
        self.metrics.forget(uid)


# The Normal event for each kind deleted because the spec no longer asks for it: (reason, message).
_DELETED_EVENTS: dict[str, Callable[[str, dict[str, Any]], tuple[str, str]]] = {
    "HorizontalPodAutoscaler": lambda name, spec: (
        "AutoscalerDeleted", f"Deleted HorizontalPodAutoscaler {name}: autoscaling is off, the Deployment runs "
                             f"{spec['proxy']['replicas']} replica(s)."),
    "NetworkPolicy": lambda name, spec: (
        "NetworkPolicyDeleted", f"Deleted NetworkPolicy {name}: spec.networkPolicy.enabled is false, the proxy's pods "
                                "take the namespace's other policies only."),
    "Ingress": lambda name, spec: (
        "IngressDeleted", f"Deleted Ingress {name}: spec.ingress was removed, ElevenLabs calls {public_url(spec)}."),
    "HTTPRoute": lambda name, spec: (
        "HTTPRouteDeleted", f"Deleted HTTPRoute {name}: spec.httpRoute was removed, ElevenLabs calls "
                            f"{public_url(spec)}."),
}


def _stop(draft: StatusDraft, events: Events, reason: str, message: str, *conditions: str) -> Outcome:
    """The reconcile stops here: `conditions` False for `reason`, a Warning event, and a retry."""
    for type_ in conditions:
        draft.condition(type_, False, reason, message)
    events.warning(reason, message)
    return draft.outcome(message)
