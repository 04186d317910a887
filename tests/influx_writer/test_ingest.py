"""The writer's own MQTT 5 ingest connection: packet framing, TLS, refusals, reconnects.

The framing test cuts real PUBLISH packets (as Mosquitto sends them: 1-, 2- and 3-byte remaining
lengths, properties, QoS 0 and 1) at every kind of boundary; the connection tests run against
real Mosquitto brokers (one with the TLS listener of mosquitto/tls.conf.example)."""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from wattbus import codec, topics
from wattbus.config import BusConfig
from wattbus.counters import Counters
from wattbus.log import get_logger
from wattbus_influx_writer import mqtt_wire as wire
from wattbus_influx_writer.ingest import AckToken, Ingest

from tests.influx_writer.helpers import PUBLISHER, meter_readings
from tests.reliability.brokers import Broker, make_certs
from tests.support.bus_helpers import until
from tests.support.servers import TEST_ADMIN, Mosquitto


def _publish_packet(topic: str, payload: bytes, packet_id: int, props: bytes = b"") -> bytes:
    qos = 1 if packet_id else 0
    body = struct.pack("!H", len(topic)) + topic.encode()
    if qos:
        body += struct.pack("!H", packet_id)
    body += wire.varint(len(props)) + props + payload
    return bytes((wire.PUBLISH << 4 | qos << 1,)) + wire.varint(len(body)) + body


def test_packets_survive_any_chunking() -> None:
    rng = random.Random(7)
    sent = []
    stream = b""
    for i in range(300):
        size = rng.choice([1, 60, 200, 600, 20_000])  # 1-, 2- and 3-byte remaining lengths
        payload = bytes(rng.randrange(256) for _ in range(size))
        props = rng.choice([b"", b"\x01\x01", b"\x02\x00\x00\x00\x3c" + b"\x26\x00\x01k\x00\x01v" * 30])
        packet_id = i % 3 and (i % 65535) + 1
        sent.append((f"wattbus/v1/device/x/d{i}/reading", payload, packet_id))
        stream += _publish_packet(sent[-1][0], payload, packet_id, props)
    for _ in range(20):
        received, rest = [], b""
        cuts = sorted(rng.sample(range(1, len(stream)), 400))
        for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
            packets, used = wire.split_packets(rest + stream[a:b], 1 << 20)
            rest = (rest + stream[a:b])[used:]
            for qos, packet_id, topic, payload in wire.iter_publishes(packets):
                received.append((topic.decode(), payload, packet_id if qos else 0))
        assert rest == b""
        assert received == sent


def test_oversized_or_broken_lengths_are_protocol_errors() -> None:
    with pytest.raises(wire.ProtocolError, match="limit"):
        wire.split_packets(b"\x30\xff\xff\xff\x7f", 1 << 20)
    with pytest.raises(wire.ProtocolError, match="longer than 4 bytes"):
        wire.read_varint(b"\xff\xff\xff\xff\xff", 0)
    with pytest.raises(wire.ProtocolError, match="unknown property"):
        wire.properties(b"\x02\x7e\x00", 0)
    assert wire.split_packets(b"\x30\x85", 1 << 20) == ([], 0)  # a length still arriving: wait


class _Receiver:
    """An Ingest that acknowledges at once and keeps what it got."""

    def __init__(self, bus: BusConfig, filters: list[str], client_id: str) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.counters = Counters()
        self.ingest = Ingest(bus, client_id=client_id, username=bus.username or "", filters=filters,
                             session_expiry_s=0, receive_maximum=100, on_publish=self._take, on_acks=self._ack,
                             counters=self.counters, log=get_logger("test-ingest"))
        self.task = asyncio.create_task(self.ingest.run())

    def _take(self, topic: bytes, payload: bytes) -> None:
        self.got.append((topic.decode(), payload))

    def _ack(self, token: AckToken) -> None:
        self.ingest.acknowledge([token])

    async def close(self) -> None:
        await self.ingest.close()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def _pub_password(broker: Mosquitto | Broker) -> str:
    return broker.files.password(PUBLISHER)


async def _publish(port: int, password: str, count: int, device: str, ca: Path | None = None) -> None:
    """Readings published by mosquitto_pub (a client that is not ours), QoS 1."""
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", "mqttv5", "-q", "1", "-u", PUBLISHER,
            "-P", password, "-t", topics.device_reading(PUBLISHER, device), "-l"]
    if ca is not None:
        args += ["--cafile", str(ca)]
    proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE)
    data = b"".join(codec.encode(r) + b"\n" for r in meter_readings(count, device))
    await proc.communicate(data)
    assert proc.returncode == 0


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Broker, Path]]:
    ca = make_certs(tmp_path / "certs")
    server = Broker(tmp_path / "tls", anonymous=False, tls_dir=ca.parent)
    server.start()
    yield server, ca
    server.stop()


async def test_tls_listener(tls_server: tuple[Broker, Path]) -> None:
    server, ca = tls_server
    assert server.tls_port
    bus = BusConfig(port=server.tls_port, username="influx-writer", password=server.files.password("influx-writer"),
                    tls=True, ca_file=str(ca))
    receiver = _Receiver(bus, [topics.ALL_READINGS], "ingest-tls")
    try:
        await asyncio.wait_for(receiver.ingest.connected.wait(), 20)
        await _publish(server.tls_port, _pub_password(server), 50, "meter-tls", ca)
        await until(lambda: len(receiver.got) == 50, 20, "50 readings over TLS")
        assert {t for t, _ in receiver.got} == {topics.device_reading(PUBLISHER, "meter-tls")}
    finally:
        await receiver.close()


async def test_refusals_are_logged_counted_and_retried(broker: Mosquitto) -> None:
    wrong = _Receiver(BusConfig(port=broker.port, username="influx-writer", password="not-the-password",
                                reconnect_min_s=0.2, reconnect_max_s=0.4), [topics.ALL_READINGS], "ingest-wrong")
    # A filter with "#" before its last level: the broker answers the SUBSCRIBE with a refusal code.
    bad_filter = _Receiver(BusConfig(port=broker.port, username=TEST_ADMIN, password=broker.files.password(TEST_ADMIN),
                                     reconnect_min_s=0.2, reconnect_max_s=0.4), ["wattbus/v1/#/reading"],
                           "ingest-bad-filter")
    try:
        await until(lambda: wrong.counters.get("ingest_connect_failures") >= 2, 20, "refused login retried")
        await until(lambda: bad_filter.counters.get("ingest_connect_failures") >= 1, 20, "refused filter counted")
        assert not wrong.ingest.connected.is_set()
        assert not wrong.task.done() and not bad_filter.task.done()
    finally:
        await wrong.close()
        await bad_filter.close()


async def test_reconnects_after_the_broker_restarts(tmp_path: Path) -> None:
    server = Broker(tmp_path / "restart", anonymous=False)
    server.start()
    bus = BusConfig(port=server.port, username="influx-writer", password=server.files.password("influx-writer"),
                    reconnect_min_s=0.2, reconnect_max_s=1.0)
    receiver = _Receiver(bus, [topics.ALL_READINGS], "ingest-restart")
    try:
        await asyncio.wait_for(receiver.ingest.connected.wait(), 20)
        await _publish(server.port, _pub_password(server), 20, "meter-before")
        await until(lambda: len(receiver.got) == 20, 20, "20 readings before the restart")
        server.stop()
        await until(lambda: not receiver.ingest.connected.is_set(), 20, "the loss noticed")
        server.start()
        await asyncio.wait_for(receiver.ingest.connected.wait(), 30)
        await _publish(server.port, _pub_password(server), 20, "meter-after")
        await until(lambda: len(receiver.got) == 40, 20, "20 more after the restart")
        assert receiver.counters.get("ingest_connects") == 2
    finally:
        await receiver.close()
        server.stop()
