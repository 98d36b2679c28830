"""A fake ElevenLabs conversation WebSocket: what the page's `@elevenlabs/react` talks to.

It speaks ElevenLabs' real message types on `/v1/convai/conversation` (subprotocol `convai`):
the client opens with `conversation_initiation_client_data`, gets `conversation_initiation_metadata`,
the first message as `agent_response` + `audio`, a `ping` it must answer with `pong`, and then
streams the microphone as `user_audio_chunk`. Speech recognition is the test's job: a test asks the
fake to "hear" a sentence (`POST /_fake/turn`), and the fake does what ElevenLabs does with a
finished utterance: `user_transcript` to the page, a streaming call to the agent's custom LLM with
the bearer key and `elevenlabs_extra_body`, then the answer as `agent_response` and `audio`.
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
from typing import Any

import aiohttp
from aiohttp import web

SAMPLE_RATE = 16_000


@dataclass
class CustomLlm:
    """The agent's custom LLM settings, as the operator or a person would set them in ElevenLabs."""

    url: str  # base URL ending in /v1, as configured in the agent
    api_key: str
    model: str = "gpt-4o-mini"
    prompt: str = "You are a helpful guide. Describe what the user shows you."
    first_message: str = "Hi! Show me something."


@dataclass
class Turn:
    user_transcript: str
    llm_status: int = 0
    agent_response: str = ""
    llm_request: dict[str, Any] = field(default_factory=dict)


@dataclass
class Conversation:
    conversation_id: str
    agent_id: str
    socket: web.WebSocketResponse
    initiation: dict[str, Any] = field(default_factory=dict)
    audio_chunks: int = 0
    audio_bytes: int = 0
    pongs: list[int] = field(default_factory=list)
    other_messages: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, str]] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    closed: bool = False
    audio_arrived: asyncio.Event = field(default_factory=asyncio.Event)


def tone(seconds: float, frequency: float = 440.0) -> bytes:
    """Little-endian 16-bit PCM at 16 kHz, the `pcm_16000` format the fake announces."""
    samples = int(SAMPLE_RATE * seconds)
    return b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * frequency * n / SAMPLE_RATE)))
                    for n in range(samples))


class FakeConversations:
    """Routes for the conversation socket and the test's control endpoint, added to the REST fake's app."""

    def __init__(self, custom_llm: CustomLlm | None = None, speech_seconds: float = 1.5) -> None:
        self.custom_llm = custom_llm
        self.speech_seconds = speech_seconds
        self.issued_signatures: set[str] = set()
        self.conversations: list[Conversation] = []
        self.rejected: list[str] = []
        self._event_ids = itertools.count(1)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/convai/conversation", self._socket)
        app.router.add_post("/_fake/turn", self._turn)

    def issue_signature(self) -> str:
        signature = secrets.token_urlsafe(24)
        self.issued_signatures.add(signature)
        return signature

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        signature = request.query.get("conversation_signature", "")
        if signature not in self.issued_signatures:
            self.rejected.append(request.query_string)
            raise web.HTTPForbidden(text="invalid or missing conversation_signature")
        self.issued_signatures.discard(signature)  # a signed URL starts one conversation
        socket = web.WebSocketResponse(protocols=("convai",), heartbeat=None)
        await socket.prepare(request)
        conversation = Conversation("conv_" + secrets.token_hex(8), request.query.get("agent_id", ""), socket)
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
            await socket.close(code=1008, message=b"expected conversation_initiation_client_data")
            return
        conversation.initiation = first
        await socket.send_json({"type": "conversation_initiation_metadata", "conversation_initiation_metadata_event": {
            "conversation_id": conversation.conversation_id,
            "agent_output_audio_format": "pcm_16000",
            "user_input_audio_format": "pcm_16000",
        }})
        if self.custom_llm and self.custom_llm.first_message:
            conversation.history.append({"role": "assistant", "content": self.custom_llm.first_message})
            await self._speak(conversation, self.custom_llm.first_message)
        await socket.send_json({"type": "ping", "ping_event": {"event_id": next(self._event_ids), "ping_ms": 0}})
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

    async def _speak(self, conversation: Conversation, text: str) -> None:
        event_id = next(self._event_ids)
        socket = conversation.socket
        await socket.send_json({"type": "agent_response",
                                "agent_response_event": {"agent_response": text, "event_id": event_id}})
        audio = tone(self.speech_seconds)
        step = SAMPLE_RATE * 2 // 4  # quarter-second chunks, as the real service streams them
        for start in range(0, len(audio), step):
            await socket.send_json({"type": "audio", "audio_event": {
                "audio_base_64": base64.b64encode(audio[start:start + step]).decode(), "event_id": event_id}})

    async def _turn(self, request: web.Request) -> web.Response:
        """The test says what the person just said; answers once the agent has spoken the reply."""
        body = await request.json()
        live = [c for c in self.conversations if not c.closed]
        if not live:
            return web.json_response({"error": "no open conversation"}, status=409)
        conversation = live[-1]
        # Hearing needs a microphone: fresh audio must arrive from the page before anything is "said".
        try:
            await asyncio.wait_for(self._fresh_audio(conversation), timeout=10)
        except TimeoutError:
            return web.json_response({"error": "no microphone audio arrived"}, status=409)
        turn = Turn(body["text"])
        conversation.turns.append(turn)
        await conversation.socket.send_json({"type": "user_transcript", "user_transcription_event": {
            "user_transcript": turn.user_transcript, "event_id": next(self._event_ids)}})
        conversation.history.append({"role": "user", "content": turn.user_transcript})
        await self._ask_custom_llm(conversation, turn)
        if turn.agent_response:
            conversation.history.append({"role": "assistant", "content": turn.agent_response})
            await self._speak(conversation, turn.agent_response)
        return web.json_response({"conversation_id": conversation.conversation_id, "llm_status": turn.llm_status,
                                  "agent_response": turn.agent_response, "audio_chunks": conversation.audio_chunks})

    @staticmethod
    async def _fresh_audio(conversation: Conversation) -> None:
        heard = conversation.audio_chunks
        while conversation.audio_chunks <= heard:
            conversation.audio_arrived.clear()
            await conversation.audio_arrived.wait()

    async def _ask_custom_llm(self, conversation: Conversation, turn: Turn) -> None:
        """The request ElevenLabs makes to a custom LLM: OpenAI chat completions, streaming, bearer key."""
        if self.custom_llm is None:
            raise web.HTTPConflict(text="no custom LLM configured")
        llm = self.custom_llm
        body: dict[str, Any] = {
            "model": llm.model,
            "messages": [{"role": "system", "content": llm.prompt}, *conversation.history],
            "stream": True,
            "temperature": 0.5,
            "max_tokens": 300,
            "user_id": conversation.conversation_id,
        }
        extra = conversation.initiation.get("custom_llm_extra_body")
        if extra:
            body["elevenlabs_extra_body"] = extra
        turn.llm_request = body
        headers = {"Authorization": f"Bearer {llm.api_key}", "Content-Type": "application/json"}
        parts: list[str] = []
        async with aiohttp.ClientSession() as http, \
                http.post(llm.url.rstrip("/") + "/chat/completions", json=body, headers=headers) as response:
            turn.llm_status = response.status
            if response.status != 200:
                return
            async for raw in response.content:
                line = raw.decode().strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                for choice in json.loads(line[len("data: "):]).get("choices", []):
                    parts.append((choice.get("delta") or {}).get("content") or "")
        turn.agent_response = "".join(parts)
