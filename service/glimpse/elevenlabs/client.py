"""The ElevenLabs API calls the proxy makes for the page: a signed WebSocket URL or a WebRTC token.

The API key is sent only to ElevenLabs in `xi-api-key`; it never appears in a response or a log line.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from ..errors import ElevenLabsFailed, Unavailable
from .errors import error_detail

log = logging.getLogger(__name__)

SIGNED_URL_PATH = "/v1/convai/conversation/get-signed-url"  # `get_signed_url` is the deprecated spelling
CONVERSATION_TOKEN_PATH = "/v1/convai/conversation/token"  # noqa: S105 (a path, not a secret)


class ElevenLabs:
    def __init__(self, base_url: str, agent_id: str, api_key: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.agent_id = agent_id
        self._api_key = api_key
        self._session: aiohttp.ClientSession | None = None

    @property
    def configured(self) -> bool:
        return bool(self._api_key and self.agent_id)

    async def signed_url(self) -> str:
        data = await self._get(SIGNED_URL_PATH)
        return _string_field(data, "signed_url")

    async def conversation_token(self) -> str:
        data = await self._get(CONVERSATION_TOKEN_PATH)
        return _string_field(data, "token")

    async def _get(self, path: str) -> dict[str, Any]:
        if not self.configured:
            raise Unavailable("This server has no ElevenLabs agent configured "
                              "(set GLIMPSE_ELEVENLABS_API_KEY and GLIMPSE_ELEVENLABS_AGENT_ID).",
                              code="elevenlabs_not_configured")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10, connect=5))
        try:
            async with self._session.get(self.base_url + path, params={"agent_id": self.agent_id},
                                         headers={"xi-api-key": self._api_key}) as response:
                if response.status != 200:
                    detail = error_detail(await response.text())
                    log.warning("ElevenLabs answered %s on %s: %s", response.status, path, detail)
                    raise ElevenLabsFailed(f"ElevenLabs refused the session request ({response.status}): {detail}",
                                           code="elevenlabs_error")
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("ElevenLabs unreachable on %s: %s", path, type(exc).__name__)
            raise ElevenLabsFailed("Could not reach ElevenLabs to start a session.",
                                   code="elevenlabs_unreachable") from None
        except ValueError:
            raise ElevenLabsFailed("ElevenLabs answered with something that is not JSON.",
                                   code="elevenlabs_error") from None
        if not isinstance(data, dict):
            raise ElevenLabsFailed("ElevenLabs answered with an unexpected shape.", code="elevenlabs_error")
        return data

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _string_field(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ElevenLabsFailed(f"ElevenLabs answered without `{name}`.", code="elevenlabs_error")
    return value
