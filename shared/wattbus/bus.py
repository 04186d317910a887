"""The async bus client: one per service, on paho-mqtt (MQTT v5).

paho's protocol code runs on the service's own asyncio loop (mqtt_loop.py: no network thread, so no
per-message hand-over between threads) and reconnects with a doubling backoff (`reconnect_min_s` ..
`reconnect_max_s`); messages are decoded into contract Structs and dispatched to handlers. After
every reconnect the client subscribes again and re-publishes the retained state it owns (meta,
availability, status), so a broker restarted without persistence gets it back. Outgoing QoS 1
messages wait in paho's bounded queue while the broker is away; paho sends that queue only after
the CONNACK, behind anything published while the CONNECT was on its way, so retained state is
re-published once the queue has gone out (see _settle). Incoming messages are routed and handed to
handlers by delivery.py.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from . import codec, topics
from . import messages as m
from .client_id import bound_client_id
from .config import BusConfig
from .counters import Counters
from .delivery import Dispatcher, Filter, Handler, Message, Routes, Subscription
from .log import Logger, get_logger
from .mqtt_loop import LoopClient, LoopDriver

__all__ = ["Bus", "Handler", "Message", "Subscription"]


class Bus:
    def __init__(self, config: BusConfig, service: str, instance: str = "main", *, client_id: str | None = None,
                 will: tuple[str, bytes] | None = None, counters: Counters | None = None,
                 log: Logger | None = None) -> None:
        self.config = config
        self.service = service
        self.instance = instance
        password = config.resolved_password()
        user = config.username or service  # one broker user per service
        self.user = user if password is not None or config.username else None
        self._refusals = 0
        self.client_id = client_id or bound_client_id(f"{service}-{instance}", user, password)
        self.counters = counters or Counters()
        self.log = log or get_logger("bus")
        self._routes = Routes()
        self._subs_lock = threading.Lock()
        self._retained: dict[str, tuple[bytes, str]] = {}
        self._retained_lock = threading.Lock()
        # retained topics published between socket open and CONNACK: those went out ahead of older ones
        self._overtaken: dict[str, None] = {}
        self._pending: dict[bytes, asyncio.Future[m.CommandResult]] = {}
        # QoS 1 messages the broker has not acknowledged yet (mid -> topic): what stop() flushes
        self._unacked: dict[int, str] = {}
        self._reply_topic: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._delivery = Dispatcher(self._routes, self.counters, self.log)
        self._props_by_type: dict[str, Properties] = {}
        self._connected = asyncio.Event()
        self._ever_connected = False

        client = LoopClient(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        if password is not None or config.username:
            client.username_pw_set(user, password)
        if config.tls:
            client.tls_set(ca_certs=config.ca_file, certfile=config.cert_file, keyfile=config.key_file,
                           cert_reqs=ssl.CERT_REQUIRED)
        if will:
            client.will_set(will[0], will[1], qos=1, retain=True)
        client.max_queued_messages_set(config.max_queued_messages)
        client.max_inflight_messages_set(config.max_inflight_messages)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._delivery.on_message
        client.on_publish = self._on_publish
        self._client = client
        self._driver = LoopDriver(client, config.host, config.port, config.keepalive_s,
                                  max(1.0, config.reconnect_min_s), max(1.0, config.reconnect_max_s), self.log,
                                  after_read=self._delivery.drain)

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        """Start connecting in the background; publishes queue until the broker answers."""
        self._loop = asyncio.get_running_loop()
        self._delivery.start(f"bus-dispatch-{self.client_id}")
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        persistent = self.config.session_expiry_s > 0
        if persistent:
            props.SessionExpiryInterval = self.config.session_expiry_s
        self._client.connect_async(self.config.host, self.config.port, keepalive=self.config.keepalive_s,
                                   clean_start=not persistent, properties=props)
        self._driver.start()

    async def wait_connected(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self, final: list[tuple[str, bytes]] | None = None, timeout: float = 3.0) -> None:
        """Publish the final retained messages (an explicit `offline`), wait until the broker has
        acknowledged them and every QoS 1 message published before, then disconnect.

        Waiting is bounded by `timeout`; what is still unacknowledged then is dropped and logged.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if (final or self._unacked) and not self.connected:
            # A service failing at once stops before it connected: its final status must still go out.
            await self.wait_connected(timeout)
        for topic, payload in final or []:
            info = self._client.publish(topic, payload, qos=1, retain=True)
            if info.rc != mqtt.MQTT_ERR_QUEUE_SIZE:
                self._unacked[info.mid] = topic
        # The loop itself carries the PUBACKs now: wait by yielding to it, not by blocking a thread.
        while self._unacked and self.connected and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if self._unacked:
            self.counters.inc("publish_dropped", len(self._unacked))
            self.log.warning("stopping before the broker acknowledged every message, these are dropped",
                             dropped=len(self._unacked), topics=sorted(set(self._unacked.values()))[:10],
                             connected=self.connected, timeout_s=timeout)
        await self._driver.stop(timeout)
        self._delivery.stop()

    # ------------------------------------------------------------------ publish

    def publish(
        self,
        topic: str,
        payload: Any,
        *,
        retain: bool = False,
        qos: int = 1,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
    ) -> bool:
        """Publish a Struct (JSON), bytes or text. Returns False if the outgoing queue is full."""
        if isinstance(payload, bytes):
            data, content_type = payload, topics.CONTENT_TYPE
        elif isinstance(payload, str):
            data, content_type = payload.encode(), topics.TEXT_CONTENT_TYPE
        else:
            data, content_type = codec.encode(payload), topics.CONTENT_TYPE
        if retain:
            with self._retained_lock:
                if data:
                    self._retained[topic] = (data, content_type)
                else:
                    self._retained.pop(topic, None)
                if self._client.socket() is not None and not self._client.is_connected():
                    # paho writes this right behind the CONNECT, and what it queued before the socket
                    # opened (older values of this topic) only after the CONNACK.
                    self._overtaken[topic] = None
        return self._send(topic, data, content_type, retain, qos, response_topic, correlation_data)

    def _send(self, topic: str, data: bytes, content_type: str, retain: bool, qos: int,
              response_topic: str | None = None, correlation_data: bytes | None = None) -> bool:
        if response_topic or correlation_data:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ContentType = content_type
            if response_topic:
                props.ResponseTopic = response_topic
            if correlation_data:
                props.CorrelationData = correlation_data
        else:  # the common case: one shared, never mutated Properties per content type
            props = self._props_by_type.get(content_type) or self._content_props(content_type)
        info = self._client.publish(topic, data, qos=qos, retain=retain, properties=props)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            self.counters.inc("publish_dropped")
            self.log.warning("publish queue full, message dropped", topic=topic)
            return False
        self.counters.inc("messages_out")
        if qos:
            self._unacked[info.mid] = topic
        return True

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, _reason: ReasonCode,
                    _props: Properties | None) -> None:
        # PUBACK of a QoS 1 message (paho keeps it queued and resends it across reconnects until then);
        # also called once a QoS 0 message is written, whose mid is not in the dict.
        self._unacked.pop(mid, None)

    def _send_subscribe(self, filt: Filter, audience: tuple[Subscription, ...]) -> None:
        # A fresh subscription identifier per SUBSCRIBE tells which of our (possibly overlapping)
        # subscriptions a message came through, so each handler sees a message once although
        # Mosquitto sends one copy per matching subscription, and who the retained messages this
        # SUBSCRIBE brings are for (delivery.Filter).
        props = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
        props.SubscriptionIdentifier = self._routes.new_ident(filt, audience)
        filt.qos = self._routes.strongest(filt)
        self._client.subscribe(filt.subscription, options=SubscribeOptions(qos=filt.qos), properties=props)

    def _content_props(self, content_type: str) -> Properties:
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ContentType = content_type
        self._props_by_type[content_type] = props
        return props

    # ------------------------------------------------------------------ subscribe

    def subscribe(self, subscription: str, payload_type: Any, handler: Handler, qos: int = 1) -> Subscription:
        """Decode messages matching `subscription` into payload_type (bytes = raw) and call handler.

        A payload that does not decode is counted as `rejected` and logged with topic and field;
        the handler never sees it and the service keeps running. Several handlers may share a
        filter: one broker subscription at the strongest QoS asked, every handler gets each message
        (in the order they subscribed) and a later one still gets the retained messages.
        """
        sub = Subscription(subscription, payload_type, handler, qos)
        # Under the lock that _on_connect holds, so a subscription made while paho is connecting
        # is sent either here or by the connect callback, never by neither.
        with self._subs_lock:
            filt = self._routes.add(sub)
            if self._client.is_connected():
                # Subscribing again is how the new handler gets the retained messages: the broker
                # holds the truth (a local copy would miss what was deleted or never came here).
                self._send_subscribe(filt, (sub,))
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop calling sub's handler; the broker subscription goes with the filter's last handler."""
        with self._subs_lock:
            emptied = self._routes.remove(sub)
            if not self._client.is_connected():
                return  # the next connect subscribes to what is left
            if emptied is not None:
                self._client.unsubscribe(emptied.subscription)
            elif (filt := self._routes.filters.get(sub.subscription)) and self._routes.strongest(filt) < filt.qos:
                self._send_subscribe(filt, ())  # a lower QoS; the retained messages it brings go to nobody

    async def request(self, topic: str, command: m.CommandBase, timeout: float = 10.0) -> m.CommandResult:
        """Send a command with a v5 response topic and wait for its CommandResult."""
        if self._reply_topic is None:
            self._reply_topic = topics.reply(self.service, self.instance, "result")
            self.subscribe(self._reply_topic, m.CommandResult, self._on_reply)
        correlation = uuid.uuid4().bytes
        future: asyncio.Future[m.CommandResult] = asyncio.get_running_loop().create_future()
        self._pending[correlation] = future
        try:
            self.publish(topic, command, response_topic=self._reply_topic, correlation_data=correlation)
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return m.CommandResult(status="timeout", command=_tag(command), request_id=command.request_id,
                                   message=f"no answer on {self._reply_topic} within {timeout:g} s")
        finally:
            self._pending.pop(correlation, None)

    def respond(self, request: Message[Any], result: m.CommandResult, fallback_topic: str) -> None:
        """Answer a request on its v5 response topic, or on fallback_topic for v3.1.1 clients."""
        if request.response_topic:
            self.publish(request.response_topic, result, correlation_data=request.correlation_data)
        else:
            self.publish(fallback_topic, result)

    async def _on_reply(self, msg: Message[m.CommandResult]) -> None:
        future = self._pending.get(msg.correlation_data or b"")
        if future and not future.done():
            future.set_result(msg.payload)

    # ------------------------------------------------------------------ paho thread callbacks

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode,
                    _props: Properties | None) -> None:
        if reason.is_failure:
            self.counters.inc("connect_failures")
            self._refused(reason)
            return
        self._refusals = 0
        sock = client.socket()
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Nagle's algorithm holds small QoS 1 packets for up to ~40 ms per hop (measured
            # 88 ms for a command round trip on loopback, 0.7 ms without it).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._subs_lock:
            for filt in self._routes.filters.values():
                self._send_subscribe(filt, tuple(filt.handlers))
        reconnect = self._ever_connected
        if reconnect:
            self.counters.inc("reconnects")
        else:
            self.log.info("connected to broker", host=self.config.host, port=self.config.port)
        self._ever_connected = True
        self._driver.connected()
        if self._loop:
            # paho sends its queued messages after this callback returns: settle the retained state
            # behind them, on the next loop pass (and before a disconnect's clear, which comes later).
            self._loop.call_soon_threadsafe(self._settle, reconnect)

    def _settle(self, reconnect: bool) -> None:
        """Re-publish retained state once paho has sent what it queued for the CONNACK: all of it after
        a reconnect (a broker restarted without persistence lost it), after the first connect only the
        topics published while connecting, whose newest value went out before the older queued ones."""
        with self._retained_lock:
            names = {**dict.fromkeys(self._retained), **self._overtaken} if reconnect else dict(self._overtaken)
            self._overtaken.clear()
            # a topic cleared while connecting is cleared again (an empty retained payload)
            state = [(t, self._retained.get(t, (b"", topics.CONTENT_TYPE))) for t in names]
        for topic, (data, content_type) in state:
            self._send(topic, data, content_type, True, 1)
        if reconnect:
            self.log.info("reconnected to broker", republished=len(state))
        self._connected.set()

    def _refused(self, reason: ReasonCode) -> None:
        """One line per try while the login is refused (the tries back off to reconnect_max_s), naming
        who tried where; a wrong password otherwise looks like a service that just never starts."""
        self._refusals += 1
        login = reason.value in (0x86, 0x87)  # bad user name or password / not authorized (MQTT v5)
        fields: dict[str, Any] = {
            "user": self.user or "(anonymous)", "broker": f"{self.config.host}:{self.config.port}",
            "reason": "not authorised" if login else str(reason), "attempts": self._refusals,
            "retry_s": self._driver.retry_s}
        if login:
            fields["hint"] = ("the broker does not accept this user and password: check [bus] username and "
                              "password/password_file (WATTBUS_BUS_USERNAME, WATTBUS_BUS_PASSWORD) against the "
                              "broker's password file (mosquitto/make-passwords.sh writes both)")
        if self._refusals <= 10 or self._refusals % 10 == 0:  # at the 60 s cap: every ten minutes
            self.log.warning("broker refused the login, retrying", **fields)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode,
                       _props: Properties | None) -> None:
        if self._loop:
            self._loop.call_soon_threadsafe(self._connected.clear)
        if self._refusals:
            return  # the refusal was logged; the broker closing the connection after it says nothing new
        if reason.value != 0:
            self.log.warning("lost broker connection, reconnecting", reason=str(reason))


def _tag(command: m.CommandBase) -> str | None:
    tag = command.__struct_config__.tag
    return tag if isinstance(tag, str) else None
