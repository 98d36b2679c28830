"""One upstream LLM, reached with the `openai` SDK (auth, retries, base URL handling)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import openai

from ..config import Settings, UpstreamConfig
from ..errors import UpstreamLacksApi, UpstreamRejectedRequest
from .errors import upstream_error
from .providers import Provider, provider_for
from .sse import ChatCompletionsSse, ResponsesSse
from .stream import UpstreamStream

NO_RESPONSES_API = ("The upstream LLM ({base_url}) has no Responses API. Set the ElevenLabs agent's custom LLM API "
                    "type to Chat Completions (VoiceAgent spec.llm.apiType: chatCompletions), or point "
                    "GLIMPSE_UPSTREAM_BASE_URL at an upstream that serves /responses.")


class Upstream:
    """One upstream: its name, provider, fixed model (if any) and SDK client."""

    def __init__(self, target: UpstreamConfig, settings: Settings, *, max_retries: int) -> None:
        self.name = target.name
        self.model = target.model
        self.provider: Provider = provider_for(target.provider, target.base_url)
        self.server_address = urlsplit(target.base_url).hostname or ""
        self._base_url = target.base_url
        self._max_event_bytes = settings.upstream_max_event_bytes
        self._ask_for_usage = settings.upstream_stream_usage
        timeout = openai.Timeout(settings.upstream_read_timeout, connect=settings.upstream_connect_timeout)
        self.client = openai.AsyncOpenAI(
            base_url=target.base_url,
            api_key=target.api_key.get_secret_value() or "no-key-configured",
            max_retries=max_retries,
            timeout=timeout,
            # aiohttp as the SDK's transport: one pooled keep-alive connector, and a fraction of the CPU the
            # default transport spends per request (measured with bench/run.py)
            http_client=openai.DefaultAioHttpClient(timeout=timeout),
        )

    async def open(self, payload: dict[str, Any], extra_headers: dict[str, str] | None = None) -> UpstreamStream:
        """Send the request; a failure before the first byte raises an UpstreamError."""
        payload = dict(payload)
        model, messages, stream = payload.pop("model"), payload.pop("messages"), bool(payload.pop("stream", False))
        hide_usage_chunk = False
        if stream and self._ask_for_usage:
            options = payload.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage")):
                payload["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
                hide_usage_chunk = True
        # `messages` travels in extra_body: the SDK then sends it as it is instead of walking every message
        # through its typed-dict transform, which cost more per request than the rest of the proxy (bench/).
        # The caller's messages were already validated; the bytes on the wire are the same.
        manager = self.client.chat.completions.with_streaming_response.create(
            model=model, messages=[], stream=stream, extra_body={**payload, "messages": messages},
            extra_headers=extra_headers)
        try:
            response = await manager.__aenter__()
        except openai.APIError as exc:
            raise upstream_error(exc) from None
        return UpstreamStream(manager, response, ChatCompletionsSse(hide_usage_chunk), self._max_event_bytes)

    async def open_response(self, payload: dict[str, Any],
                            extra_headers: dict[str, str] | None = None) -> UpstreamStream:
        """The same for the Responses API (`POST {base_url}/responses`)."""
        if not self.provider.has_responses_api:
            raise UpstreamLacksApi(NO_RESPONSES_API.format(base_url=self._base_url))
        payload = dict(payload)
        stream = bool(payload.pop("stream", False))
        # The whole body travels in extra_body, as for chat: sent as it is, without the SDK's transforms.
        manager = self.client.responses.with_streaming_response.create(
            stream=stream, extra_body=payload, extra_headers=extra_headers)
        try:
            response = await manager.__aenter__()
        except openai.APIError as exc:
            error = upstream_error(exc)
            if isinstance(error, UpstreamRejectedRequest) and error.upstream_status == 404 and error.code is None:
                # a 404 without an OpenAI error code is a server without the route, not a missing model
                raise UpstreamLacksApi(NO_RESPONSES_API.format(base_url=self._base_url)) from None
            raise error from None
        return UpstreamStream(manager, response, ResponsesSse(), self._max_event_bytes)

    async def models(self) -> bytes:
        try:
            async with self.client.models.with_streaming_response.list() as response:
                body: bytes = await response.read()
                return body
        except openai.APIError as exc:
            raise upstream_error(exc) from None

    async def close(self) -> None:
        await self.client.close()
