"""A raw asyncio TCP server on a free loopback port that answers with exactly the bytes a test scripts.

Real devices send odd and broken HTTP; aiohttp.web cannot be made to, so these tests write the
wire bytes themselves. Each accepted connection runs `handler(reader, writer)`; the server counts
connections so tests can tell keep-alive reuse from reconnects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []  # every request head read by read_request()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:  # also the connections a handler keeps waiting on
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up on a deliberately broken answer
        finally:
            writer.close()
            self._writers.discard(writer)

    async def read_request(self, reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
        """One request: its head, its header fields (lower-case names) and its body (Content-Length)."""
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        lines = head.decode("latin-1").split("\r\n")
        fields = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(fields.get("content-length", "0")))
        return lines[0].encode(), fields, body


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[RawServer]:
    server = RawServer(handler)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
