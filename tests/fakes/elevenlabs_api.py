"""A fake ElevenLabs REST API on loopback: the session endpoints the proxy calls for the page.

Checks `xi-api-key` like the real API and answers with real-shaped bodies and errors
(`{"detail": {"status": ..., "message": ...}}`). `fail_with` makes every call answer that status.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.elevenlabs_conversation import FakeConversations
from tests.fakes.loopback import serve_app

API_KEY = "xi-test-key-0123456789"
AGENT_ID = "agent_01testglimpse"


@dataclass
class Call:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    method: str = "GET"
    body: dict[str, Any] | None = None


@dataclass
class FakeElevenLabs:
    api_key: str = API_KEY
    agents: set[str] = field(default_factory=lambda: {AGENT_ID})
    calls: list[Call] = field(default_factory=list)
    created_agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    workspace_secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    fail_with: int | None = None
    websocket_base: str = "wss://api.elevenlabs.io"
    # With conversations, signed URLs point at this fake's own conversation WebSocket.
    conversations: FakeConversations | None = None
    runner: web.AppRunner | None = None
    base_url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/convai/conversation/get-signed-url", self._signed_url)
        app.router.add_get("/v1/convai/conversation/get_signed_url", self._signed_url)  # deprecated, still served
        app.router.add_get("/v1/convai/conversation/token", self._token)
        app.router.add_post("/v1/convai/secrets", self._create_secret)
        app.router.add_delete("/v1/convai/secrets/{secret_id}", self._delete_secret)
        app.router.add_post("/v1/convai/agents/create", self._create_agent)
        app.router.add_route("*", "/v1/convai/agents/{agent_id}", self._agent)
        if self.conversations:
            self.conversations.add_routes(app)
        return app

    def management_calls(self) -> list[Call]:
        return [c for c in self.calls if c.path.startswith(("/v1/convai/agents", "/v1/convai/secrets"))]

    async def _record(self, request: web.Request) -> web.Response | None:
        body = await request.json() if request.can_read_body else None
        self.calls.append(Call(request.path, dict(request.query), dict(request.headers), request.method, body))
        if self.fail_with:
            return _error(self.fail_with, "internal_error", "Something went wrong on our side.")
        if request.headers.get("xi-api-key") != self.api_key:
            return _error(401, "invalid_api_key", "Invalid API key")
        return None

    async def _create_secret(self, request: web.Request) -> web.Response:
        if (failure := await self._record(request)) is not None:
            return failure
        body = self.calls[-1].body or {}
        if body.get("type") != "new" or not body.get("name") or not body.get("value"):
            return _error(422, "invalid_request", "type, name and value are required")
        secret_id = "sec_" + secrets.token_hex(8)
        self.workspace_secrets[secret_id] = {"name": body["name"], "value": body["value"]}
        return web.json_response({"type": "stored", "secret_id": secret_id, "name": body["name"]})

    async def _delete_secret(self, request: web.Request) -> web.Response:
        if (failure := await self._record(request)) is not None:
            return failure
        if self.workspace_secrets.pop(request.match_info["secret_id"], None) is None:
            return _error(404, "secret_not_found", "Secret not found")
        return web.Response(status=204)

    async def _create_agent(self, request: web.Request) -> web.Response:
        if (failure := await self._record(request)) is not None:
            return failure
        body = self.calls[-1].body or {}
        if "conversation_config" not in body:
            return _error(422, "invalid_request", "conversation_config is required")
        agent_id = "agent_" + secrets.token_hex(10)
        self.agents.add(agent_id)
        self.created_agents[agent_id] = body
        return web.json_response({"agent_id": agent_id})

    async def _agent(self, request: web.Request) -> web.Response:
        if (failure := await self._record(request)) is not None:
            return failure
        agent_id = request.match_info["agent_id"]
        if agent_id not in self.agents:
            return _error(404, "agent_not_found", f"Agent {agent_id} not found")
        if request.method == "GET":
            return web.json_response({"agent_id": agent_id, **self.created_agents.get(agent_id, {})})
        if request.method == "PATCH":
            self.created_agents[agent_id] = {**self.created_agents.get(agent_id, {}), **(self.calls[-1].body or {})}
            return web.json_response({"agent_id": agent_id, **self.created_agents[agent_id]})
        if request.method == "DELETE":
            self.agents.discard(agent_id)
            self.created_agents.pop(agent_id, None)
            return web.Response(status=204)
        return _error(405, "method_not_allowed", "Method not allowed")

    async def start(self) -> FakeElevenLabs:
        self.runner, port = await serve_app(self.app())
        self.base_url = f"http://127.0.0.1:{port}"
        if self.conversations:
            self.websocket_base = f"ws://127.0.0.1:{port}"
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
        signature = self.conversations.issue_signature() if self.conversations else secrets.token_urlsafe(24)
        return web.json_response({"signed_url": f"{self.websocket_base}/v1/convai/conversation?agent_id={agent_id}"
                                                f"&conversation_signature={signature}"})

    async def _token(self, request: web.Request) -> web.Response:
        agent_id = self._check(request)
        if isinstance(agent_id, web.Response):
            return agent_id
        return web.json_response({"token": "eyJ" + secrets.token_urlsafe(48)})


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"detail": {"status": code, "message": message}}, status=status)
