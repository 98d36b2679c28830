"""The least a Python relay can cost without aiohttp: asyncio protocols on uvloop for both sides, the caller's request
bytes forwarded to a kept-alive upstream connection and the upstream's response bytes written back as they arrive,
nothing parsed beyond the HTTP framing needed to know where a message ends. A bench target (`transport`) that shows
what a hot path written against asyncio's transports could reach on this machine; it is not a product path (no TLS,
no checks, only the well-formed HTTP/1.1 the bench sends).

    python bench/floor_transport.py PORT UPSTREAM_BASE_URL
"""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import urlsplit

HEAD_END = b"\r\n\r\n"


class ChunkedEnd:
    """Follows a chunked body's framing to tell when it ends (the zero-size chunk and its blank line)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._left = 0  # bytes of the current chunk's data (and its CRLF) still to come

    def feed(self, data: bytes) -> bool:
        """True once the body is complete."""
        position = 0
        while position < len(data):
            if self._left:
                step = min(self._left, len(data) - position)
                self._left -= step
                position += step
                continue
            self._buffer += data[position:]
            line_end = self._buffer.find(b"\r\n")
            if line_end < 0:
                return False
            size = int(self._buffer[:line_end].split(b";")[0], 16)
            rest = self._buffer[line_end + 2:]
            self._buffer = b""
            if size == 0:
                return rest.startswith(b"\r\n") or rest == b""
            self._left = size + 2
            data, position = rest, 0
        return False


class Upstream(asyncio.Protocol):
    def __init__(self, pool: list[Upstream]) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.caller: asyncio.Transport | None = None
        self._head: bytes | None = b""
        self._end = ChunkedEnd()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes, caller: asyncio.Transport) -> None:
        self.caller, self._head, self._end = caller, b"", ChunkedEnd()
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        assert self.caller is not None
        self.caller.write(data)
        if self._head is not None:
            self._head += data
            split = self._head.find(HEAD_END)
            if split < 0:
                return
            data, self._head = self._head[split + 4:], None
        if self._end.feed(data):
            self.caller = None
            self.pool.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self in self.pool:
            self.pool.remove(self)
        if self.caller is not None:
            self.caller.close()


class Caller(asyncio.Protocol):
    def __init__(self, host: str, port: int, pool: list[Upstream]) -> None:
        self.host, self.port, self.pool = host, port, pool
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        split = self.buffer.find(HEAD_END)
        if split < 0:
            return
        head = self.buffer[:split].lower()
        length_at = head.find(b"content-length:")
        length = int(head[length_at + 15:].split(b"\r\n", 1)[0]) if length_at >= 0 else 0
        if len(self.buffer) < split + 4 + length:
            return
        request, self.buffer = self.buffer[:split + 4 + length], self.buffer[split + 4 + length:]
        asyncio.get_running_loop().create_task(self._forward(request))

    async def _forward(self, request: bytes) -> None:
        upstream = self.pool.pop() if self.pool else None
        if upstream is None:
            _, upstream = await asyncio.get_running_loop().create_connection(
                lambda: Upstream(self.pool), self.host, self.port)
        assert self.transport is not None
        upstream.send(request, self.transport)


async def main(port: int, upstream_url: str) -> None:
    parts = urlsplit(upstream_url)
    pool: list[Upstream] = []
    server = await asyncio.get_running_loop().create_server(
        lambda: Caller(parts.hostname or "127.0.0.1", parts.port or 80, pool), "127.0.0.1", port, backlog=2048)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(int(sys.argv[1]), sys.argv[2]))
