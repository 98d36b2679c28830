"""Deleting a VoiceAgent never hangs: bounded retries, 401/403 final, an annotation to skip ElevenLabs, and the
ElevenLabs key Secret kept (by a finalizer per VoiceAgent) until the clean-up has used it.

The delete handler is called as kopf calls it (`retry`, `runtime`), with the real `kubernetes` client against the
fake API server and the fake ElevenLabs."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from typing import Any

import kopf
import pytest

from glimpse_operator import handlers
from tests.fakes.elevenlabs_api import FakeElevenLabs
from tests.fakes.kubernetes_api import FakeKubernetes
from tests.operator.support import (
    KEY_SECRET,
    current,
    event_reasons,
    new_memo,
    run_reconcile,
    stored,
    voice_agent,
    voice_agent_path,
)

FINALIZER = "voiceagent.glimpse.dev/museum-guide"  # the VoiceAgent's finalizer on its ElevenLabs key Secret


async def reconciled(cluster: FakeKubernetes, memo: kopf.Memo, body: dict[str, Any] | None = None) -> dict[str, Any]:
    body = stored(cluster, body or voice_agent())
    _, error = await run_reconcile(body, memo, cluster)
    assert error is None
    return current(cluster, body)


def deleting(cluster: FakeKubernetes, body: dict[str, Any]) -> dict[str, Any]:
    """`kubectl delete voiceagent`: kopf's finalizer holds it, marked for deletion; the body the handler gets."""
    path = voice_agent_path(body)
    obj = copy.deepcopy(cluster.objects[path])
    obj["metadata"]["finalizers"] = ["glimpse.dev/cleanup"]
    cluster.put(path, obj)
    cluster.delete(path)
    return current(cluster, body)


async def clean_up(body: dict[str, Any], memo: kopf.Memo, retry: int = 0,
                   runtime: float = 0.0) -> Exception | None:
    try:
        await asyncio.to_thread(handlers.clean_up, body=body, memo=memo, retry=retry,
                                runtime=dt.timedelta(seconds=runtime))
    except (kopf.TemporaryError, kopf.PermanentError) as exc:
        return exc
    return None


def finalizers(cluster: FakeKubernetes, path: str = KEY_SECRET) -> list[str]:
    return list(cluster.objects[path]["metadata"].get("finalizers") or [])


def warnings(cluster: FakeKubernetes, reason: str) -> list[str]:
    return [e["message"] for e in cluster.events("museum-guide") if e["type"] == "Warning" and e["reason"] == reason]


async def test_elevenlabs_down_releases_the_voice_agent_within_the_bound_with_a_warning(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    body = deleting(cluster, await reconciled(cluster, memo))
    agent_id, secret_id = body["status"]["agentId"], body["status"]["workspaceSecretId"]
    elevenlabs.fail_with = 503
    delays = []
    for retry in range(handlers.CLEANUP_ATTEMPTS - 1):
        error = await clean_up(body, memo, retry=retry, runtime=sum(delays))
        assert isinstance(error, kopf.TemporaryError) and error.delay is not None
        delays.append(error.delay)
    assert delays == [15, 30, 60, 120] and sum(delays) < handlers.CLEANUP_TIMEOUT_SECONDS
    assert len(warnings(cluster, "CleanupFailed")) == handlers.CLEANUP_ATTEMPTS - 1
    assert FINALIZER in finalizers(cluster)  # the key is still needed for the next attempt

    # the last attempt gives up: no exception (kopf removes its finalizer), a Warning naming what is left
    assert await clean_up(body, memo, retry=handlers.CLEANUP_ATTEMPTS - 1, runtime=sum(delays)) is None
    [abandoned] = warnings(cluster, "CleanupAbandoned")
    assert agent_id in abandoned and secret_id in abandoned and "503" in abandoned
    assert FINALIZER not in finalizers(cluster)
    assert agent_id in elevenlabs.agents  # left in ElevenLabs, and said so


async def test_the_timeout_bounds_the_clean_up_too(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    body = deleting(cluster, await reconciled(cluster, memo))
    elevenlabs.fail_with = 502
    # attempt 2, but the next delay would pass the timeout: this is the last attempt
    assert await clean_up(body, memo, retry=1, runtime=handlers.CLEANUP_TIMEOUT_SECONDS - 10) is None
    assert warnings(cluster, "CleanupAbandoned")


def test_kopf_itself_bounds_the_delete_handler() -> None:
    """kopf's own retries and timeout say the same (for errors the handler does not turn into a give-up)."""
    registry = kopf.get_default_registry()
    [handler] = [h for h in registry._changing.get_all_handlers() if h.id == "clean_up"]
    assert handler.retries == handlers.CLEANUP_ATTEMPTS and handler.timeout == handlers.CLEANUP_TIMEOUT_SECONDS


async def test_a_refused_key_is_permanent_with_a_warning(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    body = deleting(cluster, await reconciled(cluster, memo))
    elevenlabs.api_key = "xi-rotated-key"  # the Secret still has the old one: 401
    error = await clean_up(body, memo)
    assert isinstance(error, kopf.PermanentError) and "401" in str(error)
    [refused] = warnings(cluster, "CleanupRefused")
    assert "401" in refused and body["status"]["agentId"] in refused and "voice/elevenlabs" in refused
    assert FINALIZER not in finalizers(cluster)
    assert len([c for c in elevenlabs.management_calls() if c.method == "DELETE"]) == 1  # tried once, no more


@pytest.mark.parametrize("value", ["true", "True", "yes", "1"])
async def test_the_skip_annotation_deletes_without_calling_elevenlabs(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo, value: str) -> None:
    body = await reconciled(cluster, memo)
    body["metadata"]["annotations"] = {"glimpse.dev/skip-elevenlabs-cleanup": value}
    body = deleting(cluster, stored(cluster, body))
    elevenlabs.fail_with = 503  # down for good: it does not matter
    calls = len(elevenlabs.calls)
    assert await clean_up(body, memo) is None
    assert len(elevenlabs.calls) == calls
    [skipped] = [e for e in cluster.events("museum-guide") if e["reason"] == "CleanupSkipped"]
    assert skipped["type"] == "Normal" and body["status"]["agentId"] in skipped["message"]
    assert FINALIZER not in finalizers(cluster)


async def test_a_false_skip_annotation_still_cleans_up(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    body = await reconciled(cluster, memo)
    body["metadata"]["annotations"] = {"glimpse.dev/skip-elevenlabs-cleanup": "false"}
    body = deleting(cluster, stored(cluster, body))
    assert await clean_up(body, memo) is None
    assert body["status"]["agentId"] not in elevenlabs.agents and not elevenlabs.workspace_secrets
    assert "CleanedUp" in event_reasons(cluster, "Normal")


async def test_the_key_secret_is_kept_until_the_clean_up_has_used_it(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    """Namespace deletion (or kubectl delete secret) before the VoiceAgent is gone: the Secret waits."""
    body = await reconciled(cluster, memo)
    assert finalizers(cluster) == [FINALIZER]
    cluster.delete(KEY_SECRET)
    assert cluster.objects[KEY_SECRET]["metadata"]["deletionTimestamp"]  # Terminating, and still readable
    body = deleting(cluster, body)
    assert await clean_up(body, memo) is None
    assert body["status"]["agentId"] not in elevenlabs.agents and not elevenlabs.workspace_secrets
    assert KEY_SECRET not in cluster.objects  # the last finalizer gone: the Secret is deleted
    [done] = [e["message"] for e in cluster.events("museum-guide") if e["reason"] == "CleanedUp"]
    assert body["status"]["agentId"] in done and body["status"]["workspaceSecretId"] in done


async def test_two_voice_agents_sharing_a_key_secret_each_hold_it(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    first = await reconciled(cluster, memo)
    other = voice_agent()
    other["metadata"].update(name="lobby-guide", uid="9a1c6f2e-0b7d-4e0c-8f4e-3f1d2c5b6a70")
    other = await reconciled(cluster, memo, other)
    assert sorted(finalizers(cluster)) == ["voiceagent.glimpse.dev/lobby-guide", FINALIZER]
    cluster.delete(KEY_SECRET)
    assert await clean_up(deleting(cluster, first), memo) is None
    assert finalizers(cluster) == ["voiceagent.glimpse.dev/lobby-guide"]  # still there for the other
    assert await clean_up(deleting(cluster, other), memo) is None
    assert KEY_SECRET not in cluster.objects
    assert not elevenlabs.created_agents and not elevenlabs.workspace_secrets


async def test_a_key_secret_already_gone_is_reported_and_does_not_block(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    """Its finalizer removed by hand (or a Secret from before the operator protected it): nothing can be deleted in
    ElevenLabs, and the Warning says what is left."""
    body = await reconciled(cluster, memo)
    secret = copy.deepcopy(cluster.objects[KEY_SECRET])
    secret["metadata"].pop("finalizers")
    cluster.put(KEY_SECRET, secret)
    cluster.delete(KEY_SECRET)
    assert KEY_SECRET not in cluster.objects
    body = deleting(cluster, body)
    assert await clean_up(body, memo) is None
    [skipped] = warnings(cluster, "CleanupSkipped")
    assert "voice/elevenlabs does not exist" in skipped
    assert body["status"]["agentId"] in skipped and body["status"]["workspaceSecretId"] in skipped


async def test_an_agent_created_but_never_recorded_is_deleted_too(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    """The operator died after creating the agent, and the VoiceAgent is deleted before it reconciled again."""
    body = stored(cluster, voice_agent())
    status = voice_agent_path(body) + "/status"
    cluster.fail_next("PATCH", status, 503, after=1)  # the agent's id is never recorded
    await run_reconcile(body, new_memo(cluster, elevenlabs))
    assert len(elevenlabs.created_agents) == 1 and "agentId" not in current(cluster, body).get("status", {})
    body = deleting(cluster, body)
    assert await clean_up(body, memo) is None
    assert not elevenlabs.created_agents and not elevenlabs.workspace_secrets


async def test_naming_another_key_secret_releases_the_previous_one(
        cluster: FakeKubernetes, elevenlabs: FakeElevenLabs, memo: kopf.Memo) -> None:
    body = await reconciled(cluster, memo)
    rotated = "/api/v1/namespaces/voice/secrets/elevenlabs-rotated"
    cluster.put(rotated, {**copy.deepcopy(cluster.objects[KEY_SECRET]),
                          "metadata": {"name": "elevenlabs-rotated", "namespace": "voice"}})
    old = copy.deepcopy(body)
    body["spec"]["elevenlabs"]["apiKeySecretRef"]["name"] = "elevenlabs-rotated"
    body = stored(cluster, body)
    _, error = await run_reconcile(body, memo, cluster, old=old)
    assert error is None
    assert finalizers(cluster, rotated) == [FINALIZER] and finalizers(cluster) == []
