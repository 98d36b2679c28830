"""No retry, crash, restart or race makes a second ElevenLabs agent or workspace secret; an apply error is a
condition, a retry and an event; `kubectl describe` tells the story.

The handlers are called as kopf calls them, with the real `kubernetes` client against the fake API server and the
fake ElevenLabs (tests/operator/support.py has the helpers)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging

import kopf
import pytest

from glimpse_operator import handlers
from glimpse_operator.render import owner_tag
from tests.fakes.elevenlabs_api import FakeElevenLabs
from tests.fakes.kubernetes_api import FakeKubernetes
from tests.operator.support import (
    DEPLOYMENT,
    conditions,
    current,
    event_reasons,
    new_memo,
    run_drift,
    run_reconcile,
    stored,
    voice_agent,
    voice_agent_path,
)

STATUS = voice_agent_path(voice_agent()) + "/status"


def one_agent_and_one_secret(cluster: FakeKubernetes, elevenlabs: FakeElevenLabs) -> None:
    status = current(cluster, voice_agent())["status"]
    assert list(elevenlabs.created_agents) == [status["agentId"]]
    assert list(elevenlabs.workspace_secrets) == [status["workspaceSecretId"]]
    assert [c.path for c in elevenlabs.management_calls() if c.method == "POST"] == [
        "/v1/convai/secrets", "/v1/convai/agents/create"]


@pytest.mark.parametrize("refusal", ["admission webhook", "forbidden", "bad resources"])
async def test_an_apply_error_keeps_the_ids_and_the_retries_make_no_second_agent(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo, refusal: str) -> None:
    body = voice_agent()
    if refusal == "admission webhook":
        cluster.refuse_apply["Deployment"] = (400, 'admission webhook "policy.example.com" denied the request: '
                                                   "images must come from registry.example.com")
    elif refusal == "forbidden":
        cluster.refuse_apply["Deployment"] = (403, 'deployments.apps "glimpse-museum-guide" is forbidden: User '
                                                   '"system:serviceaccount:glimpse:glimpse-operator" cannot patch')
    else:
        body = voice_agent(proxy__resources={"limits": {"memory": "lots"}})
    body = stored(cluster, body)
    for retry in range(3):
        patch, error = await run_reconcile(current(cluster, body), memo, cluster, retry=retry)
        assert isinstance(error, kopf.TemporaryError) and error.delay == handlers.backoff(retry)
        proxy = conditions(patch)["ProxyAvailable"]
        assert proxy["status"] == "False" and proxy["reason"] == "ApplyFailed"
        assert "Deployment voice/glimpse-museum-guide" in proxy["message"]
        assert ("denied the request" if refusal == "admission webhook" else "forbidden" if refusal == "forbidden"
                else 'Invalid value: "lots"') in proxy["message"]
        assert conditions(patch)["Ready"]["status"] == "False"
        # the ids are in the status although the reconcile failed
        status = current(cluster, body)["status"]
        assert status["agentId"] in elevenlabs.agents and status["workspaceSecretId"] in elevenlabs.workspace_secrets
    assert DEPLOYMENT not in cluster.objects
    one_agent_and_one_secret(cluster, elevenlabs)
    assert event_reasons(cluster, "Warning") == ["ApplyFailed"] * 3

    # the cause goes away (the policy is fixed, or the spec): the next reconcile applies, and creates nothing
    cluster.refuse_apply.clear()
    body = current(cluster, body)
    body["spec"].pop("proxy", None)
    body = stored(cluster, body)
    patch, error = await run_reconcile(body, memo, cluster, retry=3)
    assert error is None and conditions(patch)["ProxyAvailable"]["reason"] == "Progressing"
    assert DEPLOYMENT in cluster.objects
    one_agent_and_one_secret(cluster, elevenlabs)
    assert event_reasons(cluster)[-1] == "ObjectsApplied"


@pytest.mark.parametrize("dies_after", ["workspace secret create", "agent create"])
async def test_an_operator_that_dies_before_recording_an_id_makes_nothing_twice_after_a_restart(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo, dies_after: str) -> None:
    """The operator is killed right after an ElevenLabs create: the status patch recording the id never arrives,
    and neither does kopf's own status patch. The restarted operator finds what was made, by tag or by name."""
    body = stored(cluster, voice_agent())
    cluster.fail_next("PATCH", STATUS, 503, "etcdserver: request timed out",
                      after=0 if dies_after == "workspace secret create" else 1)
    with contextlib.suppress(kopf.TemporaryError):  # the status write failed: the operator dies here
        await asyncio.to_thread(handlers.reconcile, body=body, patch=kopf.Patch(), memo=memo)
    # whatever the dead operator had, nothing more reaches the API server: not even kopf's patch
    recorded = current(cluster, body).get("status", {})
    assert ("workspaceSecretId" not in recorded) if dies_after == "workspace secret create" else (
        "agentId" not in recorded)

    restarted = new_memo(cluster, elevenlabs)
    patch, error = await run_reconcile(current(cluster, body), restarted, cluster)
    assert error is None and conditions(patch)["AgentSynced"]["status"] == "True"
    one_agent_and_one_secret(cluster, elevenlabs)
    if dies_after == "agent create":
        agent_id = current(cluster, body)["status"]["agentId"]
        assert owner_tag(body["metadata"]["uid"]) in elevenlabs.created_agents[agent_id]["tags"]
        assert "AgentFound" in event_reasons(cluster)
    else:
        assert "WorkspaceSecretFound" in event_reasons(cluster)
    # the key the proxy serves with is the one ElevenLabs sends
    [secret_id] = elevenlabs.workspace_secrets
    stored_key = cluster.objects["/api/v1/namespaces/voice/secrets/glimpse-museum-guide"]["data"]["customLlmKey"]
    assert elevenlabs.workspace_secrets[secret_id]["value"] == base64.b64decode(stored_key).decode()


async def test_two_concurrent_reconciles_of_one_voice_agent_make_one_agent(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    elevenlabs.latency = 0.2  # each ElevenLabs call takes a while: without a lock, both would create
    body = stored(cluster, voice_agent())
    patches = [kopf.Patch(), kopf.Patch()]
    await asyncio.gather(*(asyncio.to_thread(handlers.reconcile, body=body, patch=p, memo=memo,
                                             logger=logging.getLogger("test")) for p in patches))
    assert len(elevenlabs.created_agents) == 1 and len(elevenlabs.workspace_secrets) == 1
    assert {p["status"]["agentId"] for p in patches} == set(elevenlabs.created_agents)


async def test_the_drift_timer_never_reconciles_beside_a_handler(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    """kopf runs timers beside the change handlers: while the create handler works, a timer tick does nothing."""
    elevenlabs.latency = 0.2
    body = stored(cluster, voice_agent())
    handler = asyncio.ensure_future(run_reconcile(body, memo, cluster))
    while not elevenlabs.calls:  # the handler is inside its reconcile
        await asyncio.sleep(0.01)
    tick = await run_drift(body, memo, cluster)
    assert "status" not in tick  # skipped: nothing applied, nothing called, nothing written
    _, error = await handler
    assert error is None
    assert len(elevenlabs.created_agents) == 1 and len(elevenlabs.workspace_secrets) == 1
    # once the handler is done, the timer works again
    cluster.objects[DEPLOYMENT]["status"] = {"availableReplicas": 1}
    tick = await run_drift(current(cluster, body), memo, cluster)
    assert conditions(tick)["Ready"]["status"] == "True" and len(elevenlabs.created_agents) == 1


async def test_events_tell_the_story(cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    body = stored(cluster, voice_agent())
    await run_reconcile(body, memo, cluster)
    assert event_reasons(cluster, "Normal") == ["WorkspaceSecretCreated", "AgentCreated", "ObjectsApplied"]
    agent_id = current(cluster, body)["status"]["agentId"]
    [created] = [e for e in cluster.events("museum-guide") if e["reason"] == "AgentCreated"]
    assert agent_id in created["message"] and created["source"]["component"] == "glimpse-operator"
    assert created["involvedObject"] == {"apiVersion": "glimpse.dev/v1alpha1", "kind": "VoiceAgent",
                                         "name": "museum-guide", "namespace": "voice",
                                         "uid": body["metadata"]["uid"]}
    # a timer tick with nothing to do says nothing
    await run_drift(current(cluster, body), memo, cluster)
    assert len(event_reasons(cluster)) == 3
    # a spec change: the agent is updated and the objects applied again
    body = current(cluster, body)
    body["spec"]["agent"]["prompt"] = "You are a very patient guide."
    await run_reconcile(stored(cluster, body), memo, cluster)
    assert event_reasons(cluster)[3:] == ["AgentUpdated", "ObjectsApplied"]
    # ElevenLabs down: a Warning with its answer
    body = current(cluster, body)
    body["spec"]["agent"]["prompt"] = "You are a guide."
    elevenlabs.fail_with = 503
    await run_reconcile(stored(cluster, body), memo, cluster)
    [warning] = [e for e in cluster.events("museum-guide") if e["type"] == "Warning"]
    assert warning["reason"] == "ElevenLabsError" and "503" in warning["message"]
