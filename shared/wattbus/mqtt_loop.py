"""Runs a paho client on the service's asyncio loop instead of paho's own network thread.

With `loop_start()` every incoming message crossed threads: paho's select loop read it, the
hand-over woke the event loop through its self-pipe, and each PUBACK woke paho's select again
through its socket pair, with the GIL changing hands each time. At a service's trickle (a few
dozen messages a second, each arriving alone) that hand-over cost as much as paho's own parsing.
Here the socket sits in the event loop (add_reader), writes are flushed on the next loop pass
without registering for writability, and keepalive runs on a coarse timer. Connecting happens
without blocking the loop; reconnects back off from reconnect_min_s doubling to reconnect_max_s
like paho's loop_forever did.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from .log import Logger


class LoopClient(mqtt.Client):
    """paho's client, handed a TCP connection that was opened without blocking the event loop."""

    premade: socket.socket | None = None

    def _create_socket_connection(self) -> socket.socket:
        sock, self.premade = self.premade, None
        return sock if sock is not None else super()._create_socket_connection()


class LoopDriver:
    """Connects, reads, writes, pings and reconnects one LoopClient on the running asyncio loop."""

    def __init__(self, client: LoopClient, host: str, port: int, keepalive_s: int, reconnect_min_s: float,
                 reconnect_max_s: float, log: Logger, after_read: Callable[[], None] | None = None) -> None:
        self.client = client
        self.after_read = after_read  # the bus delivers what was read in the same loop pass
        self.host, self.port = host, port
        self.reconnect_min_s = max(0.1, reconnect_min_s)
        self.reconnect_max_s = max(self.reconnect_min_s, reconnect_max_s)
        # paho pings after keepalive_s of silence and the broker waits 1.5x that: checking a
        # quarter as often is early enough and wakes an idle service rarely.
        self.misc_interval_s = min(15.0, max(1.0, keepalive_s / 4))
        self.connect_timeout_s = 5.0
        self.log = log
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id = 0
        self._sock: Any = None
        self._lost: asyncio.Future[None] | None = None
        self._flush_pending = False
        self._writer_added = False  # only after a partial write; removing none would cost per packet
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._misc: asyncio.TimerHandle | None = None
        self._reached = False  # this connection got its CONNACK
        self.retry_s = self.reconnect_min_s
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread_id = threading.get_ident()
        self._task = self._loop.create_task(self._run(), name=f"mqtt-{self.client._client_id!r}")

    async def stop(self, timeout: float = 3.0) -> None:
        """Send DISCONNECT (the broker then drops the last will), wait for the close, stop."""
        if self._task is None:
            return
        if self._sock is not None and self._lost is not None:
            self.client.disconnect()
            try:
                await asyncio.wait_for(asyncio.shield(self._lost), timeout)
            except TimeoutError:
                self.log.warning("broker did not close the connection after DISCONNECT", timeout_s=timeout)
        self._stopping = True
        self._task.cancel()
        if self._sock is not None:  # never closed by paho: close it ourselves
            sock = self._sock
            self._on_socket_close(self.client, None, sock)
            sock.close()
        # Python 3.11's wait_for can swallow a cancel that lands as the connect fails (the task
        # then sleeps out its back-off): the flag ends the loop, a second cancel ends the sleep.
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):  # we cancelled it just above
            await asyncio.wait_for(self._task, timeout)

    # ------------------------------------------------------------------ connection lifetime

    async def _run(self) -> None:
        delay = self.reconnect_min_s
        failures = 0
        while not self._stopping:
            self.retry_s = delay  # what a refused login waits before the next try (the bus logs it)
            try:
                self.client.premade = await self._open()
                self.client.reconnect()
            except OSError as exc:
                self.client.premade = None
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    self.log.warning("broker unreachable, retrying", host=self.host, port=self.port,
                                     error=str(exc), attempts=failures, retry_s=delay)
                if self._stopping:
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max_s)
                continue
            assert self._lost is not None  # set by on_socket_open inside reconnect()
            await asyncio.shield(self._lost)  # stop() waits on it too
            if self._reached:  # the session got its CONNACK: the next outage starts from the minimum again
                delay, failures = self.reconnect_min_s, 0
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max_s)

    def connected(self) -> None:
        """Called on a successful CONNACK."""
        self._reached = True

    async def _open(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        try:  # an address literal resolves here without the executor thread getaddrinfo needs
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
        except socket.gaierror:
            infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        error: OSError = OSError(f"no address for {self.host}")
        for family, kind, proto, _name, address in infos:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, address), self.connect_timeout_s)
            except (OSError, TimeoutError) as exc:
                sock.close()
                error = exc if isinstance(exc, OSError) else OSError(f"connect timed out after "
                                                                     f"{self.connect_timeout_s:g} s")
                continue
            sock.settimeout(self.connect_timeout_s)  # what paho's own connect leaves (TLS handshake)
            return sock
        raise error

    # ------------------------------------------------------------------ paho socket callbacks

    def _on_socket_open(self, client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        assert self._loop is not None
        self._sock = sock
        self._reached = False
        self._lost = self._loop.create_future()
        self._loop.add_reader(sock, self._read)
        self._misc = self._loop.call_later(self.misc_interval_s, self._tick)

    def _on_socket_close(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        if self._loop is None or sock is not self._sock:
            return
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)
        self._writer_added = False
        if self._misc is not None:
            self._misc.cancel()
        self._sock = None
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    def _on_register_write(self, _client: mqtt.Client, _userdata: Any, _sock: Any) -> None:
        # Flush on the next loop pass: no epoll registration, and every packet queued until then
        # (a PUBACK, the handler's publishes) goes out in one go.
        if self._flush_pending or self._loop is None:
            return
        self._flush_pending = True
        if threading.get_ident() == self._thread_id:
            self._loop.call_soon(self._flush)
        else:
            self._loop.call_soon_threadsafe(self._flush)

    def _on_unregister_write(self, _client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        if self._writer_added and self._loop is not None and sock is not None:
            self._writer_added = False
            self._loop.remove_writer(sock)

    # ------------------------------------------------------------------ I/O

    def _read(self) -> None:
        self.client.loop_read()
        # TLS: bytes already decrypted inside the SSL object do not wake epoll again.
        pending = getattr(self._sock, "pending", None)
        while pending is not None and self._sock is not None and pending() > 0:
            self.client.loop_read()
        if self.after_read is not None:
            self.after_read()
        self._flush()  # the PUBACK and what the handlers published, without another loop pass

    def _flush(self) -> None:
        if not self._flush_pending:  # already flushed (by _read) since it was scheduled
            return
        self._flush_pending = False
        if self._sock is None or self._loop is None:
            return
        self.client.loop_write()
        if self.client.want_write() and self._sock is not None:
            # The socket buffer is full: wait until it drains (a slow or stalled broker).
            self._writer_added = True
            self._loop.add_writer(self._sock, self._write)

    def _write(self) -> None:
        self.client.loop_write()

    def _tick(self) -> None:
        if self._sock is None or self._loop is None:
            return
        self.client.loop_misc()
        if self._sock is not None:
            self._misc = self._loop.call_later(self.misc_interval_s, self._tick)
