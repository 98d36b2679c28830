"""The one place Glimpse touches aiohttp's private attributes, each checked against the installed aiohttp at import.

The connection guard (`web/connections.py`) works below the app, where aiohttp has no public hook: it reads whether
a request head has arrived and waits for the app (`RequestHandler._messages`) and whether a request is being
answered (`_request_in_progress`), gives a connection of the health reserve its own handler (`_request_handler`),
and hands aiohttp the listener it opened (`BaseSite._server`, as `web.TCPSite` does: `stop()` closes it,
`runner.addresses` reads it). None of these is an API: a release may rename or drop one. So importing this module
checks them all, and `glimpse serve` refuses to start with one line naming what is missing, instead of failing at
the first slow request. Whether aiohttp has stopped reading a socket, it learns from asyncio's public
`transport.is_reading()`.

Checked on the releases in CHECKED (the connection tests pass on each); pyproject.toml pins aiohttp to them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

CHECKED = ("3.14.4", "3.14.5")
REQUIREMENT = "aiohttp>=3.14.4,<3.15"  # as pyproject.toml pins it

Handler = Callable[[BaseRequest], Awaitable[web.StreamResponse]]


class UnsupportedAiohttp(ImportError):
    """The installed aiohttp lacks an attribute Glimpse relies on."""


@dataclass(frozen=True)
class Internal:
    owner: type
    name: str
    use: str  # what Glimpse does with it, for the refusal


INTERNALS: tuple[Internal, ...] = (
    Internal(RequestHandler, "_messages", "connection guard reads"),
    Internal(RequestHandler, "_request_in_progress", "connection guard reads"),
    Internal(RequestHandler, "_request_handler", "connection guard replaces"),
    Internal(web.BaseSite, "_server", "listener sets"),
)


def missing(internals: Sequence[Internal] = INTERNALS) -> list[Internal]:
    """The internals the installed aiohttp's classes do not have (its slots are class attributes)."""
    return [internal for internal in internals if not hasattr(internal.owner, internal.name)]


def refusal(version: str, absent: Sequence[Internal]) -> str:
    """One line: which attributes this aiohttp lacks, what Glimpse does with them, and what to install."""
    lacks = "; ".join(f"{item.owner.__name__}.{item.name}, which Glimpse's {item.use}" for item in absent)
    checked = " and ".join((", ".join(CHECKED[:-1]), CHECKED[-1])) if len(CHECKED) > 1 else CHECKED[0]
    return f"aiohttp {version} lacks {lacks} (checked on aiohttp {checked}): install a checked version ({REQUIREMENT})"


def check(internals: Sequence[Internal] = INTERNALS) -> None:
    """Raise UnsupportedAiohttp, with its one line, if the installed aiohttp lacks any of `internals`."""
    absent = missing(internals)
    if absent:
        raise UnsupportedAiohttp(refusal(aiohttp.__version__, absent))


def waiting_body(protocol: RequestHandler) -> StreamReader | None:
    """The body of the last request whose head has arrived whole and that waits for the app to take it; None when
    no request waits."""
    messages = protocol._messages
    return messages[-1][1] if messages else None


def request_in_progress(protocol: RequestHandler) -> bool:
    """Whether the app is answering a request on this connection."""
    return protocol._request_in_progress


def replace_request_handler(protocol: RequestHandler, handler: Handler) -> None:
    """Answer this connection's requests with `handler` instead of the app's (set before its first request)."""
    protocol._request_handler = handler


def set_listener(site: web.BaseSite, server: asyncio.AbstractServer) -> None:
    """Give aiohttp the listener a site opened: `BaseSite.stop()` closes it, `BaseRunner.addresses` lists it."""
    site._server = server


check()
