"""`glimpse_operator.cluster` (the one place that talks to the Kubernetes API) against the fake API server, and the
fake's own rules that kopf and the operator rely on."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from kubernetes import client as k8s

from glimpse_operator.cluster import Cluster, ClusterError
from tests.fakes.kubernetes_api import FakeKubernetes
from tests.operator.support import KEY_SECRET, stored, voice_agent, voice_agent_path

MERGE = "application/merge-patch+json"
RENAME = {"spec": {"agent": {"name": "X"}}}


@pytest.fixture
def api(cluster: FakeKubernetes) -> Cluster:
    configuration = k8s.Configuration(host=cluster.base_url)
    configuration.api_key = {"BearerToken": "Bearer test-token"}
    return Cluster(k8s.ApiClient(configuration))


async def test_finalizers_survive_concurrent_writers(cluster: FakeKubernetes, api: Cluster) -> None:
    """Each change is a merge patch guarded by the resourceVersion it was computed from: a stale one is a 409, and
    the list is read and computed again, so no writer loses another's finalizer."""
    names = [f"voiceagent.glimpse.dev/agent-{i}" for i in range(8)]
    await asyncio.gather(*(asyncio.to_thread(api.add_finalizer, "v1", "Secret", "voice", "elevenlabs", name)
                           for name in names))
    assert sorted(cluster.objects[KEY_SECRET]["metadata"]["finalizers"]) == sorted(names)
    assert any(r.method == "PATCH" for r in cluster.requests)
    await asyncio.gather(*(asyncio.to_thread(api.remove_finalizer, "v1", "Secret", "voice", "elevenlabs", name)
                           for name in names[:4]))
    assert sorted(cluster.objects[KEY_SECRET]["metadata"]["finalizers"]) == sorted(names[4:])


async def test_a_stale_resource_version_is_a_conflict(cluster: FakeKubernetes, api: Cluster) -> None:
    stale = cluster.objects[KEY_SECRET]["metadata"]["resourceVersion"]
    await asyncio.to_thread(api.add_finalizer, "v1", "Secret", "voice", "elevenlabs", "example.com/a")
    with pytest.raises(ClusterError) as conflict:
        await asyncio.to_thread(api._request, "PATCH", KEY_SECRET, content_type=MERGE,
                                body={"metadata": {"resourceVersion": stale, "finalizers": None}})
    assert conflict.value.status == 409 and "has been modified" in conflict.value.message
    assert cluster.objects[KEY_SECRET]["metadata"]["finalizers"] == ["example.com/a"]
    cluster.fail_next("PATCH", KEY_SECRET, 409, "the object has been modified")  # someone else was quicker
    assert await asyncio.to_thread(api.add_finalizer, "v1", "Secret", "voice", "elevenlabs", "example.com/b")
    assert cluster.objects[KEY_SECRET]["metadata"]["finalizers"] == ["example.com/a", "example.com/b"]


async def test_no_finalizer_is_added_to_an_object_being_deleted(cluster: FakeKubernetes, api: Cluster) -> None:
    await asyncio.to_thread(api.add_finalizer, "v1", "Secret", "voice", "elevenlabs", "example.com/a")
    cluster.delete(KEY_SECRET)
    assert not await asyncio.to_thread(api.add_finalizer, "v1", "Secret", "voice", "elevenlabs", "example.com/b")
    rv = cluster.objects[KEY_SECRET]["metadata"]["resourceVersion"]
    with pytest.raises(ClusterError) as refused:  # what the API server says when asked anyway
        await asyncio.to_thread(api._request, "PATCH", KEY_SECRET, content_type=MERGE, body={
            "metadata": {"resourceVersion": rv, "finalizers": ["example.com/a", "example.com/b"]}})
    assert refused.value.status == 422 and "no new finalizers" in refused.value.message
    assert await asyncio.to_thread(api.remove_finalizer, "v1", "Secret", "voice", "elevenlabs", "example.com/a")
    assert KEY_SECRET not in cluster.objects  # the last finalizer gone: deleted


async def test_events_never_fail_a_handler(cluster: FakeKubernetes, api: Cluster) -> None:
    body = stored(cluster, voice_agent())
    cluster.fail_next("POST", "/api/v1/namespaces/voice/events", 403, 'events is forbidden: User "x" cannot create')
    await asyncio.to_thread(api.post_event, body, "Normal", "Lost", "not posted")
    await asyncio.to_thread(api.post_event, body, "Warning", "Kept", "x" * 2000)
    [event] = cluster.events("museum-guide")
    assert event["reason"] == "Kept" and len(event["message"]) == 1024 and event["count"] == 1


async def test_an_unreachable_api_server_is_a_cluster_error(api: Cluster) -> None:
    api.api.configuration.host = "http://127.0.0.1:9"
    with pytest.raises(ClusterError) as unreachable:
        await asyncio.to_thread(api.get_voice_agent, "voice", "museum-guide")
    assert unreachable.value.status == 0 and "unreachable" in unreachable.value.message


async def test_the_fake_keeps_status_generation_and_watches_as_kubernetes_does(
        cluster: FakeKubernetes, api: Cluster) -> None:
    body = stored(cluster, voice_agent())
    path = voice_agent_path(body)
    async with aiohttp.ClientSession(cluster.base_url) as http:
        listed = await (await http.get("/apis/glimpse.dev/v1alpha1/namespaces/voice/voiceagents")).json()
        since = listed["metadata"]["resourceVersion"]
        assert [o["metadata"]["name"] for o in listed["items"]] == ["museum-guide"]
        # status only through /status; generation counts spec changes only
        await asyncio.to_thread(api.patch_status, "voice", "museum-guide", {"agentId": "agent_1"})
        await asyncio.to_thread(api._request, "PATCH", path, content_type=MERGE,
                                body={"status": {"agentId": "ignored"}, "metadata": {"labels": {"a": "b"}}})
        obj = cluster.objects[path]
        assert obj["status"] == {"agentId": "agent_1"} and obj["metadata"]["generation"] == 1
        await asyncio.to_thread(api._request, "PATCH", path, content_type=MERGE, body=RENAME)
        assert cluster.objects[path]["metadata"]["generation"] == 2
        # a write that changes nothing is no write
        rv = cluster.objects[path]["metadata"]["resourceVersion"]
        await asyncio.to_thread(api._request, "PATCH", path, content_type=MERGE, body=RENAME)
        assert cluster.objects[path]["metadata"]["resourceVersion"] == rv
        # a watch from the list's resourceVersion sees every change since, in order, then stops at its timeout
        watch = await http.get("/apis/glimpse.dev/v1alpha1/namespaces/voice/voiceagents",
                               params={"watch": "true", "resourceVersion": since, "timeoutSeconds": "1"})
        events = [json.loads(line) for line in (await watch.read()).splitlines()]
        assert [e["type"] for e in events] == ["MODIFIED"] * 3
        assert [e["object"]["metadata"]["resourceVersion"] for e in events] == sorted(
            (e["object"]["metadata"]["resourceVersion"] for e in events), key=int)
        # apply needs a field manager; JSON patch test failures are 422
        applied = await http.patch(path, json=body, headers={"Content-Type": "application/apply-patch+yaml"})
        assert applied.status == 400
        failed = await http.patch(path, headers={"Content-Type": "application/json-patch+json"}, json=[
            {"op": "test", "path": "/metadata/resourceVersion", "value": since}, {"op": "remove", "path": "/spec"}])
        assert failed.status == 422 and "spec" in cluster.objects[path]
