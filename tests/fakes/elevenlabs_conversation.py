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

Typed input, as `@elevenlabs/client`'s `sendUserMessage`, `sendContextualUpdate` and `sendUserActivity` send it:
a `user_message` is a user turn like a spoken one (the custom LLM called, the answer spoken) with no
`user_transcript`; a `contextual_update` adds to what the next LLM call sees and starts nothing; a `user_activity`
holds the agent's speech for a moment. A malformed one is refused with ElevenLabs' `error` event and close 1008.
One turn runs at a time: user input that arrives while the LLM is answering waits for that answer; input that
arrives while the agent is still speaking interrupts it (`interruption`).

Control routes for tests (a browser test reaches them over HTTP): `POST /_fake/turn` (the person said this),
`GET /_fake/received?type=user_message&count=1&timeout=10` (what the page sent, with arrival times),
`GET /_fake/conversation` (the latest conversation's state) and `POST /_fake/black-hole` (the socket stays open,
nothing more goes out and nothing is answered).

`ingress` maps an HTTPS host (an agent's `custom_llm.url`, e.g. the operator's `https://<ingress host>/v1`)
to a local base URL, as the ingress does in a cluster: the agent keeps the URL the operator rendered.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import math
import secrets
import struct
import time
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

# Client-to-server events and what ElevenLabs does with them:
# - `user_message` {type, text?, rich_content_id?}: "Text is processed as user input to the conversation. Triggers the
#   same response flow as spoken user input" (elevenlabs-docs fern/conversational-ai/pages/customization/
#   client-to-server-events.mdx). `text` is optional and nullable, "null for text-only mode signal"
#   (agent.asyncapi.yaml, UserMessagePayload): such a message is no turn. ElevenLabs echoes no `user_transcript` for
#   typed text: its own widget adds the typed message to its transcript itself and every `user_transcript` too
#   (elevenlabs/packages packages/convai-widget-core/src/contexts/conversation.tsx, sendUserMessage and onMessage),
#   and its mock server answers a user_message with agent events only (src/mocks/browser.ts).
# - `contextual_update` {type, text, context_id?}: "Does not interrupt the current conversation flow", "won't trigger a
#   response" (client-to-server-events.mdx; fern/conversational-ai/pages/libraries/react-native.mdx); "Updates are
#   incorporated as tool calls in conversation history" (fern/conversational-ai/pages/api-reference/websocket.mdx);
#   with a `context_id` "only the most recent update with a given context_id is kept in the LLM context"
#   (agent.asyncapi.yaml, ContextualUpdatePayload).
# - `user_activity` {type}: "Resets the turn timeout timer. Does not affect conversation content or flow"
#   (client-to-server-events.mdx); "The agent will pause speaking for ~2 seconds after receiving this signal"
#   (react-native.mdx, sendUserActivity).
# None of them needs enabling on the agent: `conversation.client_events` lists server-to-client events only, and the
# agent schema has no switch for these (vendor spec ConversationConfig; client-to-server-events.mdx: "at any point
# during the conversation").
USER_ACTIVITY_PAUSE_SECONDS = 2.0
# The tool name and call id a contextual update takes in the LLM's history are not documented: assumed.
CONTEXTUAL_UPDATE_TOOL = "contextual_update"
# A malformed client message closes the conversation: the `error` event, then close 1008 "Input/contract error
# (invalid messages, missing required fields, auth/validation errors)", with error_type `invalid_message` ("Invalid
# JSON or WebSocket message format"), `missing_fields` ("Required fields missing from message") or `value_error`
# ("ValueError in message processing") (agent.asyncapi.yaml, WebSocketCloseCode and ErrorType). The message words are
# not documented. Unknown event types are not refused (no source says so): they land in `other_messages`.
MALFORMED = 1008
# The fields each handled client event may carry, and whether each is required (agent.asyncapi.yaml payloads; a null
# where the schema says string is accepted: no source shows it refused).
CLIENT_EVENT_FIELDS: dict[str, dict[str, tuple[bool, tuple[type, ...]]]] = {
    "user_message": {"text": (False, (str, type(None))), "rich_content_id": (False, (str, type(None)))},
    "contextual_update": {"text": (True, (str,)), "context_id": (False, (str, type(None)))},
    "user_activity": {},
}

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
    user_transcript: str  # what the person said, or typed (`source` "user_message")
    source: str = "speech"  # "speech" (POST /_fake/turn) or "user_message" (typed, from the client)
    attempts: list[LlmAttempt] = field(default_factory=list)
    agent_response: str = ""
    tool_calls: list[dict[str, str]] = field(default_factory=list)
    interrupted_agent: bool = False  # the agent was still speaking when this turn began
    held_seconds: float = 0.0  # how long a recent user_activity held the agent's answer
    done: bool = False

    @property
    def llm_status(self) -> int:
        return self.attempts[-1].status if self.attempts else 0

    @property
    def llm_request(self) -> dict[str, Any]:
        return self.attempts[-1].body if self.attempts else {}


@dataclass
class ClientEvent:
    """A `user_message`, `contextual_update` or `user_activity` the client sent, as it came."""

    body: dict[str, Any]
    received_at: float  # time.time() on arrival: seconds since the epoch, comparable with a browser's Date.now()/1000
    turn: Turn | None = None  # the turn a user_message started (None until it starts, or when it starts none)

    @property
    def type(self) -> str:
        return str(self.body["type"])

    @property
    def text(self) -> str | None:
        text = self.body.get("text")
        return text if isinstance(text, str) else None

    def as_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {**self.body, "received_at": self.received_at}
        if self.turn is not None:
            found["turn"] = {"source": self.turn.source, "done": self.turn.done,
                             "agent_response": self.turn.agent_response, "llm_status": self.turn.llm_status,
                             "llm_attempts": len(self.turn.attempts)}
        return found


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
    user_messages: list[ClientEvent] = field(default_factory=list)
    contextual_updates: list[ClientEvent] = field(default_factory=list)
    user_activity: list[ClientEvent] = field(default_factory=list)
    other_messages: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)  # every event the fake sent the client
    # user/assistant messages, and contextual updates ({"role": "context", "content", "context_id", "call_id"})
    history: list[dict[str, Any]] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    close_code: int | None = None  # set when the fake closed the socket
    close_reason: str = ""
    closed: bool = False
    closed_at: float | None = None  # time.time() when the socket ended, whoever closed it
    client_close_code: int | None = None  # the code the client closed with, when it was the client
    black_holed_at: float | None = None  # time.time() of black_hole(): nothing is sent or answered after it
    speaking_until: float = 0.0  # time.time() when the agent's last audio finishes playing
    audio_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    turn_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one turn at a time, in arrival order
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def black_hole(self) -> None:
        """From now on the fake sends nothing (no answer, no ping, no close) and starts no turn, yet keeps the socket
        open and keeps reading: to the client, a connection that silently died."""
        if self.black_holed_at is None:
            self.black_holed_at = time.time()

    def received(self, kind: str) -> list[ClientEvent]:
        return {"user_message": self.user_messages, "contextual_update": self.contextual_updates,
                "user_activity": self.user_activity}[kind]

    def state(self) -> dict[str, Any]:
        """What a test over HTTP may want to know about the conversation."""
        return {"conversation_id": self.conversation_id, "closed": self.closed, "closed_at": self.closed_at,
                "close_code": self.close_code, "client_close_code": self.client_close_code,
                "black_holed_at": self.black_holed_at, "pongs": len(self.pongs), "audio_chunks": self.audio_chunks,
                "turns": [{"source": t.source, "user_transcript": t.user_transcript, "done": t.done,
                           "agent_response": t.agent_response, "llm_status": t.llm_status,
                           "interrupted_agent": t.interrupted_agent} for t in self.turns],
                **{kind: [e.as_json() for e in self.received(kind)] for kind in CLIENT_EVENT_FIELDS}}


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

    def __init__(self, speech_seconds: float = 1.5, ingress: dict[str, str] | None = None,
                 user_activity_pause: float = USER_ACTIVITY_PAUSE_SECONDS,
                 ping_interval_seconds: float | None = None) -> None:
        self.speech_seconds = speech_seconds
        self.ingress: dict[str, str] = dict(ingress or {})  # HTTPS host -> local base URL
        self.user_activity_pause = user_activity_pause
        # ElevenLabs' ping is a "Keepalive ping from server" (agent.asyncapi.yaml, Ping), its interval undocumented:
        # None sends the one ping after the first message, a number sends one every that many seconds as well.
        self.ping_interval_seconds = ping_interval_seconds
        self.directory: AgentDirectory | None = None  # set by FakeElevenLabs
        self.signatures: dict[str, str] = {}  # unused conversation_signature -> its agent
        self.conversations: list[Conversation] = []
        self.rejected: list[str] = []
        self._event_ids = itertools.count(1)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/convai/conversation", self._socket)
        app.router.add_post("/_fake/turn", self._turn)
        app.router.add_get("/_fake/received", self._received)
        app.router.add_get("/_fake/conversation", self._state)
        app.router.add_post("/_fake/black-hole", self._black_hole)
        app.on_shutdown.append(self._shutdown)

    def live(self) -> Conversation | None:
        """The latest conversation whose socket is still open."""
        live = [c for c in self.conversations if not c.closed and c.close_code is None]
        return live[-1] if live else None

    def black_hole(self, conversation: Conversation | None = None) -> Conversation | None:
        """Black-hole that conversation (default: the latest live one); see Conversation.black_hole."""
        conversation = conversation or self.live()
        if conversation is not None:
            conversation.black_hole()
        return conversation

    async def wait_received(self, kind: str, count: int = 1, timeout: float = 10,
                            conversation_id: str | None = None) -> tuple[Conversation | None, list[ClientEvent]]:
        """The events of that kind the conversation (default: the latest) has received, once there are `count` of them
        or `timeout` seconds have passed (then fewer)."""
        deadline = time.monotonic() + timeout
        while True:
            matching = [c for c in self.conversations if conversation_id in (None, c.conversation_id)]
            conversation = matching[-1] if matching else None
            events = conversation.received(kind) if conversation else []
            if len(events) >= count or time.monotonic() >= deadline:
                return conversation, list(events)
            await asyncio.sleep(0.02)

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
            conversation.closed, conversation.closed_at = True, time.time()
            if conversation.close_code is None:
                conversation.client_close_code = socket.close_code
            for task in list(conversation.tasks):  # a turn still waiting for the LLM ends with the conversation
                task.cancel()
        return socket

    async def _shutdown(self, app: web.Application) -> None:
        """The fake stopping closes what is still open (a black-holed socket included) instead of waiting on it."""
        for conversation in self.conversations:
            if not conversation.socket.closed:
                conversation.close_code, conversation.close_reason = aiohttp.WSCloseCode.GOING_AWAY, "fake stopped"
                await conversation.socket.close(code=aiohttp.WSCloseCode.GOING_AWAY)

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
        await self._ping(conversation)
        if self.ping_interval_seconds:
            self._start(conversation, self._keep_pinging(conversation))
        async for message in socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                event = json.loads(message.data)
            except ValueError:
                event = None
            if not isinstance(event, dict):
                if await self._refuse(conversation, "invalid_message", "Invalid JSON message"):
                    return
                continue
            if "user_audio_chunk" in event:
                conversation.audio_chunks += 1
                conversation.audio_bytes += len(base64.b64decode(event["user_audio_chunk"]))
                conversation.audio_arrived.set()
            elif event.get("type") == "pong":
                conversation.pongs.append(event.get("event_id"))
            elif isinstance(event.get("type"), str) and event["type"] in CLIENT_EVENT_FIELDS:
                if await self._client_event(conversation, event):
                    return
            else:
                conversation.other_messages.append(event)

    async def _ping(self, conversation: Conversation) -> None:
        await self._send(conversation, {"type": "ping", "ping_event": {"event_id": next(self._event_ids),
                                                                      "ping_ms": 0}})

    async def _keep_pinging(self, conversation: Conversation) -> None:
        assert self.ping_interval_seconds
        with contextlib.suppress(ConnectionError):  # the client went away between two pings
            while not conversation.socket.closed:
                await asyncio.sleep(self.ping_interval_seconds)
                await self._ping(conversation)

    @staticmethod
    def _start(conversation: Conversation, work: Any) -> None:
        task = asyncio.create_task(work)
        conversation.tasks.add(task)
        task.add_done_callback(conversation.tasks.discard)

    async def _refuse(self, conversation: Conversation, error_type: str, message: str) -> bool:
        """Close the conversation over a malformed client message; True when it was closed (a black-holed one hears
        nothing and says nothing)."""
        if conversation.black_holed_at is not None:
            return False
        await self._fail(conversation, MALFORMED, error_type, message)
        return True

    async def _client_event(self, conversation: Conversation, event: dict[str, Any]) -> bool:
        """A user_message, contextual_update or user_activity: checked, recorded, acted on. True when the conversation
        was closed over it."""
        kind = event["type"]
        for name, (required, types) in CLIENT_EVENT_FIELDS[kind].items():
            if name not in event:
                if required:
                    return await self._refuse(conversation, "missing_fields",
                                              f"Field '{name}' is required in {kind}")
            elif not isinstance(event[name], types):
                return await self._refuse(conversation, "value_error",
                                          f"Field '{name}' of {kind} should be a string")
        received = ClientEvent(event, time.time())
        conversation.received(kind).append(received)
        if conversation.black_holed_at is not None:
            return False  # heard by nobody
        if kind == "contextual_update":
            context_id = event.get("context_id")
            if context_id:  # "only the most recent update with a given context_id is kept in the LLM context"
                conversation.history = [m for m in conversation.history
                                        if m["role"] != "context" or m.get("context_id") != context_id]
            conversation.history.append({"role": "context", "content": event["text"], "context_id": context_id,
                                         "call_id": f"call_context_{next(self._event_ids)}"})
        elif kind == "user_message" and received.text:  # no text: "text-only mode signal", no turn
            llm = _at(conversation.agent, "conversation_config", "agent", "prompt", "custom_llm")
            if llm:  # the fake hosts no LLM of its own: without a custom one, nobody answers
                self._start(conversation, self._typed_turn(conversation, received, llm))
        return False

    async def _typed_turn(self, conversation: Conversation, received: ClientEvent, llm: dict[str, Any]) -> None:
        assert received.text
        with contextlib.suppress(ConnectionError):  # the client went away mid-turn
            await self._run_turn(conversation, received.text, "user_message", llm, received)

    async def _send(self, conversation: Conversation, event: dict[str, Any]) -> None:
        """An event, if the agent sends that kind to clients (`conversation.client_events`); errors always go.
        Nothing goes to a closed or black-holed socket."""
        allowed = _at(conversation.agent, "conversation_config", "conversation", "client_events")
        if event["type"] != "error" and event["type"] not in (allowed or DEFAULT_CLIENT_EVENTS):
            return
        if conversation.black_holed_at is not None or conversation.socket.closed:
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
        if conversation.black_holed_at is not None:
            return  # the close would never arrive: the socket stays open
        conversation.close_code, conversation.close_reason = code, reason
        await conversation.socket.close(code=code, message=reason.encode())

    async def _speak(self, conversation: Conversation, text: str) -> float:
        """The agent says `text`; returns how long a recent user_activity held it back first."""
        held = await self._hold_for_user_activity(conversation)
        event_id = next(self._event_ids)
        await self._send(conversation, {"type": "agent_response",
                                        "agent_response_event": {"agent_response": text, "event_id": event_id}})
        audio = tone(self.speech_seconds)
        step = SAMPLE_RATE * 2 // 4  # quarter-second chunks, as the real service streams them
        for start in range(0, len(audio), step):
            await self._send(conversation, {"type": "audio", "audio_event": {
                "audio_base_64": base64.b64encode(audio[start:start + step]).decode(), "event_id": event_id}})
        conversation.speaking_until = time.time() + len(audio) / (2 * SAMPLE_RATE)  # what the client now plays
        return held

    async def _hold_for_user_activity(self, conversation: Conversation) -> float:
        """Speech waits until the last user_activity is `user_activity_pause` old: "The agent will pause speaking
        for ~2 seconds after receiving this signal" (react-native.mdx)."""
        held = 0.0
        while conversation.user_activity:
            wait = conversation.user_activity[-1].received_at + self.user_activity_pause - time.time()
            if wait <= 0:
                break
            await asyncio.sleep(wait)
            held += wait
        return held

    async def _turn(self, request: web.Request) -> web.Response:
        """The test says what the person just said; answers once the agent has spoken the reply."""
        body = await request.json()
        conversation = self.live()
        if conversation is None:
            return web.json_response({"error": "no open conversation"}, status=409)
        if conversation.black_holed_at is not None:
            return web.json_response({"error": "the conversation is black-holed: nothing is heard"}, status=409)
        llm = _at(conversation.agent, "conversation_config", "agent", "prompt", "custom_llm")
        if not llm:  # the fake hosts no LLM of its own
            return web.json_response({"error": "the agent has no custom LLM"}, status=409)
        # Hearing needs a microphone: fresh audio must arrive from the page before anything is "said".
        try:
            await asyncio.wait_for(self._fresh_audio(conversation), timeout=10)
        except TimeoutError:
            return web.json_response({"error": "no microphone audio arrived"}, status=409)
        turn = await self._run_turn(conversation, body["text"], "speech", llm)
        return web.json_response({"conversation_id": conversation.conversation_id, "llm_status": turn.llm_status,
                                  "llm_attempts": len(turn.attempts), "agent_response": turn.agent_response,
                                  "audio_chunks": conversation.audio_chunks, "close_code": conversation.close_code})

    async def _run_turn(self, conversation: Conversation, text: str, source: str, llm: dict[str, Any],
                        received: ClientEvent | None = None) -> Turn:
        """A user turn, spoken or typed: the custom LLM called with the conversation so far, the answer spoken.

        One at a time, in arrival order: what the person says or types while the LLM is still answering waits for
        that answer (ElevenLabs documents nothing for that case: assumed). What arrives while the agent is still
        speaking interrupts it first: `interruption` ("User interrupted agent speech", agent.asyncapi.yaml), as typed
        input does to the agent's first message in ElevenLabs' own widget ("immediately interrupted by the user
        input", convai-widget-core/src/contexts/conversation.tsx). The interrupted answer stays whole in the history
        (ElevenLabs truncates it, agent_response_correction; not modelled)."""
        turn = Turn(text, source)
        async with conversation.turn_lock:
            if received is not None:
                received.turn = turn
            if conversation.closed or conversation.close_code is not None or conversation.black_holed_at is not None:
                turn.done = True
                return turn  # nobody is listening any more
            conversation.turns.append(turn)
            if time.time() < conversation.speaking_until:
                turn.interrupted_agent = True
                conversation.speaking_until = 0.0
                await self._send(conversation, {"type": "interruption",
                                                "interruption_event": {"event_id": next(self._event_ids)}})
            if source == "speech":  # typed text is not echoed back (see the client-to-server notes at the top)
                await self._send(conversation, {"type": "user_transcript", "user_transcription_event": {
                    "user_transcript": text, "event_id": next(self._event_ids)}})
            conversation.history.append({"role": "user", "content": text})
            answer = await self._ask_custom_llm(conversation, turn, llm)
            if answer is None:
                await self._fail(conversation, LLM_FAILED, "custom_llm_error", LLM_FAILED_REASON)
            else:
                turn.agent_response, turn.tool_calls = answer.text, answer.tool_calls
                if answer.text:
                    conversation.history.append({"role": "assistant", "content": answer.text})
                    turn.held_seconds = await self._speak(conversation, answer.text)
                await self._run_tools(conversation, answer.tool_calls)
            turn.done = True
            return turn

    async def _received(self, request: web.Request) -> web.Response:
        """What the client sent: `type` (user_message, contextual_update or user_activity), at least `count` of them
        (default 1), waiting up to `timeout` seconds (default 10); 408 with what did arrive when too few did."""
        kind = request.query.get("type", "user_message")
        if kind not in CLIENT_EVENT_FIELDS:
            return web.json_response({"error": f"type must be one of {sorted(CLIENT_EVENT_FIELDS)}"}, status=400)
        try:
            count, timeout = int(request.query.get("count", "1")), float(request.query.get("timeout", "10"))
        except ValueError:
            return web.json_response({"error": "count and timeout must be numbers"}, status=400)
        conversation, events = await self.wait_received(kind, count, timeout, request.query.get("conversation_id"))
        if conversation is None:
            return web.json_response({"error": "no conversation", "events": []}, status=408)
        return web.json_response({**conversation.state(), "events": [e.as_json() for e in events]},
                                 status=200 if len(events) >= count else 408)

    async def _state(self, request: web.Request) -> web.Response:
        if not self.conversations:
            return web.json_response({"error": "no conversation"}, status=409)
        return web.json_response(self.conversations[-1].state())

    async def _black_hole(self, request: web.Request) -> web.Response:
        conversation = self.black_hole()
        if conversation is None:
            return web.json_response({"error": "no open conversation"}, status=409)
        return web.json_response(conversation.state())

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
            body["input"] = [system, *[item for m in conversation.history for item in _response_items(m)]]
            body["stream"] = True
            body["temperature"] = prompt.get("temperature", 0)
            if max_tokens > 0:
                body["max_output_tokens"] = max(max_tokens, 16)
            if tools:
                body["tools"] = [{"type": "function", "name": name, "description": description,
                                  "parameters": parameters, "strict": False} for name, description, parameters in tools]
        else:
            # As in "Example Request with System Tools" and "Custom LLM Parameters" (custom-llm/overview.mdx).
            body["messages"] = [system, *[message for m in conversation.history for message in _chat_messages(m)]]
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


def _chat_messages(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """One history entry as Chat Completions messages. A contextual update is "incorporated as tool calls in
    conversation history" (websocket.mdx): an assistant tool call, then the tool message carrying the text."""
    if entry["role"] != "context":
        return [{"role": entry["role"], "content": entry["content"]}]
    return [{"role": "assistant", "tool_calls": [{"id": entry["call_id"], "type": "function", "function": {
                "name": CONTEXTUAL_UPDATE_TOOL, "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": entry["call_id"], "content": entry["content"]}]


def _response_items(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The same as Responses input items: a `function_call`, then its `function_call_output`."""
    if entry["role"] != "context":
        return [{"role": entry["role"], "content": entry["content"]}]
    return [{"type": "function_call", "call_id": entry["call_id"], "name": CONTEXTUAL_UPDATE_TOOL, "arguments": "{}"},
            {"type": "function_call_output", "call_id": entry["call_id"], "output": entry["content"]}]


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
