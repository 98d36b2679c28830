"""The look-ups that find what an earlier reconcile made: the operator's `ElevenLabsClient` against the fake ElevenLabs,
whose list endpoints answer in ElevenLabs' own shapes (elevenlabs-python's generated types), page by page."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator

from glimpse_operator.elevenlabs_api import ElevenLabsClient, ElevenLabsError
from tests.fakes.elevenlabs_api import AGENTS_PAGE, API_KEY, SECRETS_PAGE, FakeElevenLabs

AGENT = {"name": "Guide", "conversation_config": {"agent": {"prompt": {"prompt": "Hi."}}}}


def client(elevenlabs: FakeElevenLabs) -> ElevenLabsClient:
    return ElevenLabsClient(API_KEY, elevenlabs.base_url)


async def make_agents(elevenlabs: FakeElevenLabs, count: int, tags: list[str]) -> list[str]:
    api = client(elevenlabs)
    return [await asyncio.to_thread(api.create_agent, {**AGENT, "tags": tags}) for _ in range(count)]


def get(elevenlabs: FakeElevenLabs, path: str, **params: Any) -> requests.Response:
    return requests.get(elevenlabs.base_url + path, params=params, headers={"xi-api-key": API_KEY}, timeout=5)


async def test_agents_are_found_by_tag_across_pages(elevenlabs: FakeElevenLabs) -> None:
    ours = await make_agents(elevenlabs, 2, ["glimpse", "glimpse-uid-1"])
    await make_agents(elevenlabs, 150, ["glimpse", "glimpse-uid-2"])  # more than a page of others, made later
    found = await asyncio.to_thread(client(elevenlabs).find_agents, "glimpse-uid-1")
    assert sorted(a["agent_id"] for a in found) == sorted(ours)
    assert found == sorted(found, key=lambda a: (a["created_at_unix_secs"], a["agent_id"]))  # oldest first, stable
    pages = [c for c in elevenlabs.calls if c.path == "/v1/convai/agents"]
    assert len(pages) == 2 and all(c.query["page_size"] == "100" for c in pages)
    assert "cursor" not in pages[0].query and pages[1].query["cursor"]


async def test_the_agents_page_has_elevenlabs_shape_and_limits(elevenlabs: FakeElevenLabs) -> None:
    await make_agents(elevenlabs, 3, ["glimpse"])
    page = await asyncio.to_thread(get, elevenlabs, "/v1/convai/agents", page_size=2)
    assert page.status_code == 200
    Draft202012Validator(AGENTS_PAGE).validate(page.json())
    assert page.json()["has_more"] is True and len(page.json()["agents"]) == 2
    rest = (await asyncio.to_thread(get, elevenlabs, "/v1/convai/agents", page_size=2,
                                    cursor=page.json()["next_cursor"])).json()
    assert rest["has_more"] is False and rest["next_cursor"] is None
    listed = {a["agent_id"] for a in page.json()["agents"] + rest["agents"]}
    assert listed == elevenlabs.agents  # every agent once (the one made elsewhere too)
    for params, loc in [({"page_size": 101}, "page_size"), ({"page_size": 0}, "page_size"),
                        ({"sort_by": "tags"}, "sort_by"), ({"archived": "maybe"}, "archived"),
                        ({"cursor": "not-a-cursor"}, "cursor")]:
        refused = await asyncio.to_thread(get, elevenlabs, "/v1/convai/agents", **params)
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["query", loc]
    archived = await asyncio.to_thread(get, elevenlabs, "/v1/convai/agents", archived="true")
    assert archived.json()["agents"] == []


async def test_workspace_secrets_are_found_by_exact_name_with_their_users(elevenlabs: FakeElevenLabs) -> None:
    api = client(elevenlabs)
    mine = await asyncio.to_thread(api.create_secret, "glimpse-voice-guide-llm-key", "k1")
    await asyncio.to_thread(api.create_secret, "glimpse-voice-guide-llm-key-old", "k2")  # same prefix, other name
    agent_body = {**AGENT, "conversation_config": {"agent": {"prompt": {
        "prompt": "Hi.", "llm": "custom-llm",
        "custom_llm": {"url": "https://x.example/v1", "model_id": "m", "api_key": {"secret_id": mine}}}}}}
    agent = await asyncio.to_thread(api.create_agent, agent_body)
    found = await asyncio.to_thread(api.find_secrets, "glimpse-voice-guide-llm-key")
    assert [s["secret_id"] for s in found] == [mine]
    assert [a["id"] for a in found[0]["used_by"]["agents"]] == [agent]
    page = await asyncio.to_thread(get, elevenlabs, "/v1/convai/secrets", search="glimpse-voice-guide")
    Draft202012Validator(SECRETS_PAGE).validate(page.json())
    assert len(page.json()["secrets"]) == 2 and page.json()["next_cursor"] is None

    await asyncio.to_thread(api.update_secret, mine, "glimpse-voice-guide-llm-key", "k3")
    assert elevenlabs.secret_value(mine) == "k3"
    [patch] = [c for c in elevenlabs.calls if c.method == "PATCH"]
    assert patch.body == {"type": "update", "name": "glimpse-voice-guide-llm-key", "value": "k3"}
    with pytest.raises(ElevenLabsError) as missing:
        await asyncio.to_thread(api.update_secret, "sec_nope", "x", "y")
    assert missing.value.status == 404


async def test_a_refused_key_is_marked_refused(elevenlabs: FakeElevenLabs) -> None:
    with pytest.raises(ElevenLabsError) as refused:
        await asyncio.to_thread(ElevenLabsClient("xi-wrong", elevenlabs.base_url).find_agents, "glimpse-uid-1")
    assert refused.value.status == 401 and refused.value.refused
    elevenlabs.fail_with = 503
    with pytest.raises(ElevenLabsError) as down:
        await asyncio.to_thread(client(elevenlabs).find_secrets, "x")
    assert down.value.status == 503 and not down.value.refused
