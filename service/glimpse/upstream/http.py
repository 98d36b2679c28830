"""The turn's hot path to an upstream: one pooled aiohttp session, a body serialised once, headers built once.

The `openai` SDK builds every request through its option models, httpx's request and header objects and its
transport adapter: about 0.4 ms of CPU per turn, most of what the proxy spends on a turn besides the relay
itself (bench/profiles/). A turn's request is already an OpenAI-shaped JSON object that only needs sending, so it
goes out here as bytes over a keep-alive pool, with the SDK's retry rules (`retry.py`); the SDK keeps everything
else (`/models`, its error types for those calls).
"""

from __future__ import annotations

import asyncio
import logging
import os
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
import yarl

from .. import __version__
from ..errors import UpstreamError, UpstreamTimedOut
from ..observability.tracing import exception_type
from .errors import status_error
from .retry import retry_delay, should_retry

log = logging.getLogger(__name__)

MAX_ERROR_BODY_BYTES = 64 * 1024  # an error answer is read this far; its message is in the first bytes
DRAIN_AFTER_END_SECONDS = 0.5  # how long a finished stream may take to send its last bytes and keep its connection


class UpstreamHttp:
    """POSTs to one upstream's base URL; answers with the open response, or raises an `UpstreamError`."""

    def __init__(self, base_url: str, api_key: str, *, connect_timeout: float, read_timeout: float,
                 keepalive_seconds: float, max_retries: int) -> None:
        self._base_url = base_url.rstrip("/")
        self._max_retries = max_retries
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"glimpse/{__version__}",
            # as the SDK sends them (openai/_client.py, default headers from OPENAI_ORG_ID and OPENAI_PROJECT_ID)
            **({"OpenAI-Organization": os.environ["OPENAI_ORG_ID"]} if os.environ.get("OPENAI_ORG_ID") else {}),
            **({"OpenAI-Project": os.environ["OPENAI_PROJECT_ID"]} if os.environ.get("OPENAI_PROJECT_ID") else {}),
        }
        self._proxy = _proxy_for(self._base_url)
        # Connections are bounded by the callers' (web/connections.py): one upstream connection per open turn.
        # No cookies (an API sets none worth keeping), the URLs parsed once and the proxy found once: less work per
        # request. `connect` bounds the name lookup and the wait for a pooled connection too.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=keepalive_seconds),
            timeout=aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_connect=connect_timeout,
                                          sock_read=read_timeout),
            skip_auto_headers=("User-Agent",), cookie_jar=aiohttp.DummyCookieJar())
        self._urls: dict[str, yarl.URL] = {}

    async def post(self, path: str, payload: Mapping[str, Any],
                   extra_headers: Mapping[str, str] | None = None) -> aiohttp.ClientResponse:
        """The upstream's 2xx response to `payload`, not yet read. Connection failures, timeouts and the statuses
        the SDK retries are retried `max_retries` times with its backoff; what is left raises."""
        body = orjson.dumps(payload)
        headers = {**self._headers, **extra_headers} if extra_headers else self._headers
        url = self._urls.get(path) or self._urls.setdefault(path, yarl.URL(self._base_url + path))
        attempt = 0
        while True:
            try:
                response = await self._session.post(url, data=body, headers=headers, proxy=self._proxy)
            except TimeoutError:  # aiohttp's connect and read timeouts are TimeoutErrors too
                failure: UpstreamError = UpstreamTimedOut("The upstream LLM did not answer in time.")
                retry_after = None
            except aiohttp.ClientError as exc:
                log.debug("upstream connection failed: %s", exc)
                failure = UpstreamError("Could not reach the upstream LLM.", error_type=exception_type(exc))
                retry_after = None
            else:
                if response.status < 300:
                    return response
                error_body = await _read_error_body(response)
                failure = status_error(response.status, response.headers, error_body)
                if not should_retry(response.status, response.headers):
                    raise failure
                retry_after = response.headers
            if attempt >= self._max_retries:
                raise failure
            await asyncio.sleep(retry_delay(attempt, retry_after))
            attempt += 1

    @property
    def closed(self) -> bool:
        return self._session.closed

    async def close(self) -> None:
        await self._session.close()


def _proxy_for(base_url: str) -> str | None:
    """The proxy the environment names for this URL (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY, read by the standard
    library as aiohttp's `trust_env` and httpx under the SDK read them); looked up once, not per request."""
    parts = urllib.parse.urlsplit(base_url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


async def _read_error_body(response: aiohttp.ClientResponse) -> bytes:
    """At most MAX_ERROR_BODY_BYTES of an error answer; the connection goes back to the pool only if it ended."""
    try:
        async with asyncio.timeout(5):
            data = bytearray()
            while len(data) < MAX_ERROR_BODY_BYTES and (part := await response.content.read(MAX_ERROR_BODY_BYTES)):
                data += part
            return bytes(data[:MAX_ERROR_BODY_BYTES])
    except (TimeoutError, aiohttp.ClientError):
        return b""
    finally:
        response.release()


async def finish(response: aiohttp.ClientResponse, *, ended: bool) -> None:
    """Release an upstream response. A stream that reached its API's end keeps its connection for the next turn
    once the last bytes of the HTTP body (the chunked terminator) are in, which takes no longer than a moment;
    anything else is closed."""
    if ended and not response.content.at_eof():
        try:
            async with asyncio.timeout(DRAIN_AFTER_END_SECONDS):
                while await response.content.read(MAX_ERROR_BODY_BYTES):
                    pass
        except (TimeoutError, aiohttp.ClientError):  # too slow or broken: not reusable
            response.close()
            return
        except BaseException:  # the turn was cancelled meanwhile: the connection is never left checked out
            response.close()
            raise
    if ended:
        response.release()
    else:
        response.close()
