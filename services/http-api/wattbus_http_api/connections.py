"""Listening sockets with a connection cap that slow clients cannot use to starve everyone else.

1100 slow partial requests (slowloris) once held every file descriptor: `Too many open files`
on accept, every request timing out for 85 s. Here:
- at most `max_connections` are open, kept well under the process's open-files limit so accept()
  itself always has descriptors left (a burst of `ACCEPT_BURST` accepts before the loop frees any);
- a new connection beyond the cap closes the oldest connection that has neither a request in a
  handler nor a complete header block waiting for one (idle keep-alive, or headers still trickling
  in), so a normal request always gets a slot while the slow ones are the ones that go; only when
  every slot runs a request is the newcomer told 503;
- a connection must finish its request headers within `header_timeout_s` of opening or of its
  previous answer (aiohttp's keep-alive timer), and its body within `body_timeout_s` (web.read_json).
aiohttp.web has no connection limit of its own, so the asyncio protocol is wrapped (public asyncio
and aiohttp API only) and the middleware `track` tells which connections run a request.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware
from wattbus.counters import Counters

from .ratelog import RateLimitedLog

ACCEPT_BURST = 128  # asyncio accepts up to this many per wake-up, before any of them is admitted or evicted
# Evicted connections close on the next loop pass: a burst accepted, one being closed, the bus socket,
# log files and static files being sent all need descriptors beyond the cap.
FD_RESERVE = 2 * ACCEPT_BURST + 128
# The kernel's queue of connections not accepted yet: when it is full, a new client's handshake is
# dropped and retried a second later. Larger than ACCEPT_BURST, so an attacker's burst waits there.
KERNEL_BACKLOG = 1024
BUSY_ANSWER = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
               b"Retry-After: 1\r\nContent-Length: 58\r\n\r\n"
               b'{"error": "every connection slot is answering a request"}\n')
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def connection_cap(configured: int) -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(8, min(configured, soft - FD_RESERVE))


class ConnectionGuard:
    def __init__(self, cap: int, limiter: RateLimitedLog, counters: Counters) -> None:
        self.server: web.Server | None = None  # aiohttp's protocol factory, once the runner is set up
        self.cap = cap
        self.limiter = limiter
        self.counters = counters
        self.open: dict[asyncio.Transport, Guarded] = {}
        self.idle: OrderedDict[asyncio.Transport, None] = OrderedDict()  # oldest first
        self.evicted = 0
        self.refused = 0

    def factory(self) -> Guarded:
        return Guarded(self)

    def admit(self, conn: Guarded, transport: asyncio.Transport) -> bool:
        if len(self.open) >= self.cap:
            if self.idle:
                oldest, _ = self.idle.popitem(last=False)
                victim = self.open.pop(oldest)
                victim.closed_by_guard = True
                oldest.abort()
                self.evicted = self.counters.inc("connections_evicted")
                self.limiter.warning("connection evicted", "connection cap reached: closed the oldest idle or "
                                     "slow connection", cap=self.cap, evicted=self.evicted, peer=victim.peer)
            else:
                self.refused = self.counters.inc("connections_refused")
                self.limiter.warning("connection refused", "connection cap reached and every connection runs a "
                                     "request: 503", cap=self.cap, refused=self.refused)
                return False
        self.open[transport] = conn
        self.idle[transport] = None
        return True

    def forget(self, transport: asyncio.Transport) -> None:
        self.open.pop(transport, None)
        self.idle.pop(transport, None)

    def busy(self, transport: asyncio.Transport | None, running: int) -> None:
        """A request started (running > 0) or the last one on this connection ended (0)."""
        if transport is None or transport not in self.open:
            return
        if running:
            self.idle.pop(transport, None)
        else:
            self.idle[transport] = None  # at the end: the most recently used connection goes last
            self.idle.move_to_end(transport)


class Guarded(asyncio.Protocol):
    """One accepted connection: admitted, it hands everything to aiohttp's own protocol."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self.guard = guard
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.running = 0  # requests of this connection inside a handler
        self.ready = False  # a complete header block arrived and no handler has finished it yet
        self.tail = b""  # the last bytes seen, for a header end split across two reads
        self.closed_by_guard = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP server's connection
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if not self.guard.admit(self, transport):
            transport.write(BUSY_ANSWER)
            transport.close()
            return
        assert self.guard.server is not None, "listen() before the runner was set up"
        self.inner = self.guard.server()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.inner is None:
            return
        if not self.ready and self.transport is not None:
            # A whole header block arrived: a request is on its way to a handler, so this is no
            # longer a slow client to evict (slowloris never gets here). The handler's end clears it.
            seen = self.tail + data
            if b"\r\n\r\n" in seen:
                self.ready = True
                self.guard.busy(self.transport, 1)
            self.tail = seen[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.guard.forget(self.transport)
        if self.inner is not None:
            self.inner.connection_lost(exc)


def tracking(guard: ConnectionGuard) -> Middleware:
    """The middleware that tells the guard which connections are inside a handler (not evictable)."""

    @web.middleware
    async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        conn = guard.open.get(transport) if transport is not None else None
        if conn is None:
            return await handler(request)
        conn.running += 1
        guard.busy(transport, conn.running)
        try:
            return await handler(request)
        finally:
            conn.running -= 1
            if not conn.running:
                conn.ready = False
            guard.busy(transport, conn.running)

    return track


def _deepen_queue(server: asyncio.Server) -> None:
    """listen() again with a longer queue: asyncio uses its `backlog` both for listen() and for the
    accepts per wake-up; a duplicate of the descriptor reaches the same socket without touching asyncio."""
    for transport_socket in server.sockets:
        with socket.socket(fileno=os.dup(transport_socket.fileno())) as same:
            same.listen(KERNEL_BACKLOG)


async def listen(guard: ConnectionGuard, host: str, ports: list[int]) -> list[asyncio.Server]:
    loop = asyncio.get_running_loop()
    servers = []
    try:
        for port in ports:
            server = await loop.create_server(guard.factory, host, port, reuse_address=True, backlog=ACCEPT_BURST)
            servers.append(server)
            _deepen_queue(server)
    except OSError:
        for server in servers:
            server.close()
        raise
    return servers
