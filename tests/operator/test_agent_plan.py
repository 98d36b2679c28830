"""`agent_plan`: what a reconcile does about a VoiceAgent's ElevenLabs agent and workspace secret, decided from its
status, its spec and what exists in ElevenLabs, as tables. No I/O: the look-ups are the caller's."""

from __future__ import annotations

from typing import Any

import pytest

from glimpse_operator.agent_plan import (
    AgentPlan,
    Recorded,
    SecretCandidate,
    SecretPlan,
    agent_in_use,
    our_agents,
    owned_needed,
    plan_agent,
    plan_workspace_secret,
)

HASH = "f00dfeed"  # of the agent body the spec wants now
ADOPTED = "agent_adopted"  # spec.elevenlabs.agentId
MADE = "agent_made"  # recorded, made by the operator


def made(config_hash: str = HASH) -> Recorded:
    return Recorded(agent_id=MADE, agent_created=True, config_hash=config_hash, workspace_secret_id="sec_1")


@pytest.mark.parametrize(("adopted", "recorded", "owned", "gone", "repair", "expected"), [
    pytest.param("", Recorded(), [], False, False, AgentPlan("create"), id="nothing anywhere: create"),
    pytest.param("", Recorded(), ["agent_old", "agent_new", "agent_newer"], False, False,
                 AgentPlan("adopt", "agent_old", duplicates=("agent_new", "agent_newer")),
                 id="made but never recorded: adopt the oldest carrying the tag"),
    pytest.param("", Recorded(), ["agent_old"], False, True, AgentPlan("adopt", "agent_old"),
                 id="a repair adopts too"),
    pytest.param("", made(), None, False, False, AgentPlan("unchanged", MADE), id="recorded, same body: unchanged"),
    pytest.param("", made(), None, False, True, AgentPlan("update", MADE, changed=False),
                 id="recorded, same body, repair: rewritten, not news"),
    pytest.param("", made("0ld"), None, False, False, AgentPlan("update", MADE, changed=True),
                 id="the spec changed: update"),
    pytest.param("", Recorded(MADE, agent_created=True), None, False, False, AgentPlan("update", MADE, changed=True),
                 id="adopted by its tag, no hash recorded: update"),
    pytest.param(ADOPTED, Recorded(), None, False, False, AgentPlan("update", ADOPTED, changed=True),
                 id="the spec adopts one: updated, never created"),
    pytest.param(ADOPTED, Recorded(ADOPTED, config_hash=HASH), None, False, False, AgentPlan("unchanged", ADOPTED),
                 id="adopted, same body: unchanged"),
    pytest.param(ADOPTED, Recorded("agent_before", config_hash=HASH), None, False, False,
                 AgentPlan("update", ADOPTED, changed=True), id="the spec adopts another one: update it"),
    pytest.param(ADOPTED, made(), None, False, False, AgentPlan("update", ADOPTED, changed=True),
                 id="the spec adopts one after the operator made one: update the adopted"),
    pytest.param("", made(), None, True, False, AgentPlan("recreate", MADE), id="made here and gone: recreate"),
    pytest.param("", made("0ld"), None, True, True, AgentPlan("recreate", MADE), id="gone, whatever changed"),
    pytest.param(ADOPTED, Recorded(ADOPTED, config_hash="0ld"), None, True, False,
                 AgentPlan("update", ADOPTED, changed=True), id="adopted and gone: never recreated (its 404 stands)"),
    pytest.param(ADOPTED, Recorded(ADOPTED, agent_created=True, config_hash=HASH), None, True, True,
                 AgentPlan("update", ADOPTED, changed=False), id="adopted, marked created, gone: never recreated"),
    pytest.param("", Recorded(MADE, config_hash=HASH), None, True, True, AgentPlan("update", MADE, changed=False),
                 id="recorded, not made here, gone: never recreated"),
])
def test_agent_plan(adopted: str, recorded: Recorded, owned: list[str] | None, gone: bool, repair: bool,
                    expected: AgentPlan) -> None:
    assert plan_agent(adopted, recorded, HASH, owned=owned, gone=gone, repair=repair) == expected


def test_the_agents_carrying_the_tag_are_needed_only_when_no_agent_is_in_use() -> None:
    assert agent_in_use("", Recorded()) == ""
    with pytest.raises(ValueError, match="look up"):
        plan_agent("", Recorded(), HASH)
    assert agent_in_use(ADOPTED, made()) == ADOPTED and agent_in_use("", made()) == MADE
    assert plan_agent("", made(), HASH, owned=["agent_other"]) == AgentPlan("unchanged", MADE)  # not used


@pytest.mark.parametrize(("status", "expected"), [
    ({}, Recorded()),
    ({"agentId": MADE, "agentCreated": True, "agentConfigHash": HASH, "workspaceSecretId": "sec_1",
      "url": "https://voice.example.com/v1", "conditions": []}, made()),
    ({"agentId": ADOPTED, "agentCreated": False, "agentConfigHash": None}, Recorded(ADOPTED)),
])
def test_recorded_from_the_status(status: dict[str, Any], expected: Recorded) -> None:
    assert Recorded.of(status) == expected


def candidate(secret_id: str, *users: str) -> SecretCandidate:
    return SecretCandidate(secret_id, frozenset(users))


@pytest.mark.parametrize(("candidates", "ours", "owned", "expected"), [
    pytest.param([], set(), None, SecretPlan("create"), id="none: create"),
    pytest.param([candidate("sec_1")], set(), None, SecretPlan("take", "sec_1"), id="unused: take"),
    pytest.param([candidate("sec_1", MADE)], {MADE}, None, SecretPlan("take", "sec_1"),
                 id="used by the recorded agent only: take"),
    pytest.param([candidate("sec_1", "agent_lost")], set(), ["agent_lost"], SecretPlan("take", "sec_1"),
                 id="used by an agent carrying the tag: take"),
    pytest.param([candidate("sec_1", "agent_x")], set(), [],
                 SecretPlan("create", passed_over=(("sec_1", ("agent_x",)),)), id="used by another agent: create"),
    pytest.param([candidate("sec_1", MADE, "agent_x")], {MADE}, [],
                 SecretPlan("create", passed_over=(("sec_1", ("agent_x",)),)), id="shared with another agent: create"),
    pytest.param([candidate("sec_1", "agent_y", "agent_x"), candidate("sec_2"), candidate("sec_3")], set(), [],
                 SecretPlan("take", "sec_2", passed_over=(("sec_1", ("agent_x", "agent_y")),)),
                 id="the first one that is ours: take"),
])
def test_workspace_secret_plan(candidates: list[SecretCandidate], ours: set[str], owned: list[str] | None,
                               expected: SecretPlan) -> None:
    assert plan_workspace_secret(candidates, ours, owned) == expected


@pytest.mark.parametrize(("candidates", "ours", "needed"), [
    ([], set(), False),
    ([candidate("sec_1")], set(), False),
    ([candidate("sec_1", MADE)], {MADE}, False),
    ([candidate("sec_1", "agent_x")], {MADE}, True),
    ([candidate("sec_1"), candidate("sec_2", "agent_x")], set(), False),  # the first is taken before the second
])
def test_the_agents_carrying_the_tag_are_needed_only_when_the_first_candidate_is_used_by_another(
        candidates: list[SecretCandidate], ours: set[str], needed: bool) -> None:
    assert owned_needed(candidates, ours) is needed
    if needed:
        with pytest.raises(ValueError, match="look up"):
            plan_workspace_secret(candidates, ours)


def test_candidates_and_our_agents_from_what_elevenlabs_and_the_status_say() -> None:
    listed = {"type": "stored", "secret_id": "sec_1", "name": "glimpse-voice-museum-guide",
              "used_by": {"tools": [], "others": [], "agents": [{"type": "available", "id": "agent_x"}]}}
    assert SecretCandidate.of(listed) == candidate("sec_1", "agent_x")
    assert SecretCandidate.of({"secret_id": "sec_2", "used_by": {}}) == candidate("sec_2")
    assert our_agents(ADOPTED, made()) == {ADOPTED, MADE} and our_agents("", Recorded()) == set()
