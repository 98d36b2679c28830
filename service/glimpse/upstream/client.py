"""One upstream LLM: a turn's request sent over the pooled hot path (`http.py`), `/models` through the `openai` SDK."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..config import Settings, UpstreamConfig
from ..errors import UpstreamLacksApi, UpstreamRejectedRequest
from .errors import upstream_error
from .http import UpstreamHttp
from .providers import Provider, provider_for
from .sse import ChatCompletionsSse, ResponsesSse
from .stream import UpstreamStream
from .think import ThinkStrippingChatSse, ThinkStrippingResponsesSse, strips_think

if TYPE_CHECKING:
    import openai

NO_RESPONSES_API = ("The upstream LLM ({base_url}) has no Responses API. Set the ElevenLabs agent's custom LLM API "
                    "type to Chat Completions (VoiceAgent spec.llm.apiType: chatCompletions), or point "
                    "GLIMPSE_UPSTREAM_BASE_URL at an upstream that serves /responses.")


class Upstream:
    """One upstream: its name, provider, fixed model (if any) and connection pool."""

    def __init__(self, target: UpstreamConfig, settings: Settings, *, max_retries: int) -> None:
        self.name = target.name
        self.model = target.model
        self.provider: Provider = provider_for(target.provider, target.base_url)
        url = urlsplit(target.base_url)
        self.server_address = url.hostname or ""
        self.server_port = url.port or (443 if url.scheme == "https" else 80)
        # without credentials a URL may carry (user:password@), for span attributes
        self._public_base_url = url._replace(netloc=url.netloc.rpartition("@")[2]).geturl().rstrip("/")
        self._target = target
        self._settings = settings
        self._max_retries = max_retries
        self._max_event_bytes = settings.upstream_max_event_bytes
        self._ask_for_usage = settings.upstream_stream_usage
        self._think_models = settings.strip_think_models
        self.http = UpstreamHttp(target.base_url, self._api_key, connect_timeout=settings.upstream_connect_timeout,
                                 read_timeout=settings.upstream_read_timeout,
                                 keepalive_seconds=settings.upstream_keepalive_seconds, max_retries=max_retries)
        self._sdk: openai.AsyncOpenAI | None = None

    @property
    def _api_key(self) -> str:
        return self._target.api_key.get_secret_value() or "no-key-configured"

    async def open(self, payload: dict[str, Any], extra_headers: dict[str, str] | None = None) -> UpstreamStream:
        """Send the request; a failure before the first byte raises an UpstreamError."""
        hide_usage_chunk = False
        if payload.get("stream") and self._ask_for_usage:
            options = payload.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage")):
                payload = {**payload, "stream_options": {**(options if isinstance(options, dict) else {}),
                                                         "include_usage": True}}
                hide_usage_chunk = True
        response = await self.http.post("/chat/completions", payload, extra_headers)
        strip = self._strips_think(payload)
        dialect = ThinkStrippingChatSse(hide_usage_chunk) if strip else ChatCompletionsSse(hide_usage_chunk)
        return UpstreamStream(response, dialect, self._max_event_bytes)

    async def open_response(self, payload: dict[str, Any],
                            extra_headers: dict[str, str] | None = None) -> UpstreamStream:
        """The same for the Responses API (`POST {base_url}/responses`)."""
        if not self.provider.has_responses_api:
            raise UpstreamLacksApi(NO_RESPONSES_API.format(base_url=self._target.base_url))
        try:
            response = await self.http.post("/responses", payload, extra_headers)
        except UpstreamRejectedRequest as error:
            if error.upstream_status == 404 and error.code is None:
                # a 404 without an OpenAI error code is a server without the route, not a missing model
                raise UpstreamLacksApi(NO_RESPONSES_API.format(base_url=self._target.base_url)) from None
            raise
        dialect = ThinkStrippingResponsesSse() if self._strips_think(payload) else ResponsesSse()
        return UpstreamStream(response, dialect, self._max_event_bytes)

    def _strips_think(self, payload: dict[str, Any]) -> bool:
        """Whether the request's model writes `<think>` blocks into its answer (GLIMPSE_STRIP_THINK_MODELS)."""
        model = payload.get("model")
        return isinstance(model, str) and strips_think(model, self._think_models)

    def url(self, path: str) -> str:
        """The URL of `path` under the base URL, without credentials."""
        return self._public_base_url + path

    async def models(self, extra_headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """The upstream's model list and the status it came with, through the SDK (made on first use: no turn
        needs it)."""
        import openai

        if self._sdk is None:
            self._sdk = openai.AsyncOpenAI(
                base_url=self._target.base_url, api_key=self._api_key, max_retries=self._max_retries,
                timeout=openai.Timeout(self._settings.upstream_read_timeout,
                                       connect=self._settings.upstream_connect_timeout))
        try:
            async with self._sdk.models.with_streaming_response.list(extra_headers=extra_headers) as response:
                body: bytes = await response.read()
                return response.status_code, body
        except openai.APIError as exc:
            raise upstream_error(exc) from None

    async def close(self) -> None:
        await self.http.close()
        if self._sdk is not None:
            await self._sdk.close()
