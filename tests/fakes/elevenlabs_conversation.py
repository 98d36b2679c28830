"""A fake ElevenLabs conversation WebSocket: what the page's `@elevenlabs/react` talks to.

It speaks ElevenLabs' real message types on `/v1/convai/conversation` (subprotocol `convai`): the client
opens with `conversation_initiation_client_data`, gets `conversation_initiation_metadata`, the first message
as `agent_response` + `audio`, a `ping` it must answer with `pong`, and then streams the microphone as
`user_audio_chunk`. Speech recognition is the test's job: a test asks the fake to "hear" a sentence
(`POST /_fake/turn`), and the fake does what ElevenLabs does with a finished utterance: `user_transcript` to
the page, a streaming call to the agent's custom LLM, then the answer as `agent_response` and `audio`.

Everything comes from the agent behind the signed URL, as created through the REST fake (`FakeElevenLabs`):
the custom LLM's URL, `api_type`, model id and bearer key (the workspace secret `custom_llm.api_key` names),
the prompt, the first message, the system tools, the client events, and which client overrides it permits.
Refused like ElevenLabs refuses: an override the agent does not permit closes the socket before the
conversation starts. The custom LLM is called on the path `api_type` names, a failed call is retried on the
same URL, and a streamed `end_call` ends the conversation.

`ingress` maps an HTTPS host (an agent's `custom_llm.url`, e.g. the operator's `https://<ingress host>/v1`)
to a local base URL, as the ingress does in a cluster: the agent keeps the URL the operator rendered.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import math
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from yarl import URL

SAMPLE_RATE = 16_000

# What a client may override at conversation start, and the agent's permission for it: each non-null field of
# `conversation_config_override` needs `platform_settings.overrides.conversation_config_override.<same path>`
# true, and `custom_llm_extra_body` needs `platform_settings.overrides.custom_llm_extra_body` true
# (ConversationInitiationClientDataConfig in the vendor spec; "default false"). Refused with code 1008,
# "override_error: Invalid override configuration (code 1008)" (elevenlabs/packages
# packages/types/schemas/agent.asyncapi.yaml, ErrorType), and the reason ElevenLabs words as
# "Override for field 'voice_id' is not allowed by config" (the message users report, e.g. elevenlabs/packages#92).
OVERRIDE_REFUSED = 1008
# The client events an agent sends when its `conversation.client_events` names none (agent.asyncapi.yaml,
# ConversationConfigOverride.client_events: "If not specified, defaults to: ...").
DEFAULT_CLIENT_EVENTS = ("audio", "interruption", "agent_response", "user_transcript", "tentative_user_transcript",
                         "conversation_initiation_metadata", "ping")
# A custom LLM that fails is retried on the same URL "multiple times (matching the standard minimum retry count)",
# "at least 3 attempts"; failures "can include API errors, timeouts, or empty responses" (elevenlabs-docs
# fern/conversational-ai/pages/guides/cascade.mdx, "Custom LLMs").
LLM_ATTEMPTS = 3
# "llm_timeout: LLM response took over 20 seconds (code 1002)" (agent.asyncapi.yaml, ErrorType).
LLM_TIMEOUT_SECONDS = 20
# Then the conversation ends: "custom_llm_error: Custom LLM generation failed (code 1002)" (agent.asyncapi.yaml);
# the dashboard's termination reason reads "custom_llm generation failed".
LLM_FAILED, LLM_FAILED_REASON = 1002, "custom_llm generation failed"
# "1000: Normal closure (agent ended conversation, max duration exceeded)" (agent.asyncapi.yaml,
# WebSocketCloseCode); the SDK reports a 1000 close as ended by the agent (@elevenlabs/client
# WebSocketConnection.ts). ElevenLabs documents no reason text for it.
AGENT_ENDED = 1000

# System tools as ElevenLabs sends them to a custom LLM, for each one the agent enables (elevenlabs-docs
# fern/conversational-ai/pages/customization/custom-llm/overview.mdx "Example Request with System Tools", and
# fern/snippets/*_custom_llm.mdx for the parameters). Agents created through the API have none unless added:
# "For agents created via API or SDK ... you must add it manually" (tools/end-call.mdx).
_REASON = {"type": "string", "description": "The reason for the tool call."}
SYSTEM_TOOLS: dict[str, tuple[str, dict[str, Any]]] = {
    "end_call": (
        "Call this function to end the current conversation when the main task has been completed, the "
        "conversation has reached a natural conclusion, or the user has explicitly indicated they want to end it.",
        {"type": "object", "properties": {"reason": _REASON, "message": {
            "type": "string", "description": "A farewell message to send to the user along right before ending "
                                             "the call."}}, "required": ["reason"]}),
    "language_detection": (
        "Change the conversation language when the user expresses a language preference explicitly.",
        {"type": "object", "properties": {"reason": _REASON, "language": {
            "type": "string", "description": "The language to switch to. Must be one of language codes in tool "
                                             "description."}}, "required": ["reason", "language"]}),
    "skip_turn": (
        "Skip a turn when the user explicitly indicates they need a moment to think.",
        {"type": "object", "properties": {"reason": {
            "type": "string", "description": "Optional free-form reason explaining why the pause is needed."}},
         "required": []}),
    "transfer_to_agent": (
        "Transfer the conversation to another agent when the user needs a specialised agent.",
        {"type": "object", "properties": {"reason": _REASON, "agent_number": {
            "type": "integer", "description": "Zero-indexed number of the agent to transfer to."}},
         "required": ["agent_number"]}),
    "transfer_to_number": (
        "Transfer the call to a human operator.",
        {"type": "object", "properties": {
            "reason": _REASON,
            "transfer_number": {"type": "string", "description": "The phone number to transfer to."},
            "client_message": {"type": "string", "description": "Message read to the client while waiting."},
            "agent_message": {"type": "string", "description": "Message for the human operator."}},
         "required": ["transfer_number", "client_message", "agent_message"]}),
    "play_keypad_touch_tone": (
        "Play DTMF tones to navigate an automated phone system.",
        {"type": "object", "properties": {"reason": _REASON, "dtmf_tones": {
            "type": "string", "description": "The DTMF sequence to play: 0-9, *, #, w (0.5s pause), W (1s pause)."}},
         "required": ["dtmf_tones"]}),
    "voicemail_detection": (
        "Call this when a voicemail system is detected.",
        {"type": "object", "properties": {"reason": _REASON}, "required": ["reason"]}),
}


class AgentDirectory(Protocol):
    """What the REST fake knows: agent configurations and workspace secrets."""

    def agent_config(self, agent_id: str) -> dict[str, Any] | None: ...

    def secret_value(self, secret_id: str) -> str | None: ...


@dataclass
class LlmAttempt:
    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int = 0  # 0: no HTTP answer (connection refused, timeout)
    failure: str = ""  # why this attempt counts as failed ("" = it answered)


@dataclass
class LlmAnswer:
    text: str = ""
    tool_calls: list[dict[str, str]] = field(default_factory=list)  # {"id", "name", "arguments"}
    complete: bool = False
    error: str = ""


@dataclass
class Turn:
    user_transcript: str
    attempts: list[LlmAttempt] = field(default_factory=list)
    agent_response: str = ""
    tool_calls: list[dict[str, str]] = field(default_factory=list)

    @property
    def llm_status(self) -> int:
        return self.attempts[-1].status if self.attempts else 0

    @property
    def llm_request(self) -> dict[str, Any]:
        return self.attempts[-1].body if self.attempts else {}


@dataclass
class Conversation:
    conversation_id: str
    agent_id: str
    agent: dict[str, Any]  # the agent's configuration when the conversation started
    socket: web.WebSocketResponse
    initiation: dict[str, Any] = field(default_factory=dict)
    audio_chunks: int = 0
    audio_bytes: int = 0
    pongs: list[int] = field(default_factory=list)
    other_messages: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)  # every event the fake sent the client
    history: list[dict[str, str]] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    close_code: int | None = None  # set when the fake closed the socket
    close_reason: str = ""
    closed: bool = False
    audio_arrived: asyncio.Event = field(default_factory=asyncio.Event)


def tone(seconds: float, frequency: float = 440.0) -> bytes:
    """Little-endian 16-bit PCM at 16 kHz, the `pcm_16000` format the fake announces."""
    samples = int(SAMPLE_RATE * seconds)
    return b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * frequency * n / SAMPLE_RATE)))
                    for n in range(samples))


def _at(document: dict[str, Any] | None, *path: str) -> Any:
    node: Any = document
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _leaves(node: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The paths of the non-null values in an override object (`{"agent": {}}` overrides nothing)."""
    if isinstance(node, dict):
        return [leaf for key, value in node.items() for leaf in _leaves(value, (*path, key))]
    return [] if node is None else [path]


def _overridden(config: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """The agent's conversation config with the (permitted) non-null override values in place."""
    merged = dict(config)
    for key, value in override.items():
        if isinstance(value, dict):
            merged[key] = _overridden(merged.get(key) if isinstance(merged.get(key), dict) else {}, value)
        elif value is not None:
            merged[key] = value
    return merged


def refused_override(agent: dict[str, Any], initiation: dict[str, Any]) -> str | None:
    """The field of `conversation_initiation_client_data` the agent does not let a client set, if any."""
    permitted = _at(agent, "platform_settings", "overrides") or {}
    for path in _leaves(initiation.get("conversation_config_override")):
        if _at(permitted, "conversation_config_override", *path) is not True:
            return path[-1]
    if initiation.get("custom_llm_extra_body") and permitted.get("custom_llm_extra_body") is not True:
        return "custom_llm_extra_body"
    return None


def enabled_system_tools(agent: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, description, parameters) of each system tool the agent enables, as sent to its custom LLM."""
    prompt = _at(agent, "conversation_config", "agent", "prompt") or {}
    enabled: dict[str, dict[str, Any]] = {name: config for name, config in (prompt.get("built_in_tools") or {}).items()
                                          if config}
    for tool in prompt.get("tools") or []:  # the deprecated list form (tools/end-call.mdx, "API Implementation")
        if isinstance(tool, dict) and tool.get("type") == "system" and tool.get("name"):
            enabled.setdefault(tool["name"], tool)
    tools = []
    for name, config in enabled.items():
        kind = _at(config, "params", "system_tool_type") or name
        if kind in SYSTEM_TOOLS:
            description, parameters = SYSTEM_TOOLS[kind]
            # "Leave the description blank to use the default end call prompt" (tools/end-call.mdx)
            tools.append((name, config.get("description") or description, parameters))
    return tools


class FakeConversations:
    """Routes for the conversation socket and the test's control endpoint, added to the REST fake's app."""

    def __init__(self, speech_seconds: float = 1.5, ingress: dict[str, str] | None = None) -> None:
        self.speech_seconds = speech_seconds
        self.ingress: dict[str, str] = dict(ingress or {})  # HTTPS host -> local base URL
        self.directory: AgentDirectory | None = None  # set by FakeElevenLabs
        self.signatures: dict[str, str] = {}  # unused conversation_signature -> its agent
        self.conversations: list[Conversation] = []
        self.rejected: list[str] = []
        self._event_ids = itertools.count(1)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/convai/conversation", self._socket)
        app.router.add_post("/_fake/turn", self._turn)

    def issue_signature(self, agent_id: str) -> str:
        signature = secrets.token_urlsafe(24)
        self.signatures[signature] = agent_id
        return signature

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        signature = request.query.get("conversation_signature", "")
        agent_id = self.signatures.get(signature)
        if agent_id is None or request.query.get("agent_id") != agent_id:
            self.rejected.append(request.query_string)
            raise web.HTTPForbidden(text="invalid or missing conversation_signature")
        del self.signatures[signature]  # a signed URL starts one conversation
        assert self.directory is not None, "FakeConversations runs inside FakeElevenLabs"
        agent = self.directory.agent_config(agent_id)
        if agent is None:  # deleted since the URL was signed
            self.rejected.append(request.query_string)
            raise web.HTTPForbidden(text="agent not found")
        socket = web.WebSocketResponse(protocols=("convai",), heartbeat=None)
        await socket.prepare(request)
        conversation = Conversation("conv_" + secrets.token_hex(8), agent_id, agent, socket)
        self.conversations.append(conversation)
        try:
            await self._converse(conversation)
        finally:
            conversation.closed = True
        return socket

    async def _converse(self, conversation: Conversation) -> None:
        socket = conversation.socket
        first = await socket.receive_json(timeout=10)
        if first.get("type") != "conversation_initiation_client_data":
            await self._fail(conversation, OVERRIDE_REFUSED, "invalid_message",
                             "expected conversation_initiation_client_data")
            return
        conversation.initiation = first
        if (refused := refused_override(conversation.agent, first)) is not None:
            await self._fail(conversation, OVERRIDE_REFUSED, "override_error",
                             f"Override for field '{refused}' is not allowed by config.")
            return
        conversation.agent["conversation_config"] = _overridden(conversation.agent.get("conversation_config") or {},
                                                                first.get("conversation_config_override") or {})
        await self._send(conversation, {"type": "conversation_initiation_metadata",
                                        "conversation_initiation_metadata_event": {
                                            "conversation_id": conversation.conversation_id,
                                            "agent_output_audio_format": "pcm_16000",
                                            "user_input_audio_format": "pcm_16000"}})
        first_message = _at(conversation.agent, "conversation_config", "agent", "first_message")
        if first_message:
            conversation.history.append({"role": "assistant", "content": first_message})
            await self._speak(conversation, first_message)
        await self._send(conversation, {"type": "ping", "ping_event": {"event_id": next(self._event_ids),
                                                                      "ping_ms": 0}})
        async for message in socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(message.data)
            if "user_audio_chunk" in event:
                conversation.audio_chunks += 1
                conversation.audio_bytes += len(base64.b64decode(event["user_audio_chunk"]))
                conversation.audio_arrived.set()
            elif event.get("type") == "pong":
                conversation.pongs.append(event.get("event_id"))
            else:
                conversation.other_messages.append(event)

    async def _send(self, conversation: Conversation, event: dict[str, Any]) -> None:
        """An event, if the agent sends that kind to clients (`conversation.client_events`); errors always go."""
        allowed = _at(conversation.agent, "conversation_config", "conversation", "client_events")
        if event["type"] != "error" and event["type"] not in (allowed or DEFAULT_CLIENT_EVENTS):
            return
        conversation.sent.append(event)
        await conversation.socket.send_json(event)

    async def _fail(self, conversation: Conversation, code: int, error_type: str, message: str) -> None:
        """ElevenLabs' `error` event ("sent when connection is closing due to an error", agent.asyncapi.yaml),
        then the close with that code and the message as its reason."""
        await self._send(conversation, {"type": "error", "error_event": {
            "code": code, "error_type": error_type, "message": message, "reason": message}})
        await self._close(conversation, code, message)

    @staticmethod
    async def _close(conversation: Conversation, code: int, reason: str) -> None:
        conversation.close_code, conversation.close_reason = code, reason
        await conversation.socket.close(code=code, message=reason.encode())

    async def _speak(self, conversation: Conversation, text: str) -> None:
        event_id = next(self._event_ids)
        await self._send(conversation, {"type": "agent_response",
                                        "agent_response_event": {"agent_response": text, "event_id": event_id}})
        audio = tone(self.speech_seconds)
        step = SAMPLE_RATE * 2 // 4  # quarter-second chunks, as the real service streams them
        for start in range(0, len(audio), step):
            await self._send(conversation, {"type": "audio", "audio_event": {
                "audio_base_64": base64.b64encode(audio[start:start + step]).decode(), "event_id": event_id}})

    async def _turn(self, request: web.Request) -> web.Response:
        """The test says what the person just said; answers once the agent has spoken the reply."""
        body = await request.json()
        live = [c for c in self.conversations if not c.closed and c.close_code is None]
        if not live:
            return web.json_response({"error": "no open conversation"}, status=409)
        conversation = live[-1]
        llm = _at(conversation.agent, "conversation_config", "agent", "prompt", "custom_llm")
        if not llm:  # the fake hosts no LLM of its own
            return web.json_response({"error": "the agent has no custom LLM"}, status=409)
        # Hearing needs a microphone: fresh audio must arrive from the page before anything is "said".
        try:
            await asyncio.wait_for(self._fresh_audio(conversation), timeout=10)
        except TimeoutError:
            return web.json_response({"error": "no microphone audio arrived"}, status=409)
        turn = Turn(body["text"])
        conversation.turns.append(turn)
        await self._send(conversation, {"type": "user_transcript", "user_transcription_event": {
            "user_transcript": turn.user_transcript, "event_id": next(self._event_ids)}})
        conversation.history.append({"role": "user", "content": turn.user_transcript})
        answer = await self._ask_custom_llm(conversation, turn, llm)
        if answer is None:
            await self._fail(conversation, LLM_FAILED, "custom_llm_error", LLM_FAILED_REASON)
        else:
            turn.agent_response, turn.tool_calls = answer.text, answer.tool_calls
            if answer.text:
                conversation.history.append({"role": "assistant", "content": answer.text})
                await self._speak(conversation, answer.text)
            await self._run_tools(conversation, answer.tool_calls)
        return web.json_response({"conversation_id": conversation.conversation_id, "llm_status": turn.llm_status,
                                  "llm_attempts": len(turn.attempts), "agent_response": turn.agent_response,
                                  "audio_chunks": conversation.audio_chunks, "close_code": conversation.close_code})

    async def _run_tools(self, conversation: Conversation, calls: list[dict[str, str]]) -> None:
        """System tools the LLM called; only end_call has an effect here. A call to a tool the agent did not
        offer does nothing."""
        offered = {name for name, _, _ in enabled_system_tools(conversation.agent)}
        for call in calls:
            if call["name"] != "end_call" or "end_call" not in offered:
                continue
            try:
                arguments = json.loads(call["arguments"] or "{}")
            except ValueError:
                arguments = None
            if not isinstance(arguments, dict):
                arguments = {}
            farewell = arguments.get("message") or arguments.get("system__message_to_speak")
            if farewell:  # "a farewell message to send to the user ... right before ending the call"
                await self._speak(conversation, str(farewell))
            # The tool's outcome, for clients that take agent_tool_response: the SDK ends the session on it
            # (@elevenlabs/client BaseConversation.ts handleAgentToolResponse); then the socket closes, 1000.
            await self._send(conversation, {"type": "agent_tool_response", "agent_tool_response": {
                "tool_name": "end_call", "tool_call_id": call["id"], "tool_type": "system", "is_error": False,
                "is_called": True, "event_id": next(self._event_ids)}})
            await self._close(conversation, AGENT_ENDED, "")
            return

    @staticmethod
    async def _fresh_audio(conversation: Conversation) -> None:
        heard = conversation.audio_chunks
        while conversation.audio_chunks <= heard:
            conversation.audio_arrived.clear()
            await conversation.audio_arrived.wait()

    def _llm_url(self, llm: dict[str, Any]) -> str:
        """`{url}/chat/completions` or `{url}/responses`, as `api_type` says (unset: chat completions), with an
        ingress host resolved to its local address."""
        url = URL(llm["url"])
        if url.host in self.ingress:
            local = URL(self.ingress[url.host])
            url = url.with_scheme(local.scheme).with_host(local.host or "").with_port(local.port)
        path = "/responses" if llm.get("api_type") == "responses" else "/chat/completions"
        return str(url).rstrip("/") + path

    def _llm_headers(self, llm: dict[str, Any]) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        assert self.directory is not None
        for name, value in (llm.get("request_headers") or {}).items():
            if isinstance(value, str):
                headers[name] = value
            elif isinstance(value, dict) and "secret_id" in value:
                headers[name] = self.directory.secret_value(value["secret_id"]) or ""
        secret_id = _at(llm, "api_key", "secret_id")
        if secret_id:
            key = self.directory.secret_value(secret_id)
            if key is None:
                raise web.HTTPConflict(text=f"workspace secret {secret_id} (custom_llm.api_key) does not exist")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def llm_request(self, conversation: Conversation, llm: dict[str, Any]) -> dict[str, Any]:
        """The body ElevenLabs sends the custom LLM for the conversation so far."""
        prompt = _at(conversation.agent, "conversation_config", "agent", "prompt") or {}
        system = {"role": "system", "content": prompt.get("prompt", "")}
        tools = enabled_system_tools(conversation.agent)
        max_tokens = prompt.get("max_tokens", -1)  # "Limit token usage"; -1 (the default): no limit sent
        body: dict[str, Any] = {}
        if llm.get("model_id"):  # "The model ID to be used if URL serves multiple models" (CustomLlm, SDK)
            body["model"] = llm["model_id"]
        if llm.get("api_type") == "responses":
            # ElevenLabs documents no example Responses request; assumed: the same conversation as input items
            # (the prompt as the leading system message, not `instructions`), Responses' flat function tools,
            # `stream: true`, and the same ElevenLabs fields as in Chat Completions mode (`user_id`,
            # `elevenlabs_extra_body`). Valid against OpenAI's CreateResponse apart from those two fields.
            body["input"] = [{"role": m["role"], "content": m["content"]} for m in (system, *conversation.history)]
            body["stream"] = True
            body["temperature"] = prompt.get("temperature", 0)
            if max_tokens > 0:
                body["max_output_tokens"] = max(max_tokens, 16)
            if tools:
                body["tools"] = [{"type": "function", "name": name, "description": description,
                                  "parameters": parameters, "strict": False} for name, description, parameters in tools]
        else:
            # As in "Example Request with System Tools" and "Custom LLM Parameters" (custom-llm/overview.mdx).
            body["messages"] = [system, *conversation.history]
            body["stream"] = True
            body["temperature"] = prompt.get("temperature", 0)
            if max_tokens > 0:
                body["max_tokens"] = max_tokens
            if tools:
                body["tools"] = [{"type": "function", "function": {
                    "name": name, "description": description, "parameters": parameters}}
                    for name, description, parameters in tools]
        # the client's `user_id` if it sent one; else (an assumption, undocumented) the conversation id
        body["user_id"] = conversation.initiation.get("user_id") or conversation.conversation_id
        extra = conversation.initiation.get("custom_llm_extra_body")
        if extra:
            body["elevenlabs_extra_body"] = extra
        return body

    async def _ask_custom_llm(self, conversation: Conversation, turn: Turn,
                              llm: dict[str, Any]) -> LlmAnswer | None:
        """The streaming call ElevenLabs makes to a custom LLM, retried on failure; None when every attempt
        failed."""
        url, headers, body = self._llm_url(llm), self._llm_headers(llm), self.llm_request(conversation, llm)
        parse = _responses_answer if llm.get("api_type") == "responses" else _chat_answer
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=LLM_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for _ in range(LLM_ATTEMPTS):
                attempt = LlmAttempt(url, dict(headers), json.loads(json.dumps(body)))
                turn.attempts.append(attempt)
                try:
                    async with http.post(url, json=body, headers=headers) as response:
                        attempt.status = response.status
                        if response.status // 100 != 2:
                            attempt.failure = f"HTTP {response.status}"
                            continue
                        answer = await parse(response)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    attempt.failure = f"{type(exc).__name__}: {exc}"
                    continue
                if answer.error or not answer.complete:
                    attempt.failure = answer.error or "the stream ended before the answer was complete"
                elif not answer.text and not answer.tool_calls:
                    attempt.failure = "empty response"
                else:
                    return answer
        return None


async def _sse_events(response: aiohttp.ClientResponse) -> Any:
    """(event name, data) of each server-sent event; `data` lines joined."""
    name, data = "", []
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "", []
        elif line.startswith("event:"):
            name = line[len("event:"):].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:"):].removeprefix(" "))
    if data:
        yield name, "\n".join(data)


async def _chat_answer(response: aiohttp.ClientResponse) -> LlmAnswer:
    """A Chat Completions stream: `data: <chunk>` events, tool calls in pieces by index, then `data: [DONE]`."""
    answer, calls = LlmAnswer(), {}
    async for _, data in _sse_events(response):
        if data == "[DONE]":
            answer.complete = True
            break
        chunk = json.loads(data)
        if chunk.get("error"):
            answer.error = f"error event: {json.dumps(chunk['error'])[:200]}"
            continue
        for choice in chunk.get("choices", []):
            delta = choice.get("delta") or {}
            answer.text += delta.get("content") or ""
            for piece in delta.get("tool_calls") or []:
                call = calls.setdefault(piece.get("index", 0), {"id": "", "name": "", "arguments": ""})
                call["id"] = piece.get("id") or call["id"]
                function = piece.get("function") or {}
                call["name"] = function.get("name") or call["name"]
                call["arguments"] += function.get("arguments") or ""
    answer.tool_calls = [calls[index] for index in sorted(calls)]
    return answer


async def _responses_answer(response: aiohttp.ClientResponse) -> LlmAnswer:
    """A Responses stream: `response.output_text.delta`, function calls as `response.output_item.added` /
    `response.function_call_arguments.delta` / `response.output_item.done`, then `response.completed`."""
    answer, calls = LlmAnswer(), {}

    def call_for(key: Any) -> dict[str, str]:
        return calls.setdefault(key, {"id": "", "name": "", "arguments": ""})

    async for name, data in _sse_events(response):
        event = json.loads(data)
        kind = event.get("type") or name
        item = event.get("item") or {}
        if kind == "response.output_text.delta":
            answer.text += event.get("delta", "")
        elif kind.startswith("response.output_item.") and item.get("type") == "function_call":
            call = call_for(item.get("id") or event.get("output_index"))
            call["id"], call["name"] = item.get("call_id") or call["id"], item.get("name") or call["name"]
            if kind == "response.output_item.done":
                call["arguments"] = item.get("arguments", call["arguments"])
        elif kind == "response.function_call_arguments.delta":
            call_for(event.get("item_id") or event.get("output_index"))["arguments"] += event.get("delta", "")
        elif kind in ("response.completed", "response.incomplete"):
            answer.complete = True
            break
        elif kind in ("response.failed", "error"):
            answer.error = f"{kind}: {data[:200]}"
            break
    answer.tool_calls = list(calls.values())
    return answer
