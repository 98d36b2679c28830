"""A new conversation for the page: its id, an upload token bound to it, and the way to reach the agent."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from typing import Any, Literal

from ..auth import Signer
from ..elevenlabs.client import ElevenLabs
from ..errors import InvalidRequest

Transport = Literal["websocket", "webrtc"]
TRANSPORTS: tuple[Transport, ...] = ("websocket", "webrtc")
NO_AGENT_WARNING = "No ElevenLabs agent is configured on this server: uploads and chat work, voice does not."
DEMO_MODEL_WARNING = ("No upstream LLM is configured on this server: answers come from the built-in demo model, "
                      "which measures pictures (size, colours, brightness) and does not understand them.")


def require_transport(value: str) -> Transport:
    if value not in TRANSPORTS:
        raise InvalidRequest("`transport` must be websocket or webrtc.", param="transport")
    return value


@dataclass(frozen=True)
class PageSession:
    session_id: str
    session_key: str
    upload_token: str
    upload_token_expires_at: int
    agent_id: str | None
    transport: Transport
    max_images: int
    signed_url: str | None = None
    conversation_token: str | None = None
    warning: str | None = None
    demo_model: bool = False  # the answers come from the built-in demo model, not an LLM
    voice: bool = True  # an ElevenLabs agent is configured: the page can start a voice conversation

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "session_id": self.session_id, "session_key": self.session_key, "upload_token": self.upload_token,
            "upload_token_expires_at": self.upload_token_expires_at, "agent_id": self.agent_id,
            "transport": self.transport, "max_images": self.max_images, "demo_model": self.demo_model,
            "voice": self.voice,
        }
        for name in ("signed_url", "conversation_token", "warning"):
            if getattr(self, name) is not None:
                body[name] = getattr(self, name)
        return body


class PageSessions:
    """The ElevenLabs API key stays here: the page gets a signed URL or a conversation token, never the key."""

    def __init__(self, signer: Signer, elevenlabs: ElevenLabs, upload_token_ttl_seconds: int, max_images: int, *,
                 demo_model: bool = False) -> None:
        self._signer = signer
        self._demo_model = demo_model
        self._max_images = max_images
        self._elevenlabs = elevenlabs
        self._token_ttl = upload_token_ttl_seconds

    async def start(self, transport: Transport, *, voice: bool = True) -> PageSession:
        """A new session; with `voice` false (a typed conversation, or a page asking whether voice exists) nothing is
        asked of ElevenLabs: the session only says whether voice is there."""
        session_id = secrets.token_urlsafe(18)
        token = self._signer.upload_token(session_id, self._token_ttl)
        demo_warning = DEMO_MODEL_WARNING if self._demo_model else None
        session = PageSession(session_id, self._signer.session_key(session_id), token.value, token.expires_at,
                              self._elevenlabs.agent_id or None, transport, self._max_images, warning=demo_warning,
                              demo_model=self._demo_model)
        if not self._elevenlabs.configured:
            return replace(session, voice=False, warning=" ".join(filter(None, (NO_AGENT_WARNING, demo_warning))))
        if not voice:
            return session
        if transport == "webrtc":
            return replace(session, conversation_token=await self._elevenlabs.conversation_token())
        return replace(session, signed_url=await self._elevenlabs.signed_url())

