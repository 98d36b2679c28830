"""A fake ElevenLabs REST API on loopback: the session endpoints the proxy calls for the page, and the agents
and workspace-secrets endpoints the operator calls.

Strict where ElevenLabs is strict: `xi-api-key` is checked; agent create and update bodies are validated
against ElevenLabs' own schema (`shared/vendor-spec/elevenlabs.json` beside the clone, roots
`agent_create_request` and `agent_update_request`) and refused the way FastAPI refuses them (422,
`{"detail": [{"loc", "msg", "type"}]}`);
signed URLs are issued only for agents the fake knows, and each one names its agent. Other errors are
ElevenLabs' `{"detail": {"status": ..., "message": ...}}`. `fail_with` makes every call answer that status.

The two list endpoints the operator reads (agents, workspace secrets) answer in the shapes of ElevenLabs' generated
Python client (`AGENTS_PAGE`, `SECRETS_PAGE` below), page by page with opaque cursors, and refuse query values
outside the declared ranges the way FastAPI does.

The agents created here are what `FakeConversations` (when given) runs conversations with.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from tests.fakes.elevenlabs_conversation import FakeConversations
from tests.fakes.loopback import serve_app
from tests.paths import VENDOR_SPEC

API_KEY = "xi-test-key-0123456789"
AGENT_ID = "agent_01testglimpse"  # known to the fake, configuration unknown (made elsewhere, as in the dashboard)

# The workspace-secret body, as ElevenLabs' OpenAPI document declares it (PostWorkspaceSecretRequest in
# elevenlabs/elevenlabs-docs fern/apis/api/openapi.json); the vendor-spec file does not carry this root.
SECRET_REQUEST = {"type": "object", "required": ["type", "name", "value"], "properties": {
    "type": {"type": "string", "const": "new"}, "name": {"type": "string"}, "value": {"type": "string"}}}

SECRET_UPDATE_REQUEST = {"type": "object", "required": ["type", "name", "value"], "properties": {
    "type": {"type": "string", "const": "update"}, "name": {"type": "string"}, "value": {"type": "string"}}}

# The list responses, as elevenlabs/elevenlabs-python (commit 54e58995, 2026-07-23) declares them:
# src/elevenlabs/types/get_agents_page_response_model.py, agent_summary_response_model.py, resource_access_info.py,
# get_workspace_secrets_response_model.py, conv_ai_workspace_stored_secret_config.py,
# conv_ai_stored_secret_dependencies.py, conv_ai_stored_secret_dependencies_agents_item.py.
_ROLE = {"enum": ["admin", "editor", "commenter", "viewer"]}
AGENTS_PAGE = {"type": "object", "required": ["agents", "has_more"], "properties": {
    "agents": {"type": "array", "items": {"type": "object", "required": [
        "agent_id", "name", "tags", "created_at_unix_secs", "access_info"], "properties": {
        "agent_id": {"type": "string"}, "name": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "created_at_unix_secs": {"type": "integer"},
        "access_info": {"type": "object", "required": ["is_creator", "creator_name", "creator_email", "role"],
                        "properties": {"is_creator": {"type": "boolean"}, "creator_name": {"type": "string"},
                                       "creator_email": {"type": "string"}, "role": _ROLE}},
        "last_call_time_unix_secs": {"type": ["integer", "null"]},
        "archived": {"type": ["boolean", "null"]}}}},
    "next_cursor": {"type": ["string", "null"]},
    "has_more": {"type": "boolean"}}}
SECRETS_PAGE = {"type": "object", "required": ["secrets"], "properties": {
    "secrets": {"type": "array", "items": {"type": "object", "required": ["type", "secret_id", "name", "used_by"],
                                           "properties": {
        "type": {"const": "stored"}, "secret_id": {"type": "string"}, "name": {"type": "string"},
        "used_by": {"type": "object", "required": ["tools", "agents", "others"], "properties": {
            "tools": {"type": "array"}, "others": {"type": "array"},
            "agents": {"type": "array", "items": {"type": "object", "required": ["type", "id"], "properties": {
                "type": {"enum": ["available", "unknown"]}, "id": {"type": "string"},
                "name": {"type": "string"}, "created_at_unix_secs": {"type": "integer"},
                "access_level": _ROLE}}}}}}}},
    "next_cursor": {"type": ["string", "null"]}}}
# GET /v1/convai/agents query parameters (agents/raw_client.py `list`): "page_size … Can not exceed 100, defaults
# to 30"; sort_by is AgentSortBy, sort_direction SortDirection (types/agent_sort_by.py, sort_direction.py)
AGENTS_DEFAULT_PAGE_SIZE = 30
AGENT_SORT_BY = ("name", "created_at", "call_count_7d")
SORT_DIRECTIONS = ("asc", "desc")
MAX_PAGE_SIZE = 100  # both lists: "Can not exceed 100"


@cache
def vendor_validator(root: str, vendor: str = "elevenlabs") -> Draft202012Validator:
    """A validator for one `x-roots` entry of a vendor-spec file, with that file's `$defs`."""
    document = json.loads((VENDOR_SPEC / f"{vendor}.json").read_text())  # shared/ beside the clone
    schema = {"$schema": document["$schema"], **document["x-roots"][root], "$defs": document["$defs"]}
    return Draft202012Validator(schema)


def validation_errors(validator: Draft202012Validator, instance: Any, where: str) -> list[dict[str, Any]]:
    """FastAPI's 422 `detail` items (pydantic's type and message words) for what the schema refuses.

    ElevenLabs' API is FastAPI: every endpoint of its OpenAPI document answers 422 with HTTPValidationError,
    `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}` (elevenlabs-docs fern/apis/api/openapi.json).
    """
    found = [leaf for error in validator.iter_errors(instance) for leaf in _branch_errors(error)]
    return [_detail(error, where) for error in sorted(found, key=lambda e: [str(p) for p in e.absolute_path])]


def _branch_errors(error: ValidationError) -> list[ValidationError]:
    """For `anyOf` (`X` or null, mostly): the errors of the branch that got furthest into the value."""
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        return [error]
    furthest = max(error.context, key=lambda e: (len(e.relative_path), e.validator != "type"))
    branch = furthest.relative_schema_path[0]
    return [leaf for e in error.context if e.relative_schema_path[0] == branch for leaf in _branch_errors(e)]


def _detail(error: ValidationError, where: str) -> dict[str, Any]:
    loc: list[str | int] = [where, *error.absolute_path]
    kind, message = "value_error", error.message
    if error.validator == "required":
        missing = error.message.split("'")[1]
        loc, kind, message = [*loc, missing], "missing", "Field required"
    elif error.validator == "type":
        kind, word = {"string": ("string_type", "string"), "integer": ("int_type", "integer"),
                      "number": ("float_type", "number"), "boolean": ("bool_type", "boolean"),
                      "object": ("dict_type", "dictionary"), "array": ("list_type", "list"),
                      "null": ("none_required", "None")}.get(str(error.validator_value), ("type_error", "value"))
        message = "Input should be None" if kind == "none_required" else f"Input should be a valid {word}"
    elif error.validator in ("enum", "const"):
        allowed = error.validator_value if error.validator == "enum" else [error.validator_value]
        kind, message = "literal_error", "Input should be " + " or ".join(repr(v) for v in allowed)
    elif error.validator == "pattern":
        kind, message = "string_pattern_mismatch", f"String should match pattern '{error.validator_value}'"
    elif error.validator == "maxItems":
        kind, message = "too_long", f"List should have at most {error.validator_value} items"
    return {"type": kind, "loc": loc, "msg": message, "input": error.instance}


def _deep_merge(stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """PATCH semantics: objects merge key by key, anything else (lists included) is replaced."""
    merged = copy.deepcopy(stored)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


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
    agents: set[str] = field(default_factory=lambda: {AGENT_ID})  # every agent the fake knows
    calls: list[Call] = field(default_factory=list)
    created_agents: dict[str, dict[str, Any]] = field(default_factory=dict)  # configurations, by agent id
    workspace_secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    created_at: dict[str, int] = field(default_factory=dict)  # agent id -> created_at_unix_secs
    fail_with: int | None = None
    latency: float = 0.0  # seconds each agents or secrets call takes (a slow API makes races visible)
    websocket_base: str = "wss://api.elevenlabs.io"
    # With conversations, signed URLs point at this fake's own conversation WebSocket.
    conversations: FakeConversations | None = None
    runner: web.AppRunner | None = None
    base_url: str = ""
    _order: itertools.count = field(default_factory=itertools.count)  # creation order, for the lists
    _created: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.conversations:
            self.conversations.directory = self

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/convai/conversation/get-signed-url", self._signed_url)
        app.router.add_get("/v1/convai/conversation/get_signed_url", self._signed_url)  # deprecated, still served
        app.router.add_get("/v1/convai/conversation/token", self._token)
        app.router.add_post("/v1/convai/secrets", self._create_secret)
        app.router.add_get("/v1/convai/secrets", self._list_secrets)
        app.router.add_patch("/v1/convai/secrets/{secret_id}", self._update_secret)
        app.router.add_delete("/v1/convai/secrets/{secret_id}", self._delete_secret)
        app.router.add_post("/v1/convai/agents/create", self._create_agent)
        app.router.add_get("/v1/convai/agents", self._list_agents)
        app.router.add_route("*", "/v1/convai/agents/{agent_id}", self._agent)
        if self.conversations:
            self.conversations.add_routes(app)
        return app

    # What FakeConversations looks up: the agent behind a signed URL, and a workspace secret's value.
    def agent_config(self, agent_id: str) -> dict[str, Any] | None:
        """A known agent's configuration ({}, all defaults, for one made elsewhere); None for an unknown one."""
        return copy.deepcopy(self.created_agents.get(agent_id, {})) if agent_id in self.agents else None

    def secret_value(self, secret_id: str) -> str | None:
        secret = self.workspace_secrets.get(secret_id)
        return secret["value"] if secret else None

    def management_calls(self) -> list[Call]:
        return [c for c in self.calls if c.path.startswith(("/v1/convai/agents", "/v1/convai/secrets"))]

    async def _record(self, request: web.Request) -> web.Response | None:
        try:
            body = await request.json() if request.can_read_body else None
        except ValueError:
            body = None
        self.calls.append(Call(request.path, dict(request.query), dict(request.headers), request.method, body))
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.fail_with:
            return _error(self.fail_with, "internal_error", "Something went wrong on our side.")
        if request.headers.get("xi-api-key") != self.api_key:
            return _error(401, "invalid_api_key", "Invalid API key")
        if request.can_read_body and not isinstance(body, dict):
            return _invalid([{"type": "json_invalid", "loc": ["body"], "msg": "JSON decode error", "input": None}])
        return None

    async def _create_secret(self, request: web.Request) -> web.Response:
        if (failure := await self._record(request)) is not None:
            return failure
        body = self.calls[-1].body
        if errors := validation_errors(Draft202012Validator(SECRET_REQUEST), body, "body"):
            return _invalid(errors)
        assert body is not None
        secret_id = "sec_" + secrets.token_hex(8)
        self.workspace_secrets[secret_id] = {"name": body["name"], "value": body["value"]}
        self._created[secret_id] = next(self._order)
        return web.json_response({"type": "stored", "secret_id": secret_id, "name": body["name"]})

    async def _update_secret(self, request: web.Request) -> web.Response:
        """PATCH /v1/convai/secrets/{secret_id}: `{type: "update", name, value}` (secrets/raw_client.py `update`)."""
        if (failure := await self._record(request)) is not None:
            return failure
        body = self.calls[-1].body
        if errors := validation_errors(Draft202012Validator(SECRET_UPDATE_REQUEST), body, "body"):
            return _invalid(errors)
        assert body is not None
        secret_id = request.match_info["secret_id"]
        if secret_id not in self.workspace_secrets:
            return _error(404, "secret_not_found", "Secret not found")
        self.workspace_secrets[secret_id] = {"name": body["name"], "value": body["value"]}
        return web.json_response({"type": "stored", "secret_id": secret_id, "name": body["name"]})

    def secret_users(self, secret_id: str) -> list[str]:
        """The agents whose custom LLM key is this workspace secret (what ElevenLabs reports in `used_by`)."""
        return [agent_id for agent_id, config in self.created_agents.items()
                if ((((config.get("conversation_config") or {}).get("agent") or {}).get("prompt") or {})
                    .get("custom_llm") or {}).get("api_key", {}).get("secret_id") == secret_id]

    async def _list_secrets(self, request: web.Request) -> web.Response:
        """GET /v1/convai/secrets: `search` keeps the names starting with it; no `page_size`, every secret."""
        if (failure := await self._record(request)) is not None:
            return failure
        page_size, errors = _bounded_int(request.query, "page_size", None)
        _, more = _bounded_int(request.query, "dependency_limit", None)
        offset, cursor_errors = _cursor(request.query)
        if errors := errors + more + cursor_errors:
            return _invalid(errors)
        prefix = request.query.get("search", "")
        found = sorted((sid for sid, s in self.workspace_secrets.items() if s["name"].startswith(prefix)),
                       key=lambda sid: self._created.get(sid, -1))
        end = len(found) if page_size is None else offset + page_size
        listed = [{"type": "stored", "secret_id": sid, "name": self.workspace_secrets[sid]["name"],
                   "used_by": {"tools": [], "others": [], "agents": [
                       {"type": "available", "id": agent_id, "name": self.created_agents[agent_id].get("name") or "",
                        "created_at_unix_secs": self.created_at.get(agent_id, 0), "access_level": "admin"}
                       for agent_id in self.secret_users(sid)]}}
                  for sid in found[offset:end]]
        return web.json_response({"secrets": listed, "next_cursor": _next_cursor(end) if end < len(found) else None})

    async def _list_agents(self, request: web.Request) -> web.Response:
        """GET /v1/convai/agents: newest first unless sort_by/sort_direction say otherwise; archived agents only when
        `archived=true` (the fake archives none); `search` matches the name. No tag filter (the API has none)."""
        if (failure := await self._record(request)) is not None:
            return failure
        page_size, errors = _bounded_int(request.query, "page_size", AGENTS_DEFAULT_PAGE_SIZE)
        offset, cursor_errors = _cursor(request.query)
        errors += cursor_errors
        for key, allowed in (("sort_by", AGENT_SORT_BY), ("sort_direction", SORT_DIRECTIONS)):
            if key in request.query and request.query[key] not in allowed:
                errors.append({"type": "enum", "loc": ["query", key], "input": request.query[key],
                               "msg": "Input should be " + " or ".join(repr(v) for v in allowed)})
        archived = request.query.get("archived", "false").lower()
        if archived not in _BOOLEAN_WORDS:
            errors.append({"type": "bool_parsing", "loc": ["query", "archived"], "input": request.query["archived"],
                           "msg": "Input should be a valid boolean, unable to interpret input"})
        if errors:
            return _invalid(errors)
        assert page_size is not None
        search = request.query.get("search", "").lower()
        agents = [] if _BOOLEAN_WORDS[archived] else [
            a for a in self.agents if search in (self.created_agents.get(a, {}).get("name") or "").lower()]
        by_name = request.query.get("sort_by") == "name"
        agents.sort(key=lambda a: (self.created_agents.get(a, {}).get("name") or "") if by_name
                    else (self.created_at.get(a, 0), self._created.get(a, -1)),
                    reverse=request.query.get("sort_direction", "asc" if by_name else "desc") == "desc")
        end = offset + page_size
        listed = [{"agent_id": a, "name": self.created_agents.get(a, {}).get("name") or "",
                   "tags": list(self.created_agents.get(a, {}).get("tags") or []),
                   "created_at_unix_secs": self.created_at.get(a, 0),
                   "access_info": {"is_creator": True, "creator_name": "Glimpse tests",
                                   "creator_email": "tests@glimpse.invalid", "role": "admin"},
                   "last_call_time_unix_secs": None, "archived": False}
                  for a in agents[offset:end]]
        has_more = end < len(agents)
        return web.json_response({"agents": listed, "next_cursor": _next_cursor(end) if has_more else None,
                                  "has_more": has_more})

    async def _delete_secret(self, request: web.Request) -> web.Response:
        if (failure := await self._record(request)) is not None:
            return failure
        if self.workspace_secrets.pop(request.match_info["secret_id"], None) is None:
            return _error(404, "secret_not_found", "Secret not found")
        return web.Response(status=204)

    async def _create_agent(self, request: web.Request) -> web.Response:
        if (failure := await self._record(request)) is not None:
            return failure
        body = self.calls[-1].body
        # POST /v1/convai/agents/create takes Body_Create_Agent_v1_convai_agents_create_post (vendor spec)
        if errors := validation_errors(vendor_validator("agent_create_request"), body, "body"):
            return _invalid(errors)
        assert body is not None
        agent_id = "agent_" + secrets.token_hex(10)
        self.agents.add(agent_id)
        self.created_agents[agent_id] = body
        self.created_at[agent_id] = int(time.time())
        self._created[agent_id] = next(self._order)
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
            body = self.calls[-1].body
            # PATCH /v1/convai/agents/{agent_id} takes Body_Patches_an_Agent_settings_... (vendor spec); the
            # patch's objects must also make a valid agent once merged ("Patches an Agent settings")
            merged = _deep_merge(self.created_agents.get(agent_id, {}), body or {})
            errors = validation_errors(vendor_validator("agent_update_request"), body, "body") or [
                e for e in validation_errors(vendor_validator("agent_create_request"), merged, "body")
                if e["loc"][1:2] != ["conversation_config"] or e["type"] != "missing"]
            if errors:
                return _invalid(errors)
            self.created_agents[agent_id] = merged
            return web.json_response({"agent_id": agent_id, **merged})
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
        if "agent_id" not in request.query:  # a required query parameter (ElevenLabs' OpenAPI document)
            return _invalid([{"type": "missing", "loc": ["query", "agent_id"], "msg": "Field required",
                              "input": None}])
        agent_id = request.query["agent_id"]
        if agent_id not in self.agents:
            return _error(404, "agent_not_found", f"Agent {agent_id} not found")
        return agent_id

    async def _signed_url(self, request: web.Request) -> web.Response:
        agent_id = self._check(request)
        if isinstance(agent_id, web.Response):
            return agent_id
        # The URL names its agent, and its signature is bound to that agent (one conversation each).
        signature = (self.conversations.issue_signature(agent_id) if self.conversations
                     else secrets.token_urlsafe(24))
        return web.json_response({"signed_url": f"{self.websocket_base}/v1/convai/conversation?agent_id={agent_id}"
                                                f"&conversation_signature={signature}"})

    async def _token(self, request: web.Request) -> web.Response:
        agent_id = self._check(request)
        if isinstance(agent_id, web.Response):
            return agent_id
        return web.json_response({"token": "eyJ" + secrets.token_urlsafe(48)})


_BOOLEAN_WORDS = {"true": True, "1": True, "yes": True, "on": True, "t": True, "y": True,
                  "false": False, "0": False, "no": False, "off": False, "f": False, "n": False}


def _bounded_int(query: Any, key: str, default: int | None) -> tuple[int | None, list[dict[str, Any]]]:
    """An integer query parameter in 1..MAX_PAGE_SIZE, refused as FastAPI (pydantic) refuses it."""
    if key not in query:
        return default, []
    raw = query[key]
    try:
        value = int(raw)
    except ValueError:
        return default, [{"type": "int_parsing", "loc": ["query", key], "input": raw,
                          "msg": "Input should be a valid integer, unable to parse string as an integer"}]
    if value < 1:
        return default, [{"type": "greater_than_equal", "loc": ["query", key], "input": raw,
                          "msg": "Input should be greater than or equal to 1"}]
    if value > MAX_PAGE_SIZE:
        return default, [{"type": "less_than_equal", "loc": ["query", key], "input": raw,
                          "msg": f"Input should be less than or equal to {MAX_PAGE_SIZE}"}]
    return value, []


def _next_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"fake-offset:{offset}".encode()).decode()


def _cursor(query: Any) -> tuple[int, list[dict[str, Any]]]:
    """Where a page starts: the fake's cursors are opaque to the caller, and only its own are accepted."""
    if not query.get("cursor"):
        return 0, []
    try:
        text = base64.urlsafe_b64decode(query["cursor"].encode()).decode()
        if text.startswith("fake-offset:"):
            return int(text.removeprefix("fake-offset:")), []
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    return 0, [{"type": "value_error", "loc": ["query", "cursor"], "input": query["cursor"],
                "msg": "Value error, invalid cursor"}]


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"detail": {"status": code, "message": message}}, status=status)


def _invalid(detail: list[dict[str, Any]]) -> web.Response:
    return web.json_response({"detail": detail}, status=422)
