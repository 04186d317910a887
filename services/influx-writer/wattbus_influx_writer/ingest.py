"""The writer's receive-only MQTT 5 connection: readings in, PUBACKs out once they are safe.

Why not the service's paho client: paho spends ~45 us per QoS 1 message (packet object, callback,
one PUBACK write per message) -- as much as decoding and encoding the reading twice over -- and it
acknowledges when the callback returns, so a reading in memory was already forgotten by the
broker. This connection parses whole socket reads at once and holds the PUBACKs: the pipeline
releases them when the batch that carries the readings has been written to the database or
fsync'ed to the spool. A writer killed with SIGKILL therefore loses nothing; the broker re-sends
what was not acknowledged (rewriting a point is idempotent in InfluxDB). The broker never has
more than `receive_maximum` readings in flight to us, which bounds the writer's memory.

The service's own Bus still carries status, last will and commands; this connection has its
own client id (`<service client id>-ingest`) and a persistent session with the subscriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wattbus.config import BusConfig
from wattbus.counters import Counters
from wattbus.log import Logger

from . import mqtt_wire as wire

if TYPE_CHECKING:
    import ssl

MAX_PACKET = 1 << 20  # a reading is < 2 kB; the broker refuses larger publishes to us anyway


@dataclass(frozen=True, slots=True)
class AckToken:
    """PUBACKs for one socket read's readings, valid only on the connection they arrived on."""

    connection: int
    packets: bytes


class IngestError(Exception):
    """The broker refused us (bad login, not authorised to subscribe): retrying will not help soon."""


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: Ingest, number: int) -> None:
        self.owner = owner
        self.number = number
        self.transport: asyncio.Transport | None = None
        self.rest = b""
        self.closed = asyncio.get_running_loop().create_future()
        self.control: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self.last_heard = time.monotonic()
        self.last_publish = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.last_heard = time.monotonic()
        buf = self.rest + data if self.rest else data
        try:
            packets, used = wire.split_packets(buf, MAX_PACKET)
            self.rest = buf[used:]
            acks = bytearray()
            take = self.owner.on_publish
            for first, body in packets:
                if first >> 4 != wire.PUBLISH:
                    self.control.put_nowait((first >> 4, body))
                    continue
                # PUBLISH: topic length, topic, packet id (QoS 1), properties, payload.
                topic_end = 2 + ((body[0] << 8) | body[1])
                qos = (first >> 1) & 3
                pos = topic_end + 2 if qos else topic_end
                props = body[pos]
                if props < 0x80:
                    pos += 1 + props
                else:
                    props, pos = wire.read_varint(body, pos)
                    pos += props
                take(body[2:topic_end], body[pos:])
                if qos == 1:
                    acks += b"\x40\x02"
                    acks += body[topic_end:topic_end + 2]
                elif qos == 2:
                    raise wire.ProtocolError("a QoS 2 PUBLISH although QoS 1 was granted")
        except (wire.ProtocolError, IndexError) as exc:
            self.owner.protocol_error(str(exc) or type(exc).__name__)
            if self.transport is not None:
                self.transport.abort()
            return
        if acks:
            self.last_publish = self.last_heard
            self.owner.on_acks(AckToken(self.number, bytes(acks)))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)


class Ingest:
    def __init__(self, bus: BusConfig, *, client_id: str, username: str, filters: list[str],
                 session_expiry_s: int, receive_maximum: int,
                 on_publish: Callable[[bytes, bytes], None], on_acks: Callable[[AckToken], None],
                 counters: Counters, log: Logger) -> None:
        self.bus = bus
        self.client_id = client_id
        self.username = username
        self.filters = filters
        self.session_expiry_s = session_expiry_s
        self.receive_maximum = receive_maximum
        self.on_publish = on_publish
        self.on_acks = on_acks
        self.counters = counters
        self.log = log
        self._protocol: _Protocol | None = None
        self._connections = 0
        self._stopping = False
        self._unsubscribed: asyncio.Future[list[int]] | None = None
        self.connected = asyncio.Event()

    # ------------------------------------------------------------------ called by the pipeline

    def acknowledge(self, tokens: list[AckToken]) -> None:
        """The readings behind tokens are stored or spooled: let the broker forget them. Tokens of
        an earlier connection are dropped -- the broker re-sends those messages on reconnect."""
        proto = self._protocol
        if proto is None or proto.transport is None or proto.transport.is_closing():
            return
        current = [t.packets for t in tokens if t.connection == proto.number]
        if current:
            proto.transport.write(b"".join(current))

    def protocol_error(self, message: str) -> None:
        self.counters.inc("ingest_protocol_errors")
        self.log.warning("broker sent something this client does not understand; reconnecting", error=message)

    def pause(self) -> None:
        """Stop taking readings (shutdown): what the broker still sends stays unacknowledged."""
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.pause_reading()

    # ------------------------------------------------------------------ connection loop

    async def run(self) -> None:
        """Connect, subscribe, receive; reconnect with doubling back-off until cancelled."""
        delay = self.bus.reconnect_min_s
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._session()
            except (OSError, TimeoutError, wire.ProtocolError, IngestError) as exc:
                if self._stopping:
                    return  # our own DISCONNECT closed it
                self.counters.inc("ingest_connect_failures")
                self.log.warning("ingest connection failed", broker=f"{self.bus.host}:{self.bus.port}",
                                 error=str(exc) or type(exc).__name__, retry_in_s=delay)
            self.connected.clear()
            self._protocol = None
            if self._stopping:
                return
            if time.monotonic() - started > 60:
                delay = self.bus.reconnect_min_s  # it was up for a while: start over quickly
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.bus.reconnect_max_s)

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        self._connections += 1
        number = self._connections
        context = self._tls_context() if self.bus.tls else None
        _transport, proto = await asyncio.wait_for(loop.create_connection(
            lambda: _Protocol(self, number), self.bus.host, self.bus.port, ssl=context,
            server_hostname=self.bus.host if context else None), 15)
        assert proto.transport is not None
        transport = proto.transport
        try:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # PUBACK batches go out at once
            password = self.bus.resolved_password()
            transport.write(wire.connect(
                self.client_id, self.bus.keepalive_s, username=self.username if password is not None else None,
                password=password, clean_start=False, session_expiry_s=self.session_expiry_s,
                receive_maximum=self.receive_maximum))
            kind, body = await asyncio.wait_for(proto.control.get(), 15)
            if kind != wire.CONNACK:
                raise wire.ProtocolError(f"expected CONNACK, got packet type {kind}")
            ack = wire.parse_connack(body)
            if ack.reason != 0:
                raise IngestError(f"broker refused the connection: {wire.reason_text(ack.reason)}")
            keepalive = int(ack.props.get(wire.SERVER_KEEP_ALIVE, self.bus.keepalive_s))
            self._protocol = proto
            transport.write(wire.subscribe(1, self.filters))
            kind, body = await asyncio.wait_for(proto.control.get(), 15)
            if kind != wire.SUBACK:
                raise wire.ProtocolError(f"expected SUBACK, got packet type {kind}")
            _packet_id, codes = wire.parse_suback(body)
            refused = {f: wire.reason_text(c) for f, c in zip(self.filters, codes, strict=False) if c >= 0x80}
            if refused:
                raise IngestError(f"broker refused subscriptions: {refused}")
            self.counters.inc("ingest_connects")
            self.connected.set()
            self.log.info("ingest connected", client_id=self.client_id, session_present=ack.session_present,
                          subscriptions=self.filters, receive_maximum=self.receive_maximum)
            await self._serve(proto, keepalive)
        finally:
            if not transport.is_closing():
                transport.abort()

    async def _serve(self, proto: _Protocol, keepalive: int) -> None:
        """Answer control packets and keep the connection alive until it ends."""
        assert proto.transport is not None
        interval = max(1.0, keepalive / 2)
        while True:
            get = asyncio.ensure_future(proto.control.get())
            done, _pending = await asyncio.wait({get, proto.closed}, timeout=interval,
                                                return_when=asyncio.FIRST_COMPLETED)
            if proto.closed in done:
                get.cancel()
                error = proto.closed.result()
                raise ConnectionError(f"connection lost ({error})" if error else "connection closed by the broker")
            if get in done:
                kind, body = get.result()
                if kind == wire.DISCONNECT:
                    code, text = wire.parse_disconnect(body)
                    raise ConnectionError(f"broker disconnected us: {wire.reason_text(code)} {text}".strip())
                if kind == wire.UNSUBACK and self._unsubscribed is not None and not self._unsubscribed.done():
                    self._unsubscribed.set_result(wire.parse_unsuback(body)[1])
                    continue
                if kind == wire.PUBREL:  # only after a QoS 2 PUBREC, which we never send
                    raise wire.ProtocolError("PUBREL without a QoS 2 exchange")
                continue  # PINGRESP, late SUBACK: nothing to do
            get.cancel()
            if time.monotonic() - proto.last_heard > keepalive * 1.5:
                raise TimeoutError(f"nothing from the broker for {keepalive * 1.5:.0f} s")
            proto.transport.write(wire.PINGREQ_PACKET)

    def _tls_context(self) -> ssl.SSLContext:
        import ssl  # here only: without TLS the writer runs without OpenSSL (wattbus.lean)

        context = ssl.create_default_context(cafile=self.bus.ca_file)
        if self.bus.cert_file:
            context.load_cert_chain(self.bus.cert_file, self.bus.key_file)
        return context

    @property
    def last_publish(self) -> float:
        """Monotonic time the last reading arrived on the current connection (0: none yet)."""
        return self._protocol.last_publish if self._protocol is not None else 0.0

    async def unsubscribe(self, timeout: float = 5.0) -> bool:
        """Leave the share group(s): the broker routes no new readings to us; what it already queued
        for us still arrives. False when not connected or the broker did not confirm in time."""
        proto = self._protocol
        if proto is None or proto.transport is None or proto.transport.is_closing():
            return False
        self._unsubscribed = asyncio.get_running_loop().create_future()
        proto.transport.write(wire.unsubscribe(2, self.filters))
        try:
            codes = await asyncio.wait_for(asyncio.shield(self._unsubscribed), timeout)
        except TimeoutError:
            return False
        refused = [wire.reason_text(c) for c in codes if c >= 0x80]
        if refused:
            self.log.warning("broker refused to unsubscribe", filters=self.filters, reasons=refused)
        return not refused

    async def close(self, end_session: bool = False) -> None:
        """A normal DISCONNECT: the session (and what it holds for us) stays on the broker, unless
        end_session (after a drain) asks the broker to delete it."""
        self._stopping = True
        proto = self._protocol
        if proto is not None and proto.transport is not None and not proto.transport.is_closing():
            proto.transport.write(wire.disconnect_ending_session() if end_session else wire.DISCONNECT_PACKET)
            proto.transport.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(proto.closed), 3)
