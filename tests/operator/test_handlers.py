"""The kopf handlers, called with a real `kubernetes` client pointed at a fake API server on loopback
and a fake ElevenLabs API. The VoiceAgent lives in the fake API server, and what kopf would write after a handler
(its status patch) is written there too."""

from __future__ import annotations

import asyncio
import base64

import kopf
import pytest

from glimpse_operator import handlers
from tests.fakes.elevenlabs_api import API_KEY, FakeElevenLabs
from tests.fakes.kubernetes_api import FakeKubernetes
from tests.operator.support import (
    DEPLOYMENT,
    NS,
    conditions,
    current,
    event_reasons,
    run_drift,
    run_reconcile,
    stored,
    voice_agent,
    voice_agent_path,
)

GENERATED = "/api/v1/namespaces/voice/secrets/glimpse-museum-guide"


async def test_create_applies_objects_creates_agent_and_sets_status(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    body = voice_agent()
    patch, error = await run_reconcile(body, memo, cluster)
    assert error is None
    kinds = sorted(a.body["kind"] for a in cluster.applies)
    assert kinds == sorted(["Secret", "ConfigMap", "Deployment", "Service", "Ingress", "PodDisruptionBudget",
                            "NetworkPolicy"])
    assert all(a.field_manager == "glimpse-operator" and a.force for a in cluster.applies)
    status = patch["status"]
    assert status["agentId"] in elevenlabs.created_agents and status["agentCreated"] is True
    assert status["url"] == "https://voice.example.com/v1" and status["observedGeneration"] == 1
    agent = elevenlabs.created_agents[status["agentId"]]
    custom = agent["conversation_config"]["agent"]["prompt"]["custom_llm"]
    assert custom["url"] == "https://voice.example.com/v1"
    stored_key = base64.b64decode(cluster.objects[GENERATED]["data"]["customLlmKey"]).decode()
    assert elevenlabs.workspace_secrets[custom["api_key"]["secret_id"]]["value"] == stored_key
    config = cluster.objects["/api/v1/namespaces/voice/configmaps/glimpse-museum-guide"]["data"]
    assert config["GLIMPSE_ELEVENLABS_AGENT_ID"] == status["agentId"]
    found = conditions(patch)
    assert found["AgentSynced"]["status"] == "True"
    assert found["ProxyAvailable"]["status"] == "False" and found["Ready"]["status"] == "False"

    # the pods come up: the Deployment's event reports Ready, with no ElevenLabs call
    cluster.put_status(DEPLOYMENT, {"availableReplicas": 2})
    calls_before = len(elevenlabs.management_calls())
    meta = current(cluster, body)["metadata"]
    await asyncio.to_thread(memo.reconciler.refresh_availability, NS, meta["name"], meta["uid"])
    found = {c["type"]: c for c in current(cluster, body)["status"]["conditions"]}
    assert found["Ready"]["status"] == "True" and found["ProxyAvailable"]["reason"] == "Available"
    assert len(elevenlabs.management_calls()) == calls_before
    # a timer tick writes the agent once (drift repair in ElevenLabs), creates nothing
    patch2 = await run_drift(current(cluster, body), memo, cluster)
    assert conditions(patch2)["Ready"]["status"] == "True"
    assert [c.method for c in elevenlabs.management_calls()[calls_before:]] == ["PATCH"]
    # the generated bearer key is kept across reconciles
    assert base64.b64decode(cluster.objects[GENERATED]["data"]["customLlmKey"]).decode() == stored_key


async def test_spec_change_patches_the_agent_once_and_no_change_calls_nothing(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    body = voice_agent()
    await run_reconcile(body, memo, cluster)
    before = len(elevenlabs.management_calls())
    await run_reconcile(current(cluster, body), memo, cluster)
    assert len(elevenlabs.management_calls()) == before  # nothing changed: no call
    body = current(cluster, body)
    body["spec"]["agent"]["prompt"] = "You are a very patient guide."
    body = stored(cluster, body)  # the API server counts the generation
    patch, _ = await run_reconcile(body, memo, cluster)
    new_calls = elevenlabs.management_calls()[before:]
    assert [(c.method, c.path.split("/")[-2]) for c in new_calls] == [("PATCH", "agents")]
    agent_id = patch["status"]["agentId"]
    assert elevenlabs.created_agents[agent_id]["conversation_config"]["agent"]["prompt"]["prompt"] == \
        "You are a very patient guide."
    assert patch["status"]["observedGeneration"] == 2


async def test_delete_removes_created_agent_and_secret(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    body = voice_agent()
    await run_reconcile(body, memo, cluster)
    body = current(cluster, body)
    agent_id, secret_id = body["status"]["agentId"], body["status"]["workspaceSecretId"]
    await asyncio.to_thread(handlers.clean_up, body=body, memo=memo)
    assert agent_id not in elevenlabs.agents and secret_id not in elevenlabs.workspace_secrets


async def test_adopted_agent_is_patched_but_never_deleted(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    elevenlabs.agents.add("agent_existing")
    body = voice_agent(elevenlabs__agentId="agent_existing")
    patch, error = await run_reconcile(body, memo, cluster)
    assert error is None
    assert patch["status"]["agentId"] == "agent_existing" and not patch["status"].get("agentCreated")
    assert [c.method for c in elevenlabs.management_calls() if "agents" in c.path] == ["PATCH"]
    await asyncio.to_thread(handlers.clean_up, body=current(cluster, body), memo=memo)
    assert "agent_existing" in elevenlabs.agents
    assert elevenlabs.management_calls()[-1].method == "DELETE" and "secrets" in elevenlabs.management_calls()[-1].path


async def test_elevenlabs_failure_is_a_false_condition_and_a_retry(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    elevenlabs.fail_with = 500
    patch, error = await run_reconcile(voice_agent(), memo, cluster)
    assert isinstance(error, kopf.TemporaryError)
    synced = conditions(patch)["AgentSynced"]
    assert synced["status"] == "False" and synced["reason"] == "ElevenLabsError" and "500" in synced["message"]
    assert API_KEY not in synced["message"]
    assert any(a.body["kind"] == "Deployment" for a in cluster.applies)  # the proxy is still deployed
    assert error.delay == handlers.backoff(0) == 15
    assert handlers.backoff(3) == 120 and handlers.backoff(20) == 600  # exponential, capped


async def test_missing_secret_is_a_clear_condition(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    del cluster.objects["/api/v1/namespaces/voice/secrets/openai"]
    patch, error = await run_reconcile(voice_agent(), memo, cluster)
    assert isinstance(error, kopf.TemporaryError)
    synced = conditions(patch)["AgentSynced"]
    assert synced["reason"] == "SecretMissing" and "voice/openai" in synced["message"]
    assert conditions(patch)["Ready"]["status"] == "False"
    assert cluster.applies == [] and elevenlabs.management_calls() == []


async def test_the_s3_credentials_secret_is_the_kubelets_to_read_not_the_operators(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    """spec.images.s3CredentialsSecretRef names a Secret the operator never requests (its pods wait for it, as for
    any Secret they name): the reconcile goes through while it does not exist, and the Deployment names it."""
    body = voice_agent(images__storage="s3://glimpse/voice", images__s3CredentialsSecretRef={"name": "minio-keys"})
    patch, error = await run_reconcile(body, memo, cluster)
    assert error is None and conditions(patch)["AgentSynced"]["status"] == "True"
    assert not [r for r in cluster.requests if "minio-keys" in r.path]
    deployment = next(a.body for a in cluster.applies if a.body["kind"] == "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {"name": "minio-keys", "key": "accessKeyId"}


async def test_drift_is_repaired_by_reapplying(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    body = voice_agent()
    await run_reconcile(body, memo, cluster)
    cluster.objects[DEPLOYMENT]["spec"]["template"]["spec"]["containers"][0]["image"] = "evil/image:latest"
    await run_drift(current(cluster, body), memo, cluster)
    assert cluster.objects[DEPLOYMENT]["spec"]["template"]["spec"]["containers"][0]["image"] == "glimpse/proxy:0.1.0"


@pytest.mark.parametrize(("api_type", "expected"), [(None, "chat_completions"), ("responses", "responses")])
async def test_created_agent_permits_the_extra_body_and_pins_the_api_type(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo, api_type: str | None,
        expected: str) -> None:
    body = voice_agent() if api_type is None else voice_agent(llm__apiType=api_type)
    patch, error = await run_reconcile(body, memo, cluster)
    assert error is None
    agent = elevenlabs.created_agents[patch["status"]["agentId"]]
    assert agent["platform_settings"]["overrides"]["custom_llm_extra_body"] is True
    assert agent["conversation_config"]["agent"]["prompt"]["custom_llm"]["api_type"] == expected
    assert {"user_transcript", "agent_response", "agent_response_correction", "interruption", "audio"} <= \
        set(agent["conversation_config"]["conversation"]["client_events"])


async def test_adopted_agent_is_patched_to_permit_the_extra_body(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    """An agent configured before (by hand, or by an older operator) gets what the page needs on the next PATCH."""
    elevenlabs.agents.add("agent_existing")
    _, error = await run_reconcile(voice_agent(elevenlabs__agentId="agent_existing", llm__apiType="responses"), memo,
                                   cluster)
    assert error is None
    [sent] = [c.body for c in elevenlabs.management_calls() if c.method == "PATCH"]
    assert sent is not None
    assert sent["platform_settings"]["overrides"]["custom_llm_extra_body"] is True
    assert sent["conversation_config"]["agent"]["prompt"]["custom_llm"]["api_type"] == "responses"


async def test_an_object_someone_else_owns_is_never_taken_over(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    """A Service named glimpse-museum-guide that another team made: refused with a condition, before anything is
    applied or created in ElevenLabs; once it is gone, the VoiceAgent is reconciled."""
    service_path = "/api/v1/namespaces/voice/services/glimpse-museum-guide"
    theirs = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "glimpse-museum-guide", "namespace": NS,
              "labels": {"team": "web"}}, "spec": {"ports": [{"port": 80}]}}
    cluster.put(service_path, theirs)
    patch, error = await run_reconcile(voice_agent(), memo, cluster)
    assert isinstance(error, kopf.TemporaryError)
    found = conditions(patch)
    assert found["ProxyAvailable"]["reason"] == "ObjectConflict" and found["Ready"]["status"] == "False"
    assert "Service voice/glimpse-museum-guide (made by someone else)" in found["ProxyAvailable"]["message"]
    assert "ObjectConflict" in event_reasons(cluster, "Warning")
    assert not cluster.applies and not elevenlabs.created_agents
    assert cluster.objects[service_path]["metadata"]["labels"] == {"team": "web"}

    cluster.delete(service_path)
    patch, error = await run_reconcile(current(cluster, voice_agent()), memo, cluster)
    assert error is None and len(elevenlabs.created_agents) == 1
    owner = cluster.objects[service_path]["metadata"]["ownerReferences"][0]
    assert owner["uid"] == cluster.objects[voice_agent_path(voice_agent())]["metadata"]["uid"]


async def test_the_drift_timer_repairs_the_agent_edited_or_deleted_in_elevenlabs(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    """The VoiceAgent is the agent's source of truth: a custom LLM changed in the dashboard is written back, and an
    agent deleted there is made again (not PATCHed with 404 at every tick), with a Warning event."""
    body = voice_agent()
    await run_reconcile(body, memo, cluster)
    first = current(cluster, body)["status"]["agentId"]
    elevenlabs.created_agents[first]["conversation_config"]["agent"]["prompt"]["custom_llm"]["url"] = "https://x/v1"
    await run_drift(current(cluster, body), memo, cluster)
    custom = elevenlabs.created_agents[first]["conversation_config"]["agent"]["prompt"]["custom_llm"]
    assert custom["url"] == "https://voice.example.com/v1"

    elevenlabs.agents.discard(first)  # deleted by hand in the dashboard
    elevenlabs.created_agents.pop(first)
    patch = await run_drift(current(cluster, body), memo, cluster)
    second = current(cluster, body)["status"]["agentId"]
    assert second != first and list(elevenlabs.created_agents) == [second]
    assert patch["status"]["agentId"] == second and conditions(patch)["AgentSynced"]["status"] == "True"
    assert "AgentRecreated" in event_reasons(cluster, "Warning")
    config = cluster.objects["/api/v1/namespaces/voice/configmaps/glimpse-museum-guide"]["data"]
    assert config["GLIMPSE_ELEVENLABS_AGENT_ID"] == second
    await run_drift(current(cluster, body), memo, cluster)
    assert list(elevenlabs.created_agents) == [second]
