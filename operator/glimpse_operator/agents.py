"""The ElevenLabs API calls the operator makes: workspace secrets and agents."""

from __future__ import annotations

from typing import Any

import requests

from glimpse.elevenlabs.errors import error_detail

from .settings import DEFAULT_ELEVENLABS_BASE_URL

TIMEOUT = (5, 20)


class ElevenLabsError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AgentsClient:
    def __init__(self, api_key: str, base_url: str = DEFAULT_ELEVENLABS_BASE_URL,
                 session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session or requests.Session()
        self._headers = {"xi-api-key": api_key, "Content-Type": "application/json"}

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self._session.request(method, self.base_url + path, json=body, headers=self._headers,
                                             timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise ElevenLabsError(f"ElevenLabs unreachable: {type(exc).__name__}") from None
        if response.status_code >= 400:
            raise ElevenLabsError(f"ElevenLabs {method} {path.split('?')[0]} failed with {response.status_code}: "
                                  f"{error_detail(response.text)}", response.status_code)
        if not response.content:
            return {}
        data = response.json()
        return data if isinstance(data, dict) else {}

    def create_secret(self, name: str, value: str) -> str:
        data = self._call("POST", "/v1/convai/secrets", {"type": "new", "name": name, "value": value})
        return str(data["secret_id"])

    def delete_secret(self, secret_id: str) -> None:
        self._ignore_missing("DELETE", f"/v1/convai/secrets/{secret_id}")

    def create_agent(self, body: dict[str, Any]) -> str:
        return str(self._call("POST", "/v1/convai/agents/create", body)["agent_id"])

    def get_agent(self, agent_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/convai/agents/{agent_id}")

    def update_agent(self, agent_id: str, body: dict[str, Any]) -> None:
        self._call("PATCH", f"/v1/convai/agents/{agent_id}", body)

    def delete_agent(self, agent_id: str) -> None:
        self._ignore_missing("DELETE", f"/v1/convai/agents/{agent_id}")

    def _ignore_missing(self, method: str, path: str) -> None:
        try:
            self._call(method, path)
        except ElevenLabsError as exc:
            if exc.status != 404:
                raise

