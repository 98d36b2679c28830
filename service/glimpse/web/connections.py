"""Connection hygiene below the app, where aiohttp has no option for it.

- A cap on open client connections. Past it, a new connection gets a minimal 503 and is closed without reaching
  the app; `HEALTH_RESERVE` more may still ask `HEALTH_PATHS` (the kubelet's probes, the metrics scrape).
- A cap on the connections one peer address (an IPv6 /64) holds, so that one host cannot take every place: past it,
  the same 503. A trusted proxy's connections (`GLIMPSE_TRUSTED_PROXIES`: the ingress, which limits its own
  callers in front) are not capped per address.
- A deadline for each request head: from the connection's opening for its first request (an idle socket is
  closed), from the head's first byte for later ones (a head trickled a byte at a time, slowloris, is cut).
- An idle timeout on request bodies: a body that stops arriving fails its read, and the app answers 408.

aiohttp's own keep-alive timeout (`app.protocol_options`) closes connections waiting for their next request. Nothing
here touches a response being written, however long it lasts (SSE streams last minutes). What aiohttp offers no API
for is read through `web/aiohttp_internals.py`, which checks it against the installed aiohttp.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import orjson
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from yarl import URL

from ..config import Settings
from ..limits.client_ip import ClientAddresses, IPNetwork, address_key, parse_address, parse_networks
from ..observability.metrics import Metrics
from .aiohttp_internals import Handler, replace_request_handler, request_in_progress, set_listener, waiting_body
from .errors import NOSNIFF, error_body

log = logging.getLogger(__name__)

HEALTH_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
HEALTH_RESERVE = 8  # connections past the cap that may only ask HEALTH_PATHS
HEALTH_HEAD_TIMEOUT = 2.0  # a probe asks at once: an idle socket does not keep one of those places for long
# Descriptors never given to client connections: the health reserve, lingering refusals, the listening socket,
# log and image files, Redis, the interpreter's own.
FD_RESERVE = 64
# The default cap at most, whatever RLIMIT_NOFILE allows (containers often get a million): an idle connection holds
# 6.3 KiB (measured), so 10,000 fit the pod's memory headroom.
DEFAULT_CAP = 10_000
MAX_LINGERING_REFUSALS = 16
REFUSAL_LINGER_SECONDS = 1.0

REFUSAL_BODY = orjson.dumps(error_body("Too many open connections; retry shortly.", code="too_many_connections"))
BODY_TIMEOUT_MESSAGE = "The request body stopped arriving."


def _raw_response(status: str, body: bytes, extra_headers: str = "") -> bytes:
    """A whole HTTP/1.1 response, for the two answers given without the app."""
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{extra_headers}Connection: close\r\n\r\n").encode() + body


REFUSAL = _raw_response("503 Service Unavailable", REFUSAL_BODY, "Retry-After: 1\r\n")
HEAD_TIMEOUT = _raw_response("408 Request Timeout", orjson.dumps(error_body(
    "The request head did not arrive in time.", type="invalid_request_error", code="request_timeout")))


@dataclass(frozen=True)
class Limits:
    max_connections: int
    header_timeout: float
    body_timeout: float
    per_address: int = 0  # 0: per_address_cap's default
    trusted_proxies: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        cap = connection_cap(settings.max_connections)
        return cls(cap, settings.header_timeout_seconds, settings.body_timeout_seconds,
                   per_address_cap(settings.max_connections_per_address, cap),
                   parse_networks(settings.trusted_proxies))

    @property
    def address_cap(self) -> int:
        return self.per_address or per_address_cap(0, self.max_connections)


DEFAULT_PER_ADDRESS = 256


def per_address_cap(configured: int, cap: int) -> int:
    """The most connections one address holds: `configured`, or by default a sixteenth of the cap, at most
    DEFAULT_PER_ADDRESS (a quarter let four addresses, four IPv6 /64s that cost nothing, take every place); never
    above the cap."""
    return min(configured or max(1, min(cap // 16, DEFAULT_PER_ADDRESS)), cap)


def connection_cap(configured: int, soft_limit: int | None = None) -> int:
    """The most client connections held open: `configured`, or by default half the descriptors left after
    FD_RESERVE (each relayed stream holds an upstream connection too) up to DEFAULT_CAP; never more than
    RLIMIT_NOFILE minus FD_RESERVE."""
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY:
        return configured or DEFAULT_CAP
    ceiling = max(1, soft_limit - FD_RESERVE)
    if not configured:
        return max(1, min(ceiling // 2, DEFAULT_CAP))
    if configured > ceiling:
        log.warning("GLIMPSE_MAX_CONNECTIONS=%d leaves too few of the %d file descriptors RLIMIT_NOFILE allows: "
                    "using %d", configured, soft_limit, ceiling)
        return ceiling
    return configured


class GuardedSite(web.BaseSite):
    """A TCP listener like `web.TCPSite`, whose connections are made by `Connections`. `protocol_options`: what
    each connection's protocol gets (`app.protocol_options`, which the runner was given too)."""

    __slots__ = ("_app_server", "_host", "_limits", "_listen_backlog", "_metrics", "_options", "_port")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, limits: Limits, metrics: Metrics,
                 backlog: int, protocol_options: Mapping[str, Any]) -> None:
        super().__init__(runner, backlog=backlog)
        assert runner.server is not None  # BaseSite refuses a runner that is not set up
        self._app_server: web.Server = runner.server
        self._host, self._port, self._limits, self._metrics = host, port, limits, metrics
        self._listen_backlog, self._options = backlog, protocol_options

    @property
    def name(self) -> str:
        return str(URL.build(scheme="http", host=self._host, port=self._port))

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        connections = Connections(self._app_server, self._limits, self._metrics, loop, self._options)
        set_listener(self, await loop.create_server(connections, self._host, self._port, backlog=self._listen_backlog))


class Connections:
    """The listener's protocol factory: a `GuardedConnection` while fewer than the cap are open (past it, up to
    HEALTH_RESERVE more that may only ask HEALTH_PATHS), a `Refusal` beyond. The peer's address is known only once
    a connection is made: there, `admit` counts it against its address's cap."""

    def __init__(self, server: web.Server, limits: Limits, metrics: Metrics, loop: asyncio.AbstractEventLoop,
                 options: Mapping[str, Any]) -> None:
        self.limits = limits
        self.loop = loop
        self.lingering = 0  # refusals waiting for their caller to read the 503
        self._app_server = server
        # What aiohttp's own factory (web.Server.__call__) gives each protocol: the runner's protocol options, and
        # debug as aiohttp's Application sets it (from the loop's debug mode).
        self._options: dict[str, Any] = {**options, "debug": loop.get_debug()}
        self._metrics = metrics
        # Counted when made, not when connected: one burst of accepts makes many protocols before the first
        # connection_made. Weak: a protocol whose connection never started does not hold a place.
        self._open: weakref.WeakSet[GuardedConnection] = weakref.WeakSet()
        self._clients = ClientAddresses(limits.trusted_proxies)
        self._address_cap = limits.address_cap
        self._by_address: dict[str, int] = {}  # connections admitted per address, while open

    def __call__(self) -> asyncio.Protocol:
        count = len(self._open)
        if count >= self.limits.max_connections + HEALTH_RESERVE:
            self.refused("too_many_connections")
            return Refusal(self)
        connection = GuardedConnection(self._app_server, connections=self, loop=self.loop,
                                       health_only=count >= self.limits.max_connections, **self._options)
        self._open.add(connection)
        self._metrics.open_connections.set(len(self._open))
        return connection

    def closed(self, connection: GuardedConnection) -> None:
        self._open.discard(connection)
        self._metrics.open_connections.set(len(self._open))

    def refused(self, reason: str) -> None:
        self._metrics.connections_refused.labels(reason).inc()

    def admit(self, transport: asyncio.BaseTransport, health_only: bool) -> tuple[bool, str | None]:
        """Whether a new connection's address has a place left, and the address it holds one under (None: not
        counted: a trusted proxy's, not an IP peer, or one of the few places kept for probes past the cap)."""
        if health_only:
            return True, None
        peer = transport.get_extra_info("peername")
        address = parse_address(peer[0]) if isinstance(peer, tuple) and peer and isinstance(peer[0], str) else None
        if address is None or self._clients.is_trusted(address):
            return True, None
        key = address_key(address)
        held = self._by_address.get(key, 0)
        if held >= self._address_cap:
            self.refused("too_many_from_address")
            return False, None
        self._by_address[key] = held + 1
        return True, key

    def released(self, key: str) -> None:
        held = self._by_address.pop(key) - 1
        if held:
            self._by_address[key] = held


class Refusal(asyncio.Protocol):
    """A connection past the cap and the reserve: a 503, then closed, without the app."""

    def __init__(self, connections: Connections) -> None:
        self._connections = connections
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tcp = cast(asyncio.Transport, transport)
        tcp.write(REFUSAL)
        if self._connections.lingering >= MAX_LINGERING_REFUSALS:
            tcp.close()
            return
        # Closing with the caller's request unread sends a reset, which can destroy the 503 before it is read:
        # end our side, discard what comes, and close when the caller does (or after a second).
        tcp.write_eof()
        self._connections.lingering += 1
        self._timer = asyncio.get_running_loop().call_later(REFUSAL_LINGER_SECONDS, tcp.close)

    def data_received(self, data: bytes) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._connections.lingering -= 1


class GuardedConnection(RequestHandler):
    """aiohttp's HTTP/1.1 protocol with a deadline for each request head and an idle timeout for request bodies.
    RequestHandler's state (a request waiting, one in progress) is read through `aiohttp_internals`."""

    __slots__ = ("__weakref__", "_address", "_body", "_body_timer", "_connections", "_first_head_timeout",
                 "_head_started", "_head_timer", "_health_only", "_last_read", "_refusal")

    def __init__(self, manager: web.Server, *, connections: Connections, health_only: bool, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._connections = connections
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_started = False
        self._body: StreamReader | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._last_read = 0.0
        self._first_head_timeout = connections.limits.header_timeout
        self._address: str | None = None
        self._refusal: Refusal | None = None  # its address holds all its places: answered 503 without aiohttp
        self._health_only = health_only
        if health_only:
            replace_request_handler(self, _health_only(manager.request_handler, connections))
            self._first_head_timeout = min(self._first_head_timeout, HEALTH_HEAD_TIMEOUT)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        admitted, self._address = self._connections.admit(transport, self._health_only)
        if not admitted:
            self._refusal = Refusal(self._connections)
            self._refusal.connection_made(transport)
            return
        super().connection_made(transport)
        self._head_timer = self._connections.loop.call_later(self._first_head_timeout, self._head_timed_out)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return
        super().data_received(data)
        if not data or self.transport is None:
            return
        loop = self._connections.loop
        self._last_read = loop.time()
        waiting = waiting_body(self)
        if waiting is not None:  # a head arrived whole
            self._cancel_head_timer()
            if not waiting.is_eof():
                self._watch_body(waiting)
        elif self._body is not None and not self._body.is_eof():
            pass  # more of a body
        elif not request_in_progress(self):
            self._head_started = True
            if self._head_timer is None:
                self._head_timer = loop.call_at(self._last_read + self._connections.limits.header_timeout,
                                                self._head_timed_out)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refusal is not None:
            self._refusal.connection_lost(None)
            self._connections.closed(self)
            return
        if self._address is not None:
            self._connections.released(self._address)
        self._cancel_head_timer()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._body = None
        self._connections.closed(self)
        super().connection_lost(exc)

    def _cancel_head_timer(self) -> None:
        self._head_started = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport is None or waiting_body(self) is not None or request_in_progress(self):
            return  # a request is being answered: the keep-alive timeout covers the wait after it
        if self._head_started:
            self._connections.refused("header_timeout")
            self.transport.write(HEAD_TIMEOUT)
        else:  # not a byte: nothing to answer
            self._connections.refused("no_request")
        self.force_close()

    def _watch_body(self, body: StreamReader) -> None:
        self._body = body
        if self._body_timer is None:
            self._body_timer = self._connections.loop.call_at(
                self._last_read + self._connections.limits.body_timeout, self._check_body)

    def _check_body(self) -> None:
        self._body_timer = None
        body = self._body
        if body is None or body.is_eof() or self.transport is None:
            return
        loop = self._connections.loop
        now = loop.time()
        if not self.transport.is_reading():  # aiohttp paused the socket, the app is not reading the body: the caller,
            self._last_read = now  # who cannot send, is not the slow one
        deadline = self._last_read + self._connections.limits.body_timeout
        if now < deadline:
            self._body_timer = loop.call_at(deadline, self._check_body)
            return
        self._connections.refused("body_timeout")
        self.close()  # no request after this one: the rest of its body would be read as one
        body.set_exception(web.HTTPRequestTimeout(reason=BODY_TIMEOUT_MESSAGE))
        body.feed_eof()  # else aiohttp would try to read the rest after the 408 is sent


def _health_only(handler: Handler, connections: Connections) -> Handler:
    """The app for a connection in the reserve: HEALTH_PATHS only, and no keep-alive."""

    async def handle(request: BaseRequest) -> web.StreamResponse:
        if request.path in HEALTH_PATHS:
            response = await handler(request)
        else:
            connections.refused("too_many_connections")
            response = web.Response(body=REFUSAL_BODY, status=503, content_type="application/json",
                                    headers={**NOSNIFF, "Retry-After": "1"})
        response.force_close()
        return response

    return handle
