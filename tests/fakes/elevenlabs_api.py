"""A fake ElevenLabs REST API on loopback: the session endpoints the proxy calls for the page.

Checks `xi-api-key` like the real API and answers with real-shaped bodies and errors
(`{"detail": {"status": ..., "message": ...}}`). `fail_with` makes every call answer that status.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from aiohttp import web

API_KEY = "xi-test-key-0123456789"
AGENT_ID = "agent_01testglimpse"


@dataclass
class Call:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class FakeElevenLabs:
    api_key: str = API_KEY
    agents: set[str] = field(default_factory=lambda: {AGENT_ID})
    calls: list[Call] = field(default_factory=list)
    fail_with: int | None = None
    websocket_base: str = "wss://api.elevenlabs.io"
    runner: web.AppRunner | None = None
    base_url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/convai/conversation/get_signed_url", self._signed_url)
        app.router.add_get("/v1/convai/conversation/token", self._token)
        return app

    async def start(self) -> FakeElevenLabs:
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner:
            await self.runner.cleanup()

    def _check(self, request: web.Request) -> str | web.Response:
        """The agent id asked for, or the error response the real API would give."""
        self.calls.append(Call(request.path, dict(request.query), dict(request.headers)))
        if self.fail_with:
            return _error(self.fail_with, "internal_error", "Something went wrong on our side.")
        if request.headers.get("xi-api-key") != self.api_key:
            return _error(401, "invalid_api_key", "Invalid API key")
        agent_id = request.query.get("agent_id", "")
        if agent_id not in self.agents:
            return _error(404, "agent_not_found", f"Agent {agent_id} not found")
        return agent_id

    async def _signed_url(self, request: web.Request) -> web.Response:
        agent_id = self._check(request)
        if isinstance(agent_id, web.Response):
            return agent_id
        signature = secrets.token_urlsafe(24)
        return web.json_response({"signed_url": f"{self.websocket_base}/v1/convai/conversation?agent_id={agent_id}"
                                                f"&conversation_signature={signature}"})

    async def _token(self, request: web.Request) -> web.Response:
        agent_id = self._check(request)
        if isinstance(agent_id, web.Response):
            return agent_id
        return web.json_response({"token": "eyJ" + secrets.token_urlsafe(48)})


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"detail": {"status": code, "message": message}}, status=status)
