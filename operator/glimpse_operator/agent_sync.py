"""The ElevenLabs side of one reconcile: `agent_plan`'s decisions carried out with the ElevenLabs API client.

Each id is recorded (`StatusDraft.record`) the moment ElevenLabs answers with it, and what an earlier run made but
could not record is looked up before anything is created: ElevenLabs gets no duplicates, whatever fails next."""

from __future__ import annotations

import logging
from typing import Any

from .agent_plan import (
    AgentPlan,
    Recorded,
    SecretCandidate,
    agent_in_use,
    our_agents,
    owned_needed,
    plan_agent,
    plan_workspace_secret,
)
from .elevenlabs_api import ElevenLabsClient, ElevenLabsError
from .events import Events
from .render import config_hash, desired_agent, owner_tag, workspace_secret_name
from .status import StatusDraft

log = logging.getLogger(__name__)


class AgentSync:
    def __init__(self, client: ElevenLabsClient, draft: StatusDraft, events: Events) -> None:
        meta = events.body["metadata"]
        self.client, self.draft, self.events = client, draft, events
        self.namespace, self.name, self.uid = str(meta["namespace"]), str(meta["name"]), str(meta["uid"])
        self._owned: tuple[str, ...] | None = None  # the agents tagged with this VoiceAgent's uid, listed once

    def run(self, spec: dict[str, Any], custom_llm_key: str, *, repair: bool = False) -> None:
        """The workspace secret holding `custom_llm_key`, then the agent the spec wants; an `ElevenLabsError` when
        ElevenLabs fails (what was recorded before stays recorded)."""
        adopted = spec["elevenlabs"]["agentId"]
        if not self.draft.status.get("workspaceSecretId"):
            self._workspace_secret(adopted, custom_llm_key)
        # only an agent the operator made carries the uid tag (an adopted one is never deleted)
        desired = desired_agent(spec, self.draft.status["workspaceSecretId"], None if adopted else self.uid)
        digest = config_hash(desired)
        plan = self._plan(adopted, digest, repair=repair)
        if plan.action == "adopt":
            self._adopt(plan)
            plan = self._plan(adopted, digest, repair=repair)  # from the status that records it now
        if plan.action == "create":
            self._create(desired, digest)
            return
        if plan.action == "update":
            try:
                self.client.update_agent(plan.agent_id, desired)
            except ElevenLabsError as exc:
                if exc.status != 404 or self._plan(adopted, digest, gone=True).action != "recreate":
                    raise
                self._create(desired, digest, recreated=True)
                return
            self._updated(plan, adopted)
        self.draft.status["agentConfigHash"] = digest

    def _plan(self, adopted: str, digest: str, *, gone: bool = False, repair: bool = False) -> AgentPlan:
        recorded = Recorded.of(self.draft.status)
        owned = None if agent_in_use(adopted, recorded) else self._owned_agents()
        return plan_agent(adopted, recorded, digest, owned=owned, gone=gone, repair=repair)

    def _owned_agents(self) -> tuple[str, ...]:
        if self._owned is None:
            self._owned = tuple(str(agent["agent_id"]) for agent in self.client.find_agents(owner_tag(self.uid)))
        return self._owned

    def _create(self, desired: dict[str, Any], digest: str, *, recreated: bool = False) -> None:
        agent_id = self.client.create_agent(desired)
        self.draft.record(agentId=agent_id, agentCreated=True, agentConfigHash=digest)
        if not recreated:
            self.events.normal("AgentCreated", f"Created ElevenLabs agent {agent_id}.")
            return
        # The status records the new agent by now, so this names it, not the one that is gone (the plan's agent_id):
        # what the code did before it was split into modules, kept so that the split changes nothing.
        self.events.warning("AgentRecreated",
                            f"ElevenLabs agent {self.draft.status.get('agentId')} no longer exists (deleted outside "
                            f"Glimpse): created {agent_id}; the page's sessions use it from now on.")

    def _adopt(self, plan: AgentPlan) -> None:
        self.draft.record(agentId=plan.agent_id, agentCreated=True)
        tag = owner_tag(self.uid)
        self.events.normal("AgentFound", f"Found ElevenLabs agent {plan.agent_id} (tagged {tag}), created by an "
                                         "earlier reconcile that could not record it; no new agent is created.")
        if plan.duplicates:
            self.events.warning("DuplicateAgents",
                                f"More ElevenLabs agents carry the tag {tag}: {', '.join(plan.duplicates)}. Only "
                                f"{plan.agent_id} is used; delete the others by hand.")

    def _updated(self, plan: AgentPlan, adopted: str) -> None:
        status = self.draft.status
        if plan.agent_id != status.get("agentId"):
            status["agentCreated"] = not adopted and bool(status.get("agentCreated"))
        status["agentId"] = plan.agent_id
        if plan.changed:  # a repair's rewrite of an unchanged spec is not news for `kubectl describe`
            self.events.normal("AgentUpdated", f"Updated ElevenLabs agent {plan.agent_id}.")

    def _workspace_secret(self, adopted: str, custom_llm_key: str) -> None:
        """Find the workspace secret an earlier run made (by its name), or make it; record its id at once."""
        name = workspace_secret_name(self.namespace, self.name)
        candidates = [SecretCandidate.of(secret) for secret in self.client.find_secrets(name)]
        ours = our_agents(adopted, Recorded.of(self.draft.status))
        plan = plan_workspace_secret(candidates, ours, self._owned_agents() if owned_needed(candidates, ours) else None)
        for secret_id, others in plan.passed_over:
            log.warning("workspace secret %s (%s) is used by other agents (%s): not taking it", name, secret_id,
                        ", ".join(others))
        if plan.action == "take":
            self.client.update_secret(plan.secret_id, name, custom_llm_key)  # the key the proxy has now
            self.draft.record(workspaceSecretId=plan.secret_id)
            self.events.normal("WorkspaceSecretFound",
                               f"Found ElevenLabs workspace secret {name} ({plan.secret_id}), made by an earlier "
                               "reconcile that could not record it; its value is set to the proxy's key.")
            return
        secret_id = self.client.create_secret(name, custom_llm_key)
        self.draft.record(workspaceSecretId=secret_id)
        self.events.normal("WorkspaceSecretCreated",
                           f"Created ElevenLabs workspace secret {name} ({secret_id}) holding the proxy's key.")
