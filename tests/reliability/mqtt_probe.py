"""A plain paho client that reports what the broker answered: CONNACK, PUBACK reason codes, deliveries.

The service Bus hides PUBACK reason codes (a service never needs them); the ACL matrix does, so it
talks MQTT v5 directly. Synchronous on purpose: paho's network thread does the waiting.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

NOT_AUTHORIZED = 0x87


@dataclass
class Probe:
    port: int
    user: str | None
    password: str | None
    tls_ca: str | None = None
    connack: ReasonCode | None = None
    received: list[tuple[str, bytes]] = field(default_factory=list)
    _pubacks: dict[int, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _connected: threading.Event = field(default_factory=threading.Event)
    _client: mqtt.Client | None = None

    def connect(self, timeout: float = 15.0) -> ReasonCode | None:
        """Connect; returns the CONNACK reason (None if the broker never answered, e.g. TLS failed)."""
        own_id = f"{self.user or 'anonymous'}-probe-{uuid.uuid4().hex[:8]}"  # the broker binds ids to accounts
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=own_id, protocol=mqtt.MQTTv5)
        if self.user is not None:
            client.username_pw_set(self.user, self.password)
        if self.tls_ca is not None:
            client.tls_set(ca_certs=self.tls_ca)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self._client = client
        try:
            client.connect("127.0.0.1", self.port, keepalive=30)
        except OSError:
            return None  # TLS handshake or TCP refused: no CONNACK at all
        client.loop_start()
        self._connected.wait(timeout)
        return self.connack

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Properties | None) -> None:
        self.connack = reason
        self._connected.set()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Properties | None) -> None:
        with self._lock:
            self._pubacks[mid] = reason.value

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((message.topic, bytes(message.payload)))

    @property
    def client(self) -> mqtt.Client:
        assert self._client is not None, "connect() first"
        return self._client

    def publish_reason(self, topic: str, payload: bytes = b"probe", timeout: float = 15.0) -> int:
        """Publish at QoS 1 and return the PUBACK reason code (0x87 = not authorized)."""
        info = self.client.publish(topic, payload, qos=1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if info.mid in self._pubacks:
                    return self._pubacks[info.mid]
            time.sleep(0.01)
        raise TimeoutError(f"no PUBACK for {topic} within {timeout} s")

    def subscribe(self, topic_filter: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_a: done.set()
        self.client.subscribe(topic_filter, qos=1)
        if not done.wait(15):
            raise TimeoutError(f"no SUBACK for {topic_filter}")

    def topics_received(self) -> set[str]:
        with self._lock:
            return {topic for topic, _ in self.received}

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
