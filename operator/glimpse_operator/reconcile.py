"""Reconciling one VoiceAgent: secrets, the ElevenLabs agent, the proxy's objects, and its status.

A plain class: the kopf handlers call it, and so can a test, with a real Kubernetes client pointed
anywhere and an ElevenLabs client pointed at a fake.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .agents import AgentsClient, ElevenLabsError
from .cluster import Cluster
from .conditions import is_true, set_condition
from .render import SECRET_KEYS, config_hash, desired_agent, object_name, render_proxy, workspace_secret_name
from .settings import OperatorSettings
from .spec import InvalidSpec, custom_llm_api_type, public_url, upstream_base_url, with_defaults

log = logging.getLogger(__name__)


class MissingSecret(Exception):
    pass


@dataclass
class Outcome:
    status: dict[str, Any]
    retry_reason: str | None = None  # set: ask kopf to retry later


class Reconciler:
    """One per operator (kopf's `memo.reconciler`), built at startup from the settings."""

    def __init__(self, cluster: Cluster, settings: OperatorSettings,
                 agents: Callable[[str], AgentsClient] | None = None) -> None:
        self.cluster = cluster
        self.proxy_image = settings.proxy_image
        base_url = settings.elevenlabs_base_url
        self.agents: Callable[[str], AgentsClient] = agents or (lambda key: AgentsClient(key, base_url))

    def reconcile(self, body: dict[str, Any]) -> Outcome:
        meta = body["metadata"]
        namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
        status = {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
        conditions: list[dict[str, Any]] = list(status.get("conditions") or [])

        def condition(type_: str, ok: bool, reason: str, message: str) -> None:
            nonlocal conditions
            conditions = set_condition(conditions, type_, ok, reason, message, generation)

        def finish(retry: str | None) -> Outcome:
            ready = is_true(conditions, "ProxyAvailable") and is_true(conditions, "AgentSynced")
            condition("Ready", ready, "Ready" if ready else "NotReady",
                      "The proxy is serving and the agent points at it." if ready else (retry or "Waiting."))
            status.update(conditions=conditions, observedGeneration=generation)
            return Outcome(status, retry)

        spec = with_defaults(body["spec"])
        try:
            upstream_base_url(spec)
            custom_llm_api_type(spec)
            llm_key_ref, el_key_ref = spec["llm"]["apiKeySecretRef"], spec["elevenlabs"]["apiKeySecretRef"]
            self._secret_value(namespace, llm_key_ref)
            elevenlabs_key = self._secret_value(namespace, el_key_ref)
        except (InvalidSpec, MissingSecret) as exc:
            reason = "InvalidSpec" if isinstance(exc, InvalidSpec) else "SecretMissing"
            condition("AgentSynced", False, reason, str(exc))
            condition("ProxyAvailable", False, reason, str(exc))
            return finish(str(exc))

        generated = self._generated_secrets(namespace, name)
        status["url"] = public_url(spec) + "/v1"
        retry = None
        try:
            self._sync_agent(self.agents(elevenlabs_key), spec, status, namespace, name, generated["customLlmKey"])
            condition("AgentSynced", True, "Synced", f"Agent {status['agentId']} uses {status['url']} as custom LLM.")
        except ElevenLabsError as exc:
            condition("AgentSynced", False, "ElevenLabsError", str(exc))
            retry = str(exc)

        for obj in render_proxy(body, spec, status.get("agentId", ""), generated, self.proxy_image):
            self.cluster.apply(obj)
        deployment = self.cluster.get("apps/v1", "Deployment", namespace, object_name(name)) or {}
        available = int((deployment.get("status") or {}).get("availableReplicas") or 0)
        if available > 0:
            condition("ProxyAvailable", True, "Available", f"{available} proxy replica(s) available.")
        else:
            condition("ProxyAvailable", False, "Progressing", "Waiting for a proxy replica to become available.")
        return finish(retry)

    def _secret_value(self, namespace: str, ref: dict[str, str]) -> str:
        values = self.cluster.read_secret(namespace, ref["name"])
        if values is None:
            raise MissingSecret(f"Secret {namespace}/{ref['name']} does not exist.")
        if not values.get(ref["key"]):
            raise MissingSecret(f"Secret {namespace}/{ref['name']} has no key {ref['key']!r}.")
        return values[ref["key"]]

    def _generated_secrets(self, namespace: str, name: str) -> dict[str, str]:
        """Kept across reconciles: regenerating the bearer key would lock ElevenLabs out."""
        existing = self.cluster.read_secret(namespace, object_name(name)) or {}
        return {key: existing.get(key) or secrets.token_urlsafe(32) for key in SECRET_KEYS}

    def _sync_agent(self, agents: AgentsClient, spec: dict[str, Any], status: dict[str, Any], namespace: str,
                    name: str, custom_llm_key: str) -> None:
        if not status.get("workspaceSecretId"):
            status["workspaceSecretId"] = agents.create_secret(workspace_secret_name(namespace, name), custom_llm_key)
        desired = desired_agent(spec, status["workspaceSecretId"])
        digest = config_hash(desired)
        adopted = spec["elevenlabs"]["agentId"]
        agent_id = adopted or status.get("agentId")
        if not agent_id:
            status["agentId"] = agents.create_agent(desired)
            status["agentCreated"] = True
            log.info("created ElevenLabs agent %s for %s/%s", status["agentId"], namespace, name)
        elif agent_id != status.get("agentId") or status.get("agentConfigHash") != digest:
            agents.update_agent(agent_id, desired)
            if agent_id != status.get("agentId"):
                status["agentCreated"] = not adopted and bool(status.get("agentCreated"))
            status["agentId"] = agent_id
            log.info("updated ElevenLabs agent %s for %s/%s", agent_id, namespace, name)
        status["agentConfigHash"] = digest

    def clean_up(self, body: dict[str, Any]) -> None:
        """Before deletion: remove the agent (only if the operator created it) and the workspace secret."""
        meta, status = body["metadata"], body.get("status") or {}
        spec = with_defaults(body["spec"])
        if not (status.get("agentCreated") or status.get("workspaceSecretId")):
            return
        try:
            key = self._secret_value(meta["namespace"], spec["elevenlabs"]["apiKeySecretRef"])
        except MissingSecret as exc:
            log.warning("cannot clean up ElevenLabs for %s/%s: %s", meta["namespace"], meta["name"], exc)
            return
        agents = self.agents(key)
        if status.get("agentCreated") and status.get("agentId") and not spec["elevenlabs"]["agentId"]:
            agents.delete_agent(status["agentId"])
        if status.get("workspaceSecretId"):
            agents.delete_secret(status["workspaceSecretId"])
