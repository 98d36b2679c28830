"""The ElevenLabs API client of the operator: the calls it makes, on workspace secrets and agents.

Besides create, update and delete, two look-ups find what an earlier reconcile created but could not record
(`find_agents`, `find_secrets`). Their shapes are ElevenLabs' own, as its generated Python client declares them
(elevenlabs/elevenlabs-python, src/elevenlabs/conversational_ai/{agents,secrets}/raw_client.py and
src/elevenlabs/types/get_agents_page_response_model.py, get_workspace_secrets_response_model.py):

- `GET /v1/convai/agents?page_size=1..100&cursor=…` answers `{agents: [{agent_id, name, tags, created_at_unix_secs,
  access_info, last_call_time_unix_secs, archived}], has_more, next_cursor}`. It filters by name (`search`), creator
  and archived status (default: not archived), not by tag: the tag is matched here, page by page.
- `GET /v1/convai/secrets?search=<name prefix>&page_size=…&cursor=…` answers `{secrets: [{type: "stored",
  secret_id, name, used_by: {agents: [{type, id, …}], tools, others, …}}], next_cursor}`.
- `PATCH /v1/convai/secrets/{secret_id}` takes `{type: "update", name, value}`.
"""

from __future__ import annotations

import time
from typing import Any

import requests

from glimpse.elevenlabs.errors import error_detail

from .metrics import OperatorMetrics
from .settings import DEFAULT_ELEVENLABS_BASE_URL

TIMEOUT = (5, 20)
PAGE_SIZE = 100  # the most either list endpoint returns at once ("Can not exceed 100")
MAX_PAGES = 1000  # a workspace of 100,000 agents; a cursor that never ends must not keep a handler forever
REFUSED = (401, 403)  # the key is wrong or lacks the permission: retrying cannot help


class ElevenLabsError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def refused(self) -> bool:
        return self.status in REFUSED


class ElevenLabsClient:
    def __init__(self, api_key: str, base_url: str = DEFAULT_ELEVENLABS_BASE_URL,
                 session: requests.Session | None = None, metrics: OperatorMetrics | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session or requests.Session()
        self._headers = {"xi-api-key": api_key, "Content-Type": "application/json"}
        self._metrics = metrics  # None: not counted

    def _call(self, operation: str, method: str, path: str, body: dict[str, Any] | None = None,
              params: dict[str, str | int] | None = None) -> dict[str, Any]:
        """One request, counted and timed under `operation` (metrics.OPERATIONS)."""
        started = time.perf_counter()
        try:
            response = self._session.request(method, self.base_url + path, json=body, params=params,
                                             headers=self._headers, timeout=TIMEOUT)
        except requests.RequestException as exc:
            self._observe(operation, None, started)
            raise ElevenLabsError(f"ElevenLabs unreachable: {type(exc).__name__}") from None
        self._observe(operation, response.status_code, started)
        if response.status_code >= 400:
            raise ElevenLabsError(f"ElevenLabs {method} {path.split('?')[0]} failed with {response.status_code}: "
                                  f"{error_detail(response.text)}", response.status_code)
        if not response.content:
            return {}
        try:
            data = response.json()
        except ValueError:
            raise ElevenLabsError(f"ElevenLabs {method} {path} answered {response.status_code} with no JSON",
                                  response.status_code) from None
        return data if isinstance(data, dict) else {}

    def _observe(self, operation: str, status: int | None, started: float) -> None:
        if self._metrics is not None:
            self._metrics.elevenlabs_call(operation, status, time.perf_counter() - started)

    def create_secret(self, name: str, value: str) -> str:
        data = self._call("create_secret", "POST", "/v1/convai/secrets",
                          {"type": "new", "name": name, "value": value})
        return str(data["secret_id"])

    def update_secret(self, secret_id: str, name: str, value: str) -> None:
        self._call("update_secret", "PATCH", f"/v1/convai/secrets/{secret_id}",
                   {"type": "update", "name": name, "value": value})

    def delete_secret(self, secret_id: str) -> None:
        self._ignore_missing("delete_secret", "DELETE", f"/v1/convai/secrets/{secret_id}")

    def find_secrets(self, name: str) -> list[dict[str, Any]]:
        """The workspace secrets named exactly `name` (the API's `search` matches a prefix)."""
        found = self._pages("find_secrets", "/v1/convai/secrets", "secrets", {"search": name})
        return [secret for secret in found if secret.get("name") == name]

    def create_agent(self, body: dict[str, Any]) -> str:
        return str(self._call("create_agent", "POST", "/v1/convai/agents/create", body)["agent_id"])

    def get_agent(self, agent_id: str) -> dict[str, Any]:
        return self._call("get_agent", "GET", f"/v1/convai/agents/{agent_id}")

    def update_agent(self, agent_id: str, body: dict[str, Any]) -> None:
        self._call("update_agent", "PATCH", f"/v1/convai/agents/{agent_id}", body)

    def delete_agent(self, agent_id: str) -> None:
        self._ignore_missing("delete_agent", "DELETE", f"/v1/convai/agents/{agent_id}")

    def find_agents(self, tag: str) -> list[dict[str, Any]]:
        """The agents carrying `tag`, oldest first (the list has no tag filter: every page is read)."""
        found = [agent for agent in self._pages("find_agents", "/v1/convai/agents", "agents", {})
                 if tag in (agent.get("tags") or [])]
        return sorted(found, key=lambda agent: (agent.get("created_at_unix_secs") or 0, str(agent.get("agent_id"))))

    def _pages(self, operation: str, path: str, key: str, params: dict[str, str | int]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = self._call(operation, "GET", path, params={**params, "page_size": PAGE_SIZE,
                                                   **({"cursor": cursor} if cursor else {})})
            items += [item for item in page.get(key) or [] if isinstance(item, dict)]
            cursor = page.get("next_cursor")
            # the agents page says has_more; the secrets page ends when next_cursor is null
            if not cursor or page.get("has_more") is False:
                return items
        raise ElevenLabsError(f"ElevenLabs GET {path} did not end after {MAX_PAGES} pages")

    def _ignore_missing(self, operation: str, method: str, path: str) -> None:
        try:
            self._call(operation, method, path)
        except ElevenLabsError as exc:
            if exc.status != 404:
                raise
