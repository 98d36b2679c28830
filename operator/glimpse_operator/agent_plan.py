"""What to do about a VoiceAgent's ElevenLabs agent and workspace secret: decisions only, no I/O.

Each is taken from what the VoiceAgent's status records (`Recorded`), what its spec wants, and what exists in
ElevenLabs, looked up by the caller only when the decision needs it (`None`: not looked up; `owned_needed` and
`agent_in_use` say when it does):

- the workspace secret holding the proxy's key (`plan_workspace_secret`): `take` the one an earlier reconcile made
  but could not record (found by its deterministic name, used by no agent but this VoiceAgent's), or `create` it;
- the agent (`plan_agent`): `create` it; `adopt` the one an earlier reconcile created but could not record (found by
  the tag naming the VoiceAgent's uid; once that is recorded, plan again); `update` it (the body the spec wants
  changed, or a repair writes it again); `recreate` the one this VoiceAgent made that is gone from ElevenLabs (its
  update answered 404); or leave it `unchanged`. An agent the spec adopts is never created, recreated or tagged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any, Literal

AgentAction = Literal["create", "adopt", "update", "recreate", "unchanged"]
SecretAction = Literal["take", "create"]


@dataclass(frozen=True)
class Recorded:
    """What a VoiceAgent's status records of ElevenLabs."""

    agent_id: str = ""
    agent_created: bool = False  # the operator made the agent: it may make it again, and deletes it at the end
    config_hash: str = ""  # of the agent body last written
    workspace_secret_id: str = ""

    @classmethod
    def of(cls, status: Mapping[str, Any]) -> Recorded:
        return cls(agent_id=str(status.get("agentId") or ""), agent_created=bool(status.get("agentCreated")),
                   config_hash=str(status.get("agentConfigHash") or ""),
                   workspace_secret_id=str(status.get("workspaceSecretId") or ""))


# -- the agent ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AgentPlan:
    action: AgentAction
    agent_id: str = ""  # the agent acted on: adopted by the spec, found by its tag, or recorded ("" for create)
    changed: bool = False  # update: what the spec wants (or the agent used) changed, not only a repair's rewrite
    duplicates: tuple[str, ...] = ()  # adopt: more agents carrying the tag, left alone


def agent_in_use(adopted: str, recorded: Recorded) -> str:
    """The agent the spec adopts, else the one the status records; "" when there is none yet (then the agents
    carrying the VoiceAgent's tag must be looked up)."""
    return adopted or recorded.agent_id


def plan_agent(adopted: str, recorded: Recorded, config_hash: str, *, owned: Sequence[str] | None = None,
               gone: bool = False, repair: bool = False) -> AgentPlan:
    """`adopted`: spec.elevenlabs.agentId ("" for none); `config_hash`: of the agent body the spec wants; `owned`:
    the agents carrying the VoiceAgent's tag, oldest first; `gone`: the agent in use answered 404; `repair`: write
    the agent even if nothing changed (it may have been edited in ElevenLabs)."""
    agent_id = agent_in_use(adopted, recorded)
    if not agent_id:
        if owned is None:
            raise ValueError("no agent is adopted or recorded: look up the agents carrying the VoiceAgent's tag")
        if not owned:
            return AgentPlan("create")
        return AgentPlan("adopt", owned[0], duplicates=tuple(owned[1:]))
    if gone and not adopted and recorded.agent_created:
        return AgentPlan("recreate", agent_id)
    # gone, but not this VoiceAgent's to make again: it stays an update, whose 404 is the error to show
    changed = agent_id != recorded.agent_id or recorded.config_hash != config_hash
    if changed or repair:
        return AgentPlan("update", agent_id, changed=changed)
    return AgentPlan("unchanged", agent_id)


# -- the workspace secret -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SecretCandidate:
    """A workspace secret with the VoiceAgent's deterministic name, and the agents that use it."""

    secret_id: str
    users: frozenset[str] = frozenset()

    @classmethod
    def of(cls, secret: Mapping[str, Any]) -> SecretCandidate:
        """From ElevenLabs' shape: `{secret_id, name, used_by: {agents: [{id, …}], …}}`."""
        agents = (secret.get("used_by") or {}).get("agents") or []
        return cls(str(secret.get("secret_id")), frozenset(str(agent.get("id")) for agent in agents))


@dataclass(frozen=True)
class SecretPlan:
    action: SecretAction
    secret_id: str = ""  # take: the one found
    passed_over: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (id, the other agents using it): not taken


def our_agents(adopted: str, recorded: Recorded) -> frozenset[str]:
    """The agents known to be this VoiceAgent's without a look-up: adopted, recorded."""
    return frozenset(agent for agent in (adopted, recorded.agent_id) if agent)


def owned_needed(candidates: Sequence[SecretCandidate], ours: Set[str]) -> bool:
    """Whether the agents carrying the VoiceAgent's tag must be known to choose: the first candidate is used by an
    agent not known to be ours (maybe one an earlier reconcile created but could not record)."""
    return bool(candidates) and not candidates[0].users <= ours


def plan_workspace_secret(candidates: Sequence[SecretCandidate], ours: Set[str],
                          owned: Sequence[str] | None = None) -> SecretPlan:
    """The first candidate used by no agent but ours (`ours`, and `owned` when looked up) is taken: unused, or used
    only by this VoiceAgent's agent, an earlier reconcile made it. None: one is created."""
    if owned is None and owned_needed(candidates, ours):
        raise ValueError("the first candidate is used by other agents: look up the agents carrying the tag")
    mine = ours | frozenset(owned or ())
    for index, candidate in enumerate(candidates):
        if candidate.users <= mine:
            return SecretPlan("take", candidate.secret_id, _passed_over(candidates[:index], mine))
    return SecretPlan("create", passed_over=_passed_over(candidates, mine))


def _passed_over(candidates: Sequence[SecretCandidate], mine: Set[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((candidate.secret_id, tuple(sorted(candidate.users - mine))) for candidate in candidates)
