"""The writer's MQTT 5 subscription on paho: readings in, PUBACKs out only once they are safe.

paho runs with `manual_ack=True`, so a reading's PUBACK is not sent when the callback returns but
when the pipeline calls `acknowledge` for the batch that carries it -- after the batch was written
to the database or fsync'ed to the spool. Until then the broker still holds the reading: a writer
killed with SIGKILL loses nothing, the broker re-sends what was not acknowledged at the next start
(rewriting a point is idempotent in InfluxDB). The session is persistent (clean start off, session
expiry `session_expiry_s`) and its own client id (`<service client id>-ingest`), so readings
published while the writer is away wait in the broker; `receive_maximum` caps how many
unacknowledged readings the broker sends us, which bounds the writer's memory.

paho's protocol code runs on the service's event loop (wattbus.mqtt_loop), as the service's own
bus client does; that client still carries status, last will and commands.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from wattbus.config import BusConfig
from wattbus.counters import Counters
from wattbus.log import Logger
from wattbus.mqtt_loop import LoopClient, LoopDriver

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike

READ_SIZE = 65536
DISCONNECT = 0xE0  # an MQTT DISCONNECT packet's first byte


@dataclass(frozen=True, slots=True)
class AckToken:
    """The packet ids of one socket read's QoS 1 readings, valid only on the connection they came on."""

    connection: int
    mids: list[int]


class _BufferedSocket:
    """What paho reads from and writes to: its socket, with a buffer each way.

    paho reads each packet with at least three recv() calls (type byte, length, the rest), one
    system call each; at a backlog's pace that is a third of the writer's receive cost. Here they
    are served from one 64 kB read. A wake-up of the event loop may refill it once (`refills`,
    reset by the subscriber after each read), so a broker that always has more to send cannot keep
    the loop from writing batches and sending their PUBACKs; paho keeps a half-read packet until
    the next wake-up. `pending()` is what the loop driver asks to go on reading without a system
    call. Writing, paho sends each packet on its own: a batch's 1250 PUBACKs would be 1250 system
    calls (and over TLS 1250 records); they are collected and sent at once by `flush()`.
    """

    def __init__(self, sock: SocketLike) -> None:
        # A TCP socket, or its TLS wrapper (a subclass): paho here makes no WebSocket connections.
        self.sock = cast(socket.socket, sock)
        self.data = b""
        self.pos = 0
        self.refills = 1
        self.out = bytearray()
        self.linger = False  # a clean stop: after our DISCONNECT, keep the socket until the broker closes it
        self.disconnect_sent = False
        self.kept = False  # closed by paho, still open for broker_closed()

    def recv(self, size: int) -> bytes:
        if self.pos >= len(self.data):
            if self.refills <= 0 and not self._inner_pending():
                raise BlockingIOError  # paho: nothing more for now, resume at the next wake-up
            self.refills -= 1
            self.data, self.pos = self.sock.recv(READ_SIZE), 0
            if not self.data:
                return b""  # the broker closed the connection
        chunk = self.data[self.pos:self.pos + size]
        self.pos += len(chunk)
        return chunk

    def _inner_pending(self) -> int:
        # TLS: bytes already decrypted inside the SSL object (no system call to read them).
        pending: Callable[[], int] | None = getattr(self.sock, "pending", None)
        return pending() if pending is not None else 0

    def pending(self) -> int:
        return len(self.data) - self.pos + self._inner_pending()

    def send(self, buffer: bytes | bytearray) -> int:
        # paho hands each packet over whole (all of it is always taken here): byte 0 is its type.
        self.disconnect_sent = self.disconnect_sent or (len(buffer) > 0 and buffer[0] == DISCONNECT)
        self.out += buffer
        return len(buffer)

    def flush(self) -> None:
        """Send what paho wrote; what the socket cannot take now stays for the next flush."""
        while self.out:
            try:
                sent = self.sock.send(self.out)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return
            except OSError:
                # The connection is gone: paho notices at its next read and reconnects; what
                # was not sent is void with this connection (unacknowledged readings come back).
                self.out.clear()
                return
            del self.out[:sent]

    def close(self) -> None:
        # paho closes right after writing a DISCONNECT (the session's expiry may ride on it).
        sent = False
        try:
            if self.out:
                self.sock.settimeout(1.0)
                self.sock.sendall(self.out)
            sent = True
        except OSError:
            pass  # the broker is gone already
        finally:
            self.out.clear()
            self.kept = sent and self.linger and self.disconnect_sent
            if not self.kept:
                self.sock.close()

    async def broker_closed(self, timeout: float) -> bool:
        """After a clean stop's DISCONNECT, wait until the broker closes its side: it does so only once it
        has handled every packet before it. Mosquitto reads one packet per wake-up; returning earlier,
        a restart taking over the session could be served before our last PUBACKs were read, and get
        those readings again. False when the broker did not close within timeout."""
        if not self.kept:
            return True
        self.kept = False
        sock, loop = self.sock, asyncio.get_running_loop()
        closed: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            while not closed.done():
                try:
                    if sock.recv(READ_SIZE):
                        continue  # sent before the broker read our DISCONNECT: unacknowledged, it comes back
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    return
                except OSError:
                    pass  # a reset ends the connection all the same
                closed.set_result(None)

        sock.setblocking(False)
        fd = sock.fileno()
        loop.add_reader(fd, readable)
        try:
            await asyncio.wait_for(closed, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(fd)
            sock.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)


class _Client(LoopClient):
    """paho's client with some of its internal steps replaced (paho 2.x, pinned < 3; the suite
    covers them): reading and writing through a _BufferedSocket, and handing each message to
    on_message directly. paho's own dispatch looks for per-topic callbacks (message_callback_add,
    unused here) with a matcher that builds a self-referencing closure per message -- garbage only
    the cycle collector frees, at a backlog's pace a tenth of the writer's time with the GC."""

    buffered: _BufferedSocket | None = None

    def _create_socket(self) -> SocketLike:
        # paho opens the connection and wraps TLS, then reads through this object.
        self.buffered = _BufferedSocket(super()._create_socket())
        return self.buffered

    def _handle_on_message(self, message: mqtt.MQTTMessage) -> None:
        on_message = self.on_message
        if on_message is not None:
            on_message(self, self._userdata, message)

    def _packet_write(self) -> MQTTErrorCode:
        rc = super()._packet_write()  # every queued packet into the buffer, then out in one go
        if self.buffered is not None:
            self.buffered.flush()
        return rc

    def want_write(self) -> bool:
        # The loop driver then waits until the socket takes the rest of the buffer.
        return super().want_write() or (self.buffered is not None and bool(self.buffered.out))


class Subscriber:
    def __init__(self, bus: BusConfig, *, client_id: str, username: str, filters: list[str],
                 session_expiry_s: int, receive_maximum: int, on_publish: Callable[[str, bytes], None],
                 on_acks: Callable[[AckToken], None], counters: Counters, log: Logger) -> None:
        self.bus = bus
        self.client_id = client_id
        self.filters = filters
        self.session_expiry_s = session_expiry_s
        self.receive_maximum = receive_maximum
        self.on_publish = on_publish
        self.on_acks = on_acks
        self.counters = counters
        self.log = log
        self.connected = asyncio.Event()
        self.last_publish = 0.0  # monotonic time the last reading arrived (0: none yet)
        self._connection = 0  # changes at every connect and disconnect: older tokens are void
        self._mids: list[int] = []
        self._paused = False
        self._subscribing = False  # CONNACK came, SUBACK not yet
        self._session_present = False
        self._unsubscribed: asyncio.Future[list[ReasonCode]] | None = None
        self._closed = asyncio.Event()

        client = _Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True)
        password = bus.resolved_password()
        if password is not None or bus.username:
            client.username_pw_set(username, password)
        if bus.tls:  # paho's default: the broker's certificate is verified against ca_file (or the system's)
            client.tls_set(ca_certs=bus.ca_file, certfile=bus.cert_file, keyfile=bus.key_file)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        self._driver = LoopDriver(client, bus.host, bus.port, bus.keepalive_s, bus.reconnect_min_s,
                                  bus.reconnect_max_s, log, after_read=self._after_read)

    def start(self) -> None:
        """Connect in the background (inside the running loop); reconnects with doubling back-off."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.session_expiry_s
        props.ReceiveMaximum = self.receive_maximum
        self._client.connect_async(self.bus.host, self.bus.port, keepalive=self.bus.keepalive_s, clean_start=False,
                                   properties=props)
        self._driver.start()

    # ------------------------------------------------------------------ called by the pipeline

    def acknowledge(self, tokens: list[AckToken]) -> None:
        """The readings behind tokens are stored or spooled: let the broker forget them. Tokens of an
        earlier connection are dropped: the broker re-sends those readings, and their packet ids may
        already name other readings on this connection."""
        for token in tokens:
            if token.connection == self._connection:
                for mid in token.mids:
                    self._client.ack(mid, 1)

    def pause(self) -> None:
        """Stop taking readings (shutdown): what the broker still sends stays unacknowledged in it."""
        self._paused = True

    # ------------------------------------------------------------------ paho callbacks (event loop)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._paused:
            return
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # a broker must not forward one; the pipeline dead-letters it
            topic = msg._topic.decode("utf-8", "replace")
        if msg.qos:
            self._mids.append(msg.mid)
        payload = msg.payload  # bytes from paho's parser; typed wider because it may be set
        self.on_publish(topic, payload if isinstance(payload, bytes) else bytes(payload))

    def _after_read(self) -> None:
        """After each socket read: its readings' PUBACKs go to the pipeline as one token."""
        if self._client.buffered is not None:
            self._client.buffered.refills = 1
        if self._mids:
            self.last_publish = time.monotonic()
            self.on_acks(AckToken(self._connection, self._mids))
            self._mids = []

    def _on_connect(self, client: mqtt.Client, _userdata: Any, flags: mqtt.ConnectFlags, reason: ReasonCode,
                    _props: Properties | None) -> None:
        self._connection += 1
        if reason.is_failure:  # the broker closes the connection; the driver retries with back-off
            self._failed(f"broker refused the connection: {reason}")
            return
        self._session_present = flags.session_present
        # What the session kept for us arrives from now on, ahead of the SUBACK.
        self.log.info("ingest session open", client_id=self.client_id, session_present=flags.session_present)
        self._subscribing = True
        try:
            client.subscribe([(f, SubscribeOptions(qos=1)) for f in self.filters])
        except ValueError as exc:  # paho checks filters; the config check should have caught it first
            self._subscribing = False
            self._failed(f"subscriptions {self.filters}: {exc}")
            client.disconnect()

    def _on_subscribe(self, client: mqtt.Client, _userdata: Any, _mid: int, reasons: list[ReasonCode],
                      _props: Properties | None) -> None:
        self._subscribing = False
        refused = {f: str(r) for f, r in zip(self.filters, reasons, strict=False) if r.is_failure}
        if refused:
            self._failed(f"broker refused subscriptions: {refused}")
            client.disconnect()  # and try again after the back-off: an ACL may be fixed meanwhile
            return
        self._driver.connected()  # fully up: the next outage starts its back-off from the minimum
        self.counters.inc("ingest_connects")
        self.connected.set()
        self.log.info("ingest connected", client_id=self.client_id, session_present=self._session_present,
                      subscriptions=self.filters, receive_maximum=self.receive_maximum)

    def _on_unsubscribe(self, _client: mqtt.Client, _userdata: Any, _mid: int, reasons: list[ReasonCode],
                        _props: Properties | None) -> None:
        if self._unsubscribed is not None and not self._unsubscribed.done():
            self._unsubscribed.set_result(reasons)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: mqtt.DisconnectFlags,
                       reason: ReasonCode, _props: Properties | None) -> None:
        self._connection += 1
        self._mids = []
        was_up = self.connected.is_set()
        self.connected.clear()
        self._closed.set()
        if self._subscribing:  # e.g. Mosquitto drops a client whose filter has too many levels
            self._subscribing = False
            self._failed(f"broker closed the connection instead of confirming the subscriptions: {reason}")
        if was_up and reason.is_failure and not self._paused:
            self.log.warning("ingest connection lost, reconnecting", reason=str(reason))

    def _failed(self, error: str) -> None:
        self.counters.inc("ingest_connect_failures")
        self.log.warning("ingest connection failed", broker=f"{self.bus.host}:{self.bus.port}", error=error,
                         retry_min_s=self.bus.reconnect_min_s)

    # ------------------------------------------------------------------ leaving

    async def unsubscribe(self, timeout: float = 5.0) -> bool:
        """Leave the share group(s): the broker routes no new readings to us; what it already queued
        for us still arrives. False when not connected or the broker did not confirm in time."""
        if not self.connected.is_set():
            return False
        self._unsubscribed = asyncio.get_running_loop().create_future()
        self._client.unsubscribe(self.filters)
        try:
            reasons = await asyncio.wait_for(asyncio.shield(self._unsubscribed), timeout)
        except TimeoutError:
            return False
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            self.log.warning("broker refused to unsubscribe", filters=self.filters, reasons=refused)
        return not refused

    async def close(self, end_session: bool = False) -> None:
        """A normal DISCONNECT: the session (and what it holds for us) stays on the broker, unless
        end_session (after a drain) asks the broker to delete it. Returns once the broker has handled
        every acknowledgement sent before (or after a few seconds without an answer)."""
        self._paused = True
        buffered = self._client.buffered
        if buffered is not None:
            buffered.linger = True
        if end_session and self.session_expiry_s and self._client.is_connected():
            props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 0  # MQTT 5: only allowed when the CONNECT's was not 0
            self._closed.clear()
            self._client.disconnect(properties=props)
            try:
                await asyncio.wait_for(self._closed.wait(), 3)
            except TimeoutError:
                self.log.warning("broker did not close the connection after DISCONNECT")
        await self._driver.stop()
        if buffered is not None and not await buffered.broker_closed(3.0):
            self.log.warning("broker did not close the connection after DISCONNECT: "
                             "the last acknowledged readings may come again")
