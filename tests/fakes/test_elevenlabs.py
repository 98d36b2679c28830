"""The fake ElevenLabs is as strict as ElevenLabs: agent bodies checked against its schema, signed URLs only for
agents it knows, overrides only where the agent permits them, the custom LLM called on the path its `api_type`
names with the system tools the agent enables, a streamed `end_call` ending the conversation, a failed call
retried, typed input (`user_message`, `contextual_update`, `user_activity`) handled as ElevenLabs handles it and a
malformed one refused. Conversations here are driven by a plain WebSocket client that speaks like
`@elevenlabs/client`."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from glimpse_operator.elevenlabs_api import ElevenLabsClient, ElevenLabsError
from glimpse_operator.render import desired_agent
from glimpse_operator.spec import with_defaults
from tests.conftest import StartProxy
from tests.fakes.elevenlabs_api import API_KEY, FakeElevenLabs
from tests.fakes.elevenlabs_conversation import LLM_ATTEMPTS, Conversation, FakeConversations
from tests.fakes.loopback import serve_app
from tests.fakes.openai_upstream import DEFAULT_WORDS, Behaviour, FakeOpenAI
from tests.fakes.vendor_spec import known_fields, validator
from tests.helpers import image_parts, new_session, upload
from tests.operator.support import voice_agent

LLM_KEY = "custom-llm-key-fakes-0123456789"
PROMPT = "You are a museum guide."
WORDS = ["A ", "red ", "bicycle", "."]
ELEVENLABS_FIELDS = {"user_id", "elevenlabs_extra_body"}  # what ElevenLabs adds to OpenAI's request body
END_CALL_TOOL = {"type": "system", "name": "end_call", "description": "",
                 "params": {"system_tool_type": "end_call"}}  # SystemToolConfig-Input, as the vendor schema wants
SDK_SOURCE = {"source": "js_sdk", "version": "1.25.0"}  # what @elevenlabs/client adds to the initiation


# A custom LLM that answers as a script says, in whichever API the path names, and records every request.
@dataclass
class Reply:
    status: int = 200
    words: list[str] = field(default_factory=lambda: list(WORDS))
    tool_call: dict[str, str] | None = None  # {"name", "arguments"}
    delay: float = 0.0  # seconds before the answer starts


@dataclass
class ScriptedLlm:
    script: deque[Reply] = field(default_factory=deque)
    requests: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    runner: web.AppRunner | None = None
    base_url: str = ""

    async def start(self) -> ScriptedLlm:
        app = web.Application()
        app.router.add_post("/v1/{api:chat/completions|responses}", self._answer)
        self.runner, port = await serve_app(app)
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.headers), await request.json()))
        reply = self.script.popleft() if self.script else Reply()
        await asyncio.sleep(reply.delay)
        if reply.status != 200:
            return web.json_response({"error": {"message": "boom", "type": "server_error", "param": None,
                                                "code": None}}, status=reply.status)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        events = _responses_events(reply) if request.path.endswith("/responses") else _chat_events(reply)
        for event in events:
            await response.write(event.encode())
        await response.write_eof()
        return response


def _chat_events(reply: Reply) -> list[str]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return "data: " + json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                                      "model": "m", "choices": [{"index": 0, "delta": delta,
                                                                 "finish_reason": finish}]}) + "\n\n"
    if reply.tool_call:
        body = [chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                       "function": {"name": reply.tool_call["name"], "arguments": ""}}]}),
                chunk({"tool_calls": [{"index": 0, "function": {"arguments": reply.tool_call["arguments"]}}]}),
                chunk({}, "tool_calls")]
    else:
        body = [chunk({"content": word}) for word in reply.words] + [chunk({}, "stop")]
    return [chunk({"role": "assistant", "content": ""}), *body, "data: [DONE]\n\n"]


def _responses_events(reply: Reply) -> list[str]:
    def event(kind: str, **data: Any) -> str:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"
    if reply.tool_call:
        item = {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": reply.tool_call["name"],
                "arguments": ""}
        body = [event("response.output_item.added", output_index=0, item=item),
                event("response.function_call_arguments.delta", item_id="fc_1", output_index=0,
                      delta=reply.tool_call["arguments"]),
                event("response.output_item.done", output_index=0,
                      item={**item, "arguments": reply.tool_call["arguments"]})]
    else:
        body = [event("response.output_text.delta", item_id="msg_1", output_index=0, content_index=0, delta=word)
                for word in reply.words]
    return [event("response.created", response={"id": "resp_1"}), *body,
            event("response.completed", response={"id": "resp_1"})]


class Client:
    """A conversation as `@elevenlabs/client` holds one: the initiation, pongs, a microphone that streams."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.events: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.close_reason = ""
        self._arrived = asyncio.Condition()
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._microphone())]

    @classmethod
    async def start(cls, http: aiohttp.ClientSession, signed_url: str, **initiation: Any) -> Client:
        socket = await http.ws_connect(f"{signed_url}&source={SDK_SOURCE['source']}&version={SDK_SOURCE['version']}",
                                       protocols=("convai",))
        await socket.send_json({"type": "conversation_initiation_client_data", **initiation,
                                "source_info": SDK_SOURCE})
        return cls(socket)

    async def _read(self) -> None:
        while True:
            message = await self.socket.receive()
            if message.type == aiohttp.WSMsgType.TEXT:
                event = json.loads(message.data)
                if event.get("type") == "ping":
                    await self.socket.send_json({"type": "pong", "event_id": event["ping_event"]["event_id"]})
                async with self._arrived:
                    self.events.append(event)
                    self._arrived.notify_all()
                continue
            if message.type == aiohttp.WSMsgType.CLOSE:
                self.close_code, self.close_reason = message.data, message.extra or ""
            break
        async with self._arrived:
            self._arrived.notify_all()

    async def _microphone(self) -> None:
        chunk = base64.b64encode(bytes(640)).decode()  # 20 ms of 16 kHz silence
        while not self.socket.closed:
            try:
                await self.socket.send_json({"user_audio_chunk": chunk})
            except (ConnectionError, RuntimeError):
                return
            await asyncio.sleep(0.02)

    async def event(self, kind: str, said: str | None = None, timeout: float = 5) -> dict[str, Any]:
        """The first event of that kind (an `agent_response` saying `said`, if given), once it has arrived."""
        async def found() -> dict[str, Any]:
            async with self._arrived:
                while True:
                    for event in self.events:
                        if event["type"] == kind and (said is None or event[f"{kind}_event"][kind] == said):
                            return event
                    if self._tasks[0].done():
                        raise AssertionError(f"closed ({self.close_code} {self.close_reason!r}) before {kind}: "
                                             f"{[e['type'] for e in self.events]}")
                    await self._arrived.wait()
        return await asyncio.wait_for(found(), timeout)

    async def ended(self, timeout: float = 5) -> tuple[int | None, str]:
        await asyncio.wait_for(asyncio.shield(self._tasks[0]), timeout)
        return self.close_code, self.close_reason

    def types(self) -> list[str]:
        return [event["type"] for event in self.events]

    async def close(self) -> None:
        await self.socket.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.fixture
async def fake() -> AsyncIterator[FakeElevenLabs]:
    server = await FakeElevenLabs(conversations=FakeConversations(speech_seconds=0.05)).start()
    yield server
    await server.stop()


@pytest.fixture
async def llm() -> AsyncIterator[ScriptedLlm]:
    server = await ScriptedLlm().start()
    yield server
    if server.runner:
        await server.runner.cleanup()


@pytest.fixture
async def clients() -> AsyncIterator[list[Client]]:
    opened: list[Client] = []
    yield opened
    for client in opened:
        await client.close()


async def api(http: aiohttp.ClientSession, fake: FakeElevenLabs, method: str, path: str,
              body: dict[str, Any] | None = None) -> tuple[int, Any]:
    async with http.request(method, fake.base_url + path, json=body, headers={"xi-api-key": API_KEY}) as response:
        return response.status, await response.json(content_type=None)


async def new_agent(http: aiohttp.ClientSession, fake: FakeElevenLabs, url: str, *, api_type: str | None = None,
                    permit_extra_body: bool = True, end_call: bool = False, client_events: list[str] | None = None,
                    key: str = LLM_KEY) -> str:
    """An agent created through the fake's API, with its custom-LLM key in a workspace secret."""
    status, secret = await api(http, fake, "POST", "/v1/convai/secrets", {"type": "new", "name": "k", "value": key})
    assert status == 200, secret
    custom_llm: dict[str, Any] = {"url": url, "model_id": "gpt-4o-mini", "api_key": {"secret_id": secret["secret_id"]}}
    if api_type:
        custom_llm["api_type"] = api_type
    prompt: dict[str, Any] = {"prompt": PROMPT, "llm": "custom-llm", "custom_llm": custom_llm}
    if end_call:
        prompt["built_in_tools"] = {"end_call": END_CALL_TOOL}
    config: dict[str, Any] = {"agent": {"first_message": "Hello!", "prompt": prompt}}
    if client_events:
        config["conversation"] = {"client_events": client_events}
    body: dict[str, Any] = {"name": "test", "conversation_config": config}
    if permit_extra_body:
        body["platform_settings"] = {"overrides": {"custom_llm_extra_body": True}}
    status, created = await api(http, fake, "POST", "/v1/convai/agents/create", body)
    assert status == 200, created
    return str(created["agent_id"])


async def signed_url(http: aiohttp.ClientSession, fake: FakeElevenLabs, agent_id: str) -> str:
    status, body = await api(http, fake, "GET", f"/v1/convai/conversation/get-signed-url?agent_id={agent_id}")
    assert status == 200, body
    return str(body["signed_url"])


async def converse(http: aiohttp.ClientSession, fake: FakeElevenLabs, clients: list[Client], agent_id: str,
                   **initiation: Any) -> Client:
    client = await Client.start(http, await signed_url(http, fake, agent_id), **initiation)
    clients.append(client)
    return client


async def say(http: aiohttp.ClientSession, fake: FakeElevenLabs, text: str) -> dict[str, Any]:
    async with http.post(fake.base_url + "/_fake/turn", json={"text": text}) as response:
        body = await response.json()
        assert response.status == 200, body
        return dict(body)


def openai_fields_only(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in ELEVENLABS_FIELDS}


# --- the REST API ---------------------------------------------------------------------------------------------

async def test_agent_bodies_are_checked_against_elevenlabs_schema(fake: FakeElevenLabs,
                                                                  http: aiohttp.ClientSession) -> None:
    status, body = await api(http, fake, "POST", "/v1/convai/agents/create", {"name": "no config"})
    assert status == 422
    assert body == {"detail": [{"type": "missing", "loc": ["body", "conversation_config"], "msg": "Field required",
                                "input": {"name": "no config"}}]}
    wrong_type = {"conversation_config": {"agent": {"prompt": {"llm": "custom-llm", "custom_llm": {
        "url": "https://voice.example.com/v1", "api_type": "completions"}}}}}
    status, body = await api(http, fake, "POST", "/v1/convai/agents/create", wrong_type)
    assert status == 422
    [problem] = body["detail"]
    assert problem["loc"] == ["body", "conversation_config", "agent", "prompt", "custom_llm", "api_type"]
    assert problem["type"] == "literal_error" and "'chat_completions' or 'responses'" in problem["msg"]
    assert fake.created_agents == {}

    # The operator's own agent body is accepted; a bad update to it is refused and changes nothing.
    spec = with_defaults(voice_agent()["spec"])
    client = ElevenLabsClient(API_KEY, fake.base_url)
    agent_id = await asyncio.to_thread(client.create_agent, desired_agent(spec, "sec_test"))
    stored = json.loads(json.dumps(fake.created_agents[agent_id]))
    for bad in ({"tags": "glimpse"}, {"platform_settings": {"overrides": {"custom_llm_extra_body": "yes"}}},
                {"conversation_config": {"agent": {"prompt": {"custom_llm": {"url": None}}}}}):
        with pytest.raises(ElevenLabsError) as refused:
            await asyncio.to_thread(client.update_agent, agent_id, bad)
        assert refused.value.status == 422, bad
    assert fake.created_agents[agent_id] == stored
    # An update merges into the agent (objects key by key).
    await asyncio.to_thread(client.update_agent, agent_id, {"conversation_config": {"agent": {"first_message": "Hi"}}})
    agent = fake.created_agents[agent_id]["conversation_config"]["agent"]
    assert agent["first_message"] == "Hi" and agent["prompt"] == stored["conversation_config"]["agent"]["prompt"]
    status, body = await api(http, fake, "POST", "/v1/convai/secrets", {"type": "old", "name": "k"})
    assert status == 422 and {tuple(d["loc"]) for d in body["detail"]} == {("body", "type"), ("body", "value")}


async def test_signed_urls_only_for_known_agents_each_naming_its_agent(
        fake: FakeElevenLabs, llm: ScriptedLlm, http: aiohttp.ClientSession, clients: list[Client]) -> None:
    status, body = await api(http, fake, "GET", "/v1/convai/conversation/get-signed-url?agent_id=agent_nobody")
    assert status == 404 and body["detail"]["status"] == "agent_not_found"
    status, body = await api(http, fake, "GET", "/v1/convai/conversation/get-signed-url")
    assert status == 422 and body["detail"][0]["loc"] == ["query", "agent_id"]
    first, second = [await new_agent(http, fake, llm.base_url) for _ in range(2)]
    for path in ("get-signed-url", "get_signed_url"):  # the current path, and the deprecated one still served
        status, body = await api(http, fake, "GET", f"/v1/convai/conversation/{path}?agent_id={first}")
        assert status == 200 and f"agent_id={first}&conversation_signature=" in body["signed_url"]
    # A signature is bound to its agent: it does not open a conversation with another one.
    stolen = (await signed_url(http, fake, first)).replace(first, second)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(stolen, protocols=("convai",))
    assert refused.value.status == 403
    client = await converse(http, fake, clients, second, custom_llm_extra_body={"session_id": "s-1"})
    await client.event("conversation_initiation_metadata")
    assert fake.conversations and fake.conversations.conversations[-1].agent_id == second


# --- overrides ------------------------------------------------------------------------------------------------

async def test_extra_body_is_refused_unless_the_agent_permits_it(
        fake: FakeElevenLabs, llm: ScriptedLlm, http: aiohttp.ClientSession, clients: list[Client]) -> None:
    agent_id = await new_agent(http, fake, llm.base_url, permit_extra_body=False)
    client = await converse(http, fake, clients, agent_id, custom_llm_extra_body={"session_id": "s-1"})
    reason = "Override for field 'custom_llm_extra_body' is not allowed by config."
    assert await client.ended() == (1008, reason)
    assert client.events == [{"type": "error", "error_event": {"code": 1008, "error_type": "override_error",
                                                                "message": reason, "reason": reason}}]
    async with http.post(fake.base_url + "/_fake/turn", json={"text": "Hello?"}) as response:
        assert response.status == 409  # no conversation to hear
    assert llm.requests == []  # the custom LLM was never called
    # The same agent takes a conversation that overrides nothing (the SDK's empty override objects included).
    client = await converse(http, fake, clients, agent_id, conversation_config_override={"agent": {}, "tts": {}})
    await client.event("conversation_initiation_metadata")


async def test_the_operators_agent_permits_what_the_page_sends(
        fake: FakeElevenLabs, llm: ScriptedLlm, http: aiohttp.ClientSession, clients: list[Client]) -> None:
    spec = with_defaults(voice_agent(ingress__host="voice.glimpse.test")["spec"])
    client_api = ElevenLabsClient(API_KEY, fake.base_url)
    secret_id = await asyncio.to_thread(client_api.create_secret, "glimpse-voice-museum-guide-llm-key", LLM_KEY)
    agent_id = await asyncio.to_thread(client_api.create_agent, desired_agent(spec, secret_id))
    assert fake.conversations is not None
    fake.conversations.ingress["voice.glimpse.test"] = llm.base_url.removesuffix("/v1")
    # What the page's startSession({customLlmExtraBody: {session_id}}) sends (@elevenlabs/client overrides.ts).
    client = await converse(http, fake, clients, agent_id, custom_llm_extra_body={"session_id": "page-session"})
    await client.event("conversation_initiation_metadata")
    await say(http, fake, "What is this?")
    await client.event("agent_response", said="".join(WORDS))
    [(path, headers, body)] = llm.requests
    assert path == "/v1/chat/completions" and headers["Authorization"] == f"Bearer {LLM_KEY}"
    assert body["elevenlabs_extra_body"] == {"session_id": "page-session"}


async def test_any_override_the_agent_does_not_permit_is_refused(
        fake: FakeElevenLabs, llm: ScriptedLlm, http: aiohttp.ClientSession, clients: list[Client]) -> None:
    agent_id = await new_agent(http, fake, llm.base_url)
    client = await converse(http, fake, clients, agent_id,
                            conversation_config_override={"agent": {"first_message": "Yo"}, "tts": {}})
    assert await client.ended() == (1008, "Override for field 'first_message' is not allowed by config.")
    status, _ = await api(http, fake, "PATCH", f"/v1/convai/agents/{agent_id}", {"platform_settings": {
        "overrides": {"conversation_config_override": {"agent": {"first_message": True}}}}})
    assert status == 200
    client = await converse(http, fake, clients, agent_id,
                            conversation_config_override={"agent": {"first_message": "Yo"}})
    await client.event("agent_response", said="Yo")  # permitted, so applied


# --- the custom LLM call --------------------------------------------------------------------------------------

@pytest.mark.parametrize("api_type", [None, "chat_completions", "responses"])
async def test_custom_llm_is_called_where_its_api_type_says(
        fake: FakeElevenLabs, llm: ScriptedLlm, http: aiohttp.ClientSession, clients: list[Client],
        api_type: str | None) -> None:
    agent_id = await new_agent(http, fake, llm.base_url, api_type=api_type, end_call=True)
    client = await converse(http, fake, clients, agent_id, custom_llm_extra_body={"session_id": "s-1"})
    await client.event("agent_response", said="Hello!")  # the first message
    await say(http, fake, "What is this?")
    await client.event("agent_response", said="".join(WORDS))  # the answer, parsed from the API's own stream
    [(path, headers, body)] = llm.requests
    assert headers["Authorization"] == f"Bearer {LLM_KEY}"  # resolved from the agent's workspace secret
    assert body["elevenlabs_extra_body"] == {"session_id": "s-1"} and body["stream"] is True
    assert body["model"] == "gpt-4o-mini"
    if api_type == "responses":
        assert path == "/v1/responses"
        assert body["input"] == [{"role": "system", "content": PROMPT}, {"role": "assistant", "content": "Hello!"},
                                 {"role": "user", "content": "What is this?"}]
        [tool] = body["tools"]
        assert tool["type"] == "function" and tool["name"] == "end_call" and tool["parameters"]["required"] == [
            "reason"]
        definition = "CreateResponse"
    else:
        assert path == "/v1/chat/completions"
        assert body["messages"][0] == {"role": "system", "content": PROMPT}
        assert body["messages"][-1] == {"role": "user", "content": "What is this?"}
        [tool] = body["tools"]
        assert tool["type"] == "function" and tool["function"]["name"] == "end_call"
        definition = "CreateChatCompletionRequest"
    # Apart from ElevenLabs' own fields, a request OpenAI itself would take.
    assert set(openai_fields_only(body)) <= known_fields("openai", definition)
    assert list(validator("openai", definition).iter_errors(openai_fields_only(body))) == []


async def test_system_tools_are_only_those_the_agent_enables(
        fake: FakeElevenLabs, llm: ScriptedLlm, http: aiohttp.ClientSession, clients: list[Client]) -> None:
    # "For agents created via API or SDK ... you must add it manually" (the end_call tool docs).
    agent_id = await new_agent(http, fake, llm.base_url)
    await converse(http, fake, clients, agent_id)
    await say(http, fake, "Goodbye!")
    [(_, _, body)] = llm.requests
    assert "tools" not in body


@pytest.mark.parametrize("api_type", ["chat_completions", "responses"])
async def test_a_streamed_end_call_ends_the_conversation(
        fake: FakeElevenLabs, upstream: FakeOpenAI, start_proxy: StartProxy, http: aiohttp.ClientSession,
        clients: list[Client], api_type: str) -> None:
    """Through the real proxy: the fake offers end_call, the proxy forwards it, the upstream LLM calls it."""
    proxy = await start_proxy(custom_llm_key=LLM_KEY)
    events = ["conversation_initiation_metadata", "ping", "audio", "agent_response", "user_transcript",
              "agent_tool_response"]
    agent_id = await new_agent(http, fake, proxy.v1, api_type=api_type, end_call=True, client_events=events)
    arguments = json.dumps({"reason": "the user said goodbye", "message": "Goodbye!"})
    upstream.next.append(Behaviour(tool_call={"name": "end_call", "arguments": arguments}))
    client = await converse(http, fake, clients, agent_id, custom_llm_extra_body={"session_id": "s-end"})
    await client.event("conversation_initiation_metadata")
    turn = await say(http, fake, "That's all, thanks. Bye!")
    assert turn["close_code"] == 1000
    assert await client.ended() == (1000, "")
    # The tool went out to the LLM in the API's own format, and its call came back through the proxy.
    [sent] = upstream.response_requests if api_type == "responses" else upstream.chat_requests
    names = [tool.get("name") or tool["function"]["name"] for tool in sent.body["tools"]]
    assert names == ["end_call"]
    farewell = [e["agent_response_event"]["agent_response"] for e in client.events if e["type"] == "agent_response"]
    assert farewell[-1] == "Goodbye!"
    [tool_event] = [e for e in client.events if e["type"] == "agent_tool_response"]
    assert tool_event["agent_tool_response"]["tool_name"] == "end_call"
    assert tool_event["agent_tool_response"]["tool_type"] == "system"
    assert client.types()[-2:] == ["audio", "agent_tool_response"]  # the farewell spoken, then the end
    conversation = fake.conversations.conversations[-1] if fake.conversations else None
    assert conversation and conversation.turns[-1].tool_calls[0]["name"] == "end_call"


# --- retries --------------------------------------------------------------------------------------------------

async def test_a_failed_call_is_retried_once_on_the_same_url_and_the_turn_answered(
        fake: FakeElevenLabs, llm: ScriptedLlm, http: aiohttp.ClientSession, clients: list[Client]) -> None:
    agent_id = await new_agent(http, fake, llm.base_url)
    llm.script.extend([Reply(status=500), Reply()])
    client = await converse(http, fake, clients, agent_id, custom_llm_extra_body={"session_id": "s-retry"})
    await client.event("conversation_initiation_metadata")
    turn = await say(http, fake, "What is this?")
    assert turn["llm_attempts"] == 2 and turn["llm_status"] == 200 and turn["agent_response"] == "".join(WORDS)
    first, second = llm.requests
    assert first == second  # the same path, headers and body
    responses = [e["agent_response_event"]["agent_response"] for e in client.events if e["type"] == "agent_response"]
    assert responses == ["Hello!", "".join(WORDS)]
    assert client.close_code is None


async def test_a_retried_turn_through_the_proxy_reaches_the_llm_with_the_same_pictures(
        fake: FakeElevenLabs, upstream: FakeOpenAI, start_proxy: StartProxy, http: aiohttp.ClientSession,
        clients: list[Client]) -> None:
    proxy = await start_proxy(custom_llm_key=LLM_KEY)
    session = await new_session(http, proxy.url)
    assert (await upload(http, proxy.url, session)).status == 201
    agent_id = await new_agent(http, fake, proxy.v1)
    upstream.next.append(Behaviour(status=500))
    await converse(http, fake, clients, agent_id, custom_llm_extra_body={"session_id": session["session_id"],
                                                                          "session_key": session["session_key"]})
    turn = await say(http, fake, "What is this?")
    assert turn["llm_attempts"] == 2 and turn["agent_response"] == "".join(DEFAULT_WORDS)
    conversation = fake.conversations.conversations[-1] if fake.conversations else None
    assert conversation and conversation.turns[-1].attempts[0].status >= 500
    failed, answered = upstream.chat_requests
    assert failed.body == answered.body and len(image_parts(answered.body["messages"])) == 1


@pytest.mark.parametrize("failure", ["http-503", "empty-answer", "connection-refused"])
async def test_a_custom_llm_that_keeps_failing_ends_the_conversation(
        fake: FakeElevenLabs, llm: ScriptedLlm, http: aiohttp.ClientSession, clients: list[Client],
        failure: str) -> None:
    url = llm.base_url
    if failure == "connection-refused":
        url = "http://127.0.0.1:9/v1"
    else:
        llm.script.extend([Reply(status=503) if failure == "http-503" else Reply(words=[])] * LLM_ATTEMPTS)
    agent_id = await new_agent(http, fake, url)
    client = await converse(http, fake, clients, agent_id)
    await client.event("conversation_initiation_metadata")
    turn = await say(http, fake, "Hello?")
    assert turn["llm_attempts"] == LLM_ATTEMPTS and turn["close_code"] == 1002
    assert len(llm.requests) == (0 if failure == "connection-refused" else LLM_ATTEMPTS)
    assert await client.ended() == (1002, "custom_llm generation failed")
    assert client.events[-1]["error_event"]["error_type"] == "custom_llm_error"


# --- typed input: user_message, contextual_update, user_activity (@elevenlabs/client sendUserMessage,
# sendContextualUpdate, sendUserActivity send exactly these bodies: BaseConversation.js) ---------------------------

def conversation_of(fake: FakeElevenLabs) -> Conversation:
    assert fake.conversations and fake.conversations.conversations
    return fake.conversations.conversations[-1]


async def started_fake(**options: Any) -> FakeElevenLabs:
    return await FakeElevenLabs(conversations=FakeConversations(**options)).start()


@contextlib.asynccontextmanager
async def greeted(http: aiohttp.ClientSession, clients: list[Client], llm: ScriptedLlm,
                  **options: Any) -> AsyncIterator[tuple[FakeElevenLabs, Client]]:
    """A fake with these conversation options, an agent on `llm`, and a conversation past the agent's greeting."""
    fake = await started_fake(**options)
    try:
        agent_id = await new_agent(http, fake, llm.base_url)
        client = await converse(http, fake, clients, agent_id)
        await client.event("agent_response", said="Hello!")
        yield fake, client
    finally:
        await fake.stop()


def answers(client: Client) -> list[str]:
    return [e["agent_response_event"]["agent_response"] for e in client.events if e["type"] == "agent_response"]


def summary(items: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """A Chat Completions or Responses conversation as (who, what) pairs: a contextual update shows as the tool call
    and the tool's output."""
    found: list[tuple[str, Any]] = []
    for item in items:
        if item.get("tool_calls"):
            found += [("call", call["function"]["name"]) for call in item["tool_calls"]]
        elif item.get("type") == "function_call":
            found.append(("call", item["name"]))
        elif item.get("role") == "tool" or item.get("type") == "function_call_output":
            found.append(("tool", item.get("content", item.get("output"))))
        else:
            found.append((item["role"], item["content"]))
    return found


@pytest.mark.parametrize("api_type", ["chat_completions", "responses"])
async def test_a_user_message_is_answered_like_speech_without_a_transcript(
        fake: FakeElevenLabs, llm: ScriptedLlm, http: aiohttp.ClientSession, clients: list[Client],
        api_type: str) -> None:
    agent_id = await new_agent(http, fake, llm.base_url, api_type=api_type)
    client = await converse(http, fake, clients, agent_id, custom_llm_extra_body={"session_id": "s-typed"})
    await client.event("agent_response", said="Hello!")
    before = time.time()
    await client.socket.send_json({"type": "user_message", "text": "What is this?"})  # sendUserMessage(text)
    await client.event("agent_response", said="".join(WORDS))
    # No spoken turn: nothing "heard" (no POST /_fake/turn), no transcript echoed, the answer spoken.
    assert "user_transcript" not in client.types()
    assert client.types()[-1] == "audio"
    [(path, _, body)] = llm.requests
    conversation = conversation_of(fake)
    if api_type == "responses":
        assert path == "/v1/responses" and body["input"][-1] == {"role": "user", "content": "What is this?"}
        definition = "CreateResponse"
    else:
        assert path == "/v1/chat/completions" and body["messages"][-1] == {"role": "user", "content": "What is this?"}
        definition = "CreateChatCompletionRequest"
    assert body["elevenlabs_extra_body"] == {"session_id": "s-typed"}
    assert list(validator("openai", definition).iter_errors(openai_fields_only(body))) == []
    [typed] = conversation.user_messages
    assert typed.text == "What is this?" and before <= typed.received_at <= time.time()
    [turn] = conversation.turns
    assert typed.turn is turn and turn.source == "user_message" and turn.user_transcript == "What is this?"
    assert turn.done and turn.agent_response == "".join(WORDS) and turn.llm_status == 200


async def test_typed_input_waits_for_an_answer_under_way_and_interrupts_the_agent_speaking(
        llm: ScriptedLlm, http: aiohttp.ClientSession, clients: list[Client]) -> None:
    fake = await started_fake(speech_seconds=1.0)  # each answer plays for a second
    try:
        agent_id = await new_agent(http, fake, llm.base_url)
        llm.script.extend([Reply(words=["First."], delay=0.5), Reply(words=["Second."])])
        client = await converse(http, fake, clients, agent_id)
        await client.event("agent_response", said="Hello!")  # the first message, playing now
        await client.socket.send_json({"type": "user_message", "text": "One?"})
        await client.socket.send_json({"type": "user_message", "text": "Two?"})  # while the LLM answers "One?"
        await client.event("agent_response", said="Second.")
        first, second = (body for _, _, body in llm.requests)
        assert summary(first["messages"])[-1] == ("user", "One?")
        assert summary(second["messages"])[-3:] == [("user", "One?"), ("assistant", "First."), ("user", "Two?")]
        assert answers(client) == ["Hello!", "First.", "Second."]
        # Each typed turn began while the agent was still speaking the previous answer: interrupted, and the
        # interruption's event id is past the audio it cuts off, as the SDK compares them (VoiceConversation.js).
        kinds = [e["type"] for e in client.events if e["type"] in ("agent_response", "interruption")]
        assert kinds == ["agent_response", "interruption", "agent_response", "interruption", "agent_response"]
        ids = [e.get("interruption_event", e.get("agent_response_event", {})).get("event_id") for e in client.events
               if e["type"] in ("agent_response", "interruption")]
        assert ids == sorted(ids)
        assert [t.interrupted_agent for t in conversation_of(fake).turns] == [True, True]
    finally:
        await fake.stop()


async def test_a_typed_turn_is_retried_and_ended_like_a_spoken_one(
        fake: FakeElevenLabs, llm: ScriptedLlm, http: aiohttp.ClientSession, clients: list[Client]) -> None:
    agent_id = await new_agent(http, fake, llm.base_url, end_call=True)
    farewell = json.dumps({"reason": "the user said goodbye", "message": "Bye!"})
    llm.script.extend([Reply(status=500), Reply(), Reply(tool_call={"name": "end_call", "arguments": farewell})])
    client = await converse(http, fake, clients, agent_id)
    await client.event("agent_response", said="Hello!")
    await client.socket.send_json({"type": "user_message", "text": "What is this?"})
    await client.event("agent_response", said="".join(WORDS))  # answered on the second attempt
    first, second = llm.requests[:2]
    assert first == second
    await client.socket.send_json({"type": "user_message", "text": "Thanks, bye!"})
    assert await client.ended() == (1000, "")
    assert answers(client) == ["Hello!", "".join(WORDS), "Bye!"]
    turns = conversation_of(fake).turns
    assert [len(t.attempts) for t in turns] == [2, 1] and turns[-1].tool_calls[0]["name"] == "end_call"


async def test_a_typed_turn_whose_llm_keeps_failing_ends_the_conversation(
        fake: FakeElevenLabs, llm: ScriptedLlm, http: aiohttp.ClientSession, clients: list[Client]) -> None:
    agent_id = await new_agent(http, fake, llm.base_url)
    llm.script.extend([Reply(status=503)] * LLM_ATTEMPTS)
    client = await converse(http, fake, clients, agent_id)
    await client.event("agent_response", said="Hello!")
    await client.socket.send_json({"type": "user_message", "text": "Hello?"})
    assert await client.ended() == (1002, "custom_llm generation failed")
    assert client.events[-1]["error_event"]["error_type"] == "custom_llm_error"
    assert len(llm.requests) == LLM_ATTEMPTS


async def test_a_user_message_without_text_is_a_signal_not_a_turn(
        fake: FakeElevenLabs, llm: ScriptedLlm, http: aiohttp.ClientSession, clients: list[Client]) -> None:
    # "null for text-only mode signal" (agent.asyncapi.yaml, UserMessagePayload): accepted, answered by nothing.
    agent_id = await new_agent(http, fake, llm.base_url)
    client = await converse(http, fake, clients, agent_id)
    await client.event("agent_response", said="Hello!")
    await client.socket.send_json({"type": "user_message", "text": None})
    await client.socket.send_json({"type": "user_message"})
    assert fake.conversations
    _, signals = await fake.conversations.wait_received("user_message", 2, timeout=5)
    await asyncio.sleep(0.2)
    assert len(signals) == 2 and all(s.turn is None for s in signals)
    assert llm.requests == [] and conversation_of(fake).turns == [] and client.close_code is None


@pytest.mark.parametrize("api_type", ["chat_completions", "responses"])
async def test_a_contextual_update_starts_no_turn_and_reaches_the_next_llm_call(
        fake: FakeElevenLabs, llm: ScriptedLlm, http: aiohttp.ClientSession, clients: list[Client],
        api_type: str) -> None:
    agent_id = await new_agent(http, fake, llm.base_url, api_type=api_type)
    client = await converse(http, fake, clients, agent_id)
    await client.event("agent_response", said="Hello!")
    # sendContextualUpdate(text) and sendContextualUpdate(text, {contextId}); the later update of a context_id
    # replaces the earlier one in what the LLM sees.
    await client.socket.send_json({"type": "contextual_update", "text": "The user shared a picture."})
    await client.socket.send_json({"type": "contextual_update", "text": "Picture 2 is uploading.",
                                   "context_id": "upload"})
    await client.socket.send_json({"type": "contextual_update", "text": "Picture 2 is uploaded.",
                                   "context_id": "upload"})
    assert fake.conversations
    conversation, updates = await fake.conversations.wait_received("contextual_update", 3, timeout=5)
    await asyncio.sleep(0.2)
    assert [u.text for u in updates] == ["The user shared a picture.", "Picture 2 is uploading.",
                                         "Picture 2 is uploaded."]
    assert llm.requests == [] and answers(client) == ["Hello!"]  # no turn, no answer
    assert conversation and conversation.turns == []
    await client.socket.send_json({"type": "user_message", "text": "What do you think?"})
    await client.event("agent_response", said="".join(WORDS))
    [(_, _, body)] = llm.requests
    items = body["input"] if api_type == "responses" else body["messages"]
    # "incorporated as tool calls in conversation history", where they arrived: after the first message.
    assert summary(items) == [("system", PROMPT), ("assistant", "Hello!"),
                              ("call", "contextual_update"), ("tool", "The user shared a picture."),
                              ("call", "contextual_update"), ("tool", "Picture 2 is uploaded."),
                              ("user", "What do you think?")]
    definition = "CreateResponse" if api_type == "responses" else "CreateChatCompletionRequest"
    assert list(validator("openai", definition).iter_errors(openai_fields_only(body))) == []


@pytest.mark.parametrize(("sent", "error_type"), [
    pytest.param({"type": "contextual_update"}, "missing_fields", id="contextual-update-without-text"),
    pytest.param({"type": "contextual_update", "text": {"page": "pricing"}}, "value_error",
                 id="contextual-update-text-not-a-string"),
    pytest.param({"type": "user_message", "text": 42}, "value_error", id="user-message-text-not-a-string"),
    pytest.param("{not json", "invalid_message", id="not-json"),
])
async def test_a_malformed_client_event_closes_the_conversation(
        fake: FakeElevenLabs, llm: ScriptedLlm, http: aiohttp.ClientSession, clients: list[Client],
        sent: dict[str, Any] | str, error_type: str) -> None:
    agent_id = await new_agent(http, fake, llm.base_url)
    client = await converse(http, fake, clients, agent_id)
    await client.event("agent_response", said="Hello!")
    if isinstance(sent, str):
        await client.socket.send_str(sent)
    else:
        await client.socket.send_json(sent)
    code, reason = await client.ended()
    assert code == 1008 and reason
    error = client.events[-1]
    assert error["type"] == "error"
    assert error["error_event"]["code"] == 1008 and error["error_event"]["error_type"] == error_type
    assert llm.requests == [] and conversation_of(fake).close_code == 1008


async def test_user_activity_starts_no_turn_and_holds_the_agents_answer(
        llm: ScriptedLlm, http: aiohttp.ClientSession, clients: list[Client]) -> None:
    async with greeted(http, clients, llm, speech_seconds=0.05, user_activity_pause=0.6) as (fake, client):
        await client.socket.send_json({"type": "user_activity"})  # sendUserActivity()
        assert fake.conversations
        _, [activity] = await fake.conversations.wait_received("user_activity", timeout=5)
        await asyncio.sleep(0.1)
        assert llm.requests == [] and answers(client) == ["Hello!"]
        await client.socket.send_json({"type": "user_message", "text": "Here it is."})
        await client.event("agent_response", said="".join(WORDS))
        assert time.time() - activity.received_at >= 0.6  # the agent waited out the pause before speaking
        [turn] = conversation_of(fake).turns
        assert turn.held_seconds > 0.2 and len(llm.requests) == 1


async def test_a_typed_message_after_a_picture_reaches_the_llm_with_the_picture(
        fake: FakeElevenLabs, upstream: FakeOpenAI, start_proxy: StartProxy, http: aiohttp.ClientSession,
        clients: list[Client]) -> None:
    """Through the real proxy: the page shares a picture mid-call and says so in a typed message; the agent
    answers at once, and the LLM behind the proxy sees the picture in that turn."""
    proxy = await start_proxy(custom_llm_key=LLM_KEY)
    session = await new_session(http, proxy.url)
    agent_id = await new_agent(http, fake, proxy.v1)
    client = await converse(http, fake, clients, agent_id, custom_llm_extra_body={
        "session_id": session["session_id"], "session_key": session["session_key"]})
    await client.event("agent_response", said="Hello!")
    assert (await upload(http, proxy.url, session)).status == 201
    await client.socket.send_json({"type": "contextual_update", "text": "The user shared a picture."})
    await client.socket.send_json({"type": "user_message", "text": "I just shared a picture. What is it?"})
    await client.event("agent_response", said="".join(DEFAULT_WORDS))
    [sent] = upstream.chat_requests
    messages = sent.body["messages"]
    assert messages[-1] == {"role": "user", "content": "I just shared a picture. What is it?"}
    assert len(image_parts(messages)) == 1
    assert ("tool", "The user shared a picture.") in [(m["role"], m.get("content")) for m in messages]
    [turn] = conversation_of(fake).turns
    assert turn.source == "user_message" and turn.llm_status == 200 and "user_transcript" not in client.types()


# --- the control routes a browser test drives the fake with -------------------------------------------------

async def test_a_test_can_wait_for_what_the_page_typed_and_read_when_it_came(
        fake: FakeElevenLabs, llm: ScriptedLlm, http: aiohttp.ClientSession, clients: list[Client]) -> None:
    agent_id = await new_agent(http, fake, llm.base_url)
    client = await converse(http, fake, clients, agent_id)
    await client.event("agent_response", said="Hello!")
    received = fake.base_url + "/_fake/received"
    async with http.get(received, params={"type": "user_message", "timeout": "0.2"}) as response:
        assert response.status == 408 and (await response.json())["events"] == []

    async def wait_for_it() -> tuple[int, dict[str, Any]]:
        async with http.get(received, params={"type": "user_message", "count": "1", "timeout": "5"}) as response:
            return response.status, await response.json()

    waiting = asyncio.create_task(wait_for_it())
    await asyncio.sleep(0.1)
    sent_at = time.time()
    await client.socket.send_json({"type": "user_message", "text": "Look at this."})
    status, body = await waiting
    assert status == 200 and body["conversation_id"] == conversation_of(fake).conversation_id
    [event] = body["events"]
    assert event["type"] == "user_message" and event["text"] == "Look at this."
    assert sent_at <= event["received_at"] <= time.time()
    await client.event("agent_response", said="".join(WORDS))
    async with http.get(fake.base_url + "/_fake/conversation") as response:
        state = await response.json()
    [event] = state["user_message"]
    assert event["turn"] == {"source": "user_message", "done": True, "agent_response": "".join(WORDS),
                             "llm_status": 200, "llm_attempts": 1}
    assert state["turns"][0]["source"] == "user_message" and state["closed"] is False


async def test_a_black_holed_conversation_goes_silent_but_stays_open(
        llm: ScriptedLlm, http: aiohttp.ClientSession, clients: list[Client]) -> None:
    async with greeted(http, clients, llm, speech_seconds=0.05, ping_interval_seconds=0.1) as (fake, client):
        for _ in range(100):  # pings keep coming, every 0.1 s
            if client.types().count("ping") >= 3:
                break
            await asyncio.sleep(0.05)
        assert client.types().count("ping") >= 3
        async with http.post(fake.base_url + "/_fake/black-hole") as response:
            assert response.status == 200
            black_holed_at = (await response.json())["black_holed_at"]
        await asyncio.sleep(0.05)  # anything already on the wire arrives
        heard = len(client.events)
        await client.socket.send_json({"type": "user_message", "text": "Hello? Are you there?"})
        async with http.get(fake.base_url + "/_fake/received", params={"type": "user_message"}) as response:
            [event] = (await response.json())["events"]
        assert event["text"] == "Hello? Are you there?" and event["received_at"] >= black_holed_at
        async with http.post(fake.base_url + "/_fake/turn", json={"text": "Hello?"}) as response:
            assert response.status == 409  # nothing is heard either
        await asyncio.sleep(0.5)
        assert len(client.events) == heard  # no ping, no answer, no error
        assert client.close_code is None and not client.socket.closed
        assert llm.requests == [] and conversation_of(fake).turns == []
        # The page gives up on the silent socket: the fake sees when and how.
        await client.socket.close(code=4000)
        for _ in range(100):
            if conversation_of(fake).closed:
                break
            await asyncio.sleep(0.02)
        async with http.get(fake.base_url + "/_fake/conversation") as response:
            state = await response.json()
        assert state["closed"] is True and state["client_close_code"] == 4000 and state["close_code"] is None
        assert state["closed_at"] >= black_holed_at
