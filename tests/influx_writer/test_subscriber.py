"""The writer's MQTT 5 subscription (paho, manual acknowledgements) against real Mosquitto brokers:
payloads of every size intact through its buffered reads, PUBACKs held until acknowledged, TLS
(the listener of mosquitto/tls.conf.example), refusals, reconnects."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from pathlib import Path

from wattbus import codec, topics
from wattbus.config import BusConfig
from wattbus.counters import Counters
from wattbus.log import get_logger
from wattbus_influx_writer.subscriber import AckToken, Subscriber

from tests.influx_writer.helpers import PUBLISHER, meter_readings
from tests.reliability.brokers import Broker, make_certs
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import TEST_ADMIN, Mosquitto


class _Receiver:
    """A Subscriber that keeps what it got and acknowledges at once (or never, with hold=True)."""

    def __init__(self, bus: BusConfig, filters: list[str], client_id: str, *, hold: bool = False,
                 session_expiry_s: int = 0) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.held: list[AckToken] = []
        self.hold = hold
        self.counters = Counters()
        self.sub = Subscriber(bus, client_id=client_id, username=bus.username or "", filters=filters,
                              session_expiry_s=session_expiry_s, receive_maximum=100, on_publish=self._take,
                              on_acks=self._ack, counters=self.counters, log=get_logger("test-subscriber"))
        self.sub.start()

    def _take(self, topic: str, payload: bytes) -> None:
        self.got.append((topic, payload))

    def _ack(self, token: AckToken) -> None:
        if self.hold:
            self.held.append(token)
        else:
            self.sub.acknowledge([token])

    async def close(self) -> None:
        await self.sub.close()


def _admin(broker: Mosquitto | Broker, **overrides: object) -> BusConfig:
    values: dict[str, object] = {"port": broker.port, "username": TEST_ADMIN,
                                 "password": broker.files.password(TEST_ADMIN)}
    values.update(overrides)
    return BusConfig(**values)  # type: ignore[arg-type]


async def _publish(port: int, password: str, count: int, device: str, ca: Path | None = None) -> None:
    """Readings published by mosquitto_pub (a client that is not ours), QoS 1."""
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", "mqttv5", "-q", "1", "-u", PUBLISHER,
            "-I", f"{PUBLISHER}-", "-P", password, "-t", topics.device_reading(PUBLISHER, device), "-l"]
    if ca is not None:
        args += ["--cafile", str(ca)]
    proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE)
    data = b"".join(codec.encode(r) + b"\n" for r in meter_readings(count, device))
    await proc.communicate(data)
    assert proc.returncode == 0


async def test_payloads_of_every_size_arrive_intact_and_in_order(broker: Mosquitto) -> None:
    """Sizes around and far beyond one 64 kB read (1-, 2- and 3-byte remaining lengths, packets
    split across reads and wake-ups): every payload arrives whole, once, in publish order."""
    rng = random.Random(7)
    topic = "wattbus/v1/device/house-sim/sizes/reading"
    receiver = _Receiver(_admin(broker), [topic], "sub-sizes")
    pub = await started_bus(broker, PUBLISHER, "sizes")
    try:
        await asyncio.wait_for(receiver.sub.connected.wait(), 20)
        sent = [rng.randbytes(rng.choice([1, 60, 200, 16_000, 65_530, 65_536, 70_000, 300_000])) for _ in range(400)]
        for payload in sent:
            assert pub.publish(topic, payload)
        await until(lambda: len(receiver.got) >= len(sent), 60, f"{len(sent)} payloads")
        assert [p for _t, p in receiver.got] == sent
        assert {t for t, _p in receiver.got} == {topic}
    finally:
        await pub.stop()
        await receiver.close()


async def test_readings_not_acknowledged_come_back(broker: Mosquitto) -> None:
    """PUBACKs leave only through acknowledge(): what a stopped subscriber held comes back at the
    next connection of its session, and once acknowledged it is gone from the broker."""
    topic = topics.device_reading(PUBLISHER, "meter-held")
    bus = _admin(broker)
    holding = _Receiver(bus, [topic], "sub-held", hold=True, session_expiry_s=300)
    try:
        await asyncio.wait_for(holding.sub.connected.wait(), 20)
        await _publish(broker.port, broker.files.password(PUBLISHER), 30, "meter-held")
        await until(lambda: len(holding.got) == 30, 20, "30 readings, none acknowledged")
    finally:
        await holding.close()
    again = _Receiver(bus, [topic], "sub-held", session_expiry_s=300)
    try:
        await until(lambda: len(again.got) == 30, 20, "the 30 readings re-sent from the session")
        assert [p for _t, p in again.got] == [p for _t, p in holding.got]
        assert sum(len(t.mids) for t in holding.held) == 30
    finally:
        await again.close()
    third = _Receiver(bus, [topic], "sub-held", session_expiry_s=0)
    try:
        await asyncio.wait_for(third.sub.connected.wait(), 20)
        await asyncio.sleep(1.0)
        assert third.got == [], "acknowledged readings were sent again"
    finally:
        await third.close()


async def test_a_clean_close_returns_once_the_broker_has_the_acknowledgements(private_broker: Mosquitto) -> None:
    """The writer acknowledges its last batch and stops; a restart takes over the session at once.
    A busy broker reads one packet per wake-up, so it could serve the successor's CONNECT before the
    PUBACKs still waiting in its socket, and send those readings again. The broker is paused
    (SIGSTOP) from the acknowledgements to the successor's CONNECT, as a loaded machine holds it."""
    topic = topics.device_reading(PUBLISHER, "meter-restart")
    bus = _admin(private_broker)
    first = _Receiver(bus, [topic], "sub-restart", hold=True, session_expiry_s=300)
    await asyncio.wait_for(first.sub.connected.wait(), 20)
    await _publish(private_broker.port, private_broker.files.password(PUBLISHER), 30, "meter-restart")
    await until(lambda: len(first.got) == 30, 20, "30 readings, held")
    assert private_broker.proc is not None
    broker_pid = private_broker.proc.pid
    os.kill(broker_pid, signal.SIGSTOP)
    # A close that waits for the broker needs it back; one that does not returns at once.
    resume = asyncio.get_running_loop().call_later(1.0, os.kill, broker_pid, signal.SIGCONT)
    second: _Receiver | None = None
    try:
        first.sub.acknowledge(first.held)  # the batch is stored: its PUBACKs go out, then the stop
        await first.close()
        second = _Receiver(bus, [topic], "sub-restart", session_expiry_s=0)
        await until(lambda: second is not None and second.sub._client.socket() is not None, 10, "CONNECT sent")
        await asyncio.sleep(0.05)  # the CONNECT is on its way while the broker still sleeps
    finally:
        resume.cancel()
        os.kill(broker_pid, signal.SIGCONT)
    assert second is not None
    try:
        await asyncio.wait_for(second.sub.connected.wait(), 20)
        await asyncio.sleep(0.5)  # a session's readings arrive before the SUBACK; this is margin
        assert second.got == [], f"{len(second.got)} acknowledged readings were sent again"
    finally:
        await second.close()


async def test_tls_listener(tmp_path: Path) -> None:
    ca = make_certs(tmp_path / "certs")
    server = Broker(tmp_path / "tls", anonymous=False, tls_dir=ca.parent)
    server.start()
    assert server.tls_port
    bus = BusConfig(port=server.tls_port, username="influx-writer", password=server.files.password("influx-writer"),
                    tls=True, ca_file=str(ca))
    receiver = _Receiver(bus, [topics.ALL_READINGS], "influx-writer-sub-tls")
    try:
        await asyncio.wait_for(receiver.sub.connected.wait(), 20)
        await _publish(server.tls_port, server.files.password(PUBLISHER), 500, "meter-tls", ca)
        await until(lambda: len(receiver.got) == 500, 20, "500 readings over TLS")
        assert {t for t, _ in receiver.got} == {topics.device_reading(PUBLISHER, "meter-tls")}
    finally:
        await receiver.close()
        server.stop()


async def test_refusals_are_logged_counted_and_retried(broker: Mosquitto) -> None:
    wrong = _Receiver(_admin(broker, username="influx-writer", password="not-the-password", reconnect_min_s=0.2,
                             reconnect_max_s=0.4), [topics.ALL_READINGS], "sub-wrong")
    # Deeper than Mosquitto's 200 topic levels: the broker drops the connection at the SUBSCRIBE.
    bad_filter = _Receiver(_admin(broker, reconnect_min_s=0.2, reconnect_max_s=0.4),
                           ["wattbus/v1/" + "+/" * 250 + "reading"], "sub-bad-filter")
    try:
        await until(lambda: wrong.counters.get("ingest_connect_failures") >= 2, 20, "refused login retried")
        await until(lambda: bad_filter.counters.get("ingest_connect_failures") >= 2, 20, "refused filter retried")
        assert not wrong.sub.connected.is_set() and not bad_filter.sub.connected.is_set()
        assert wrong.counters.get("ingest_connects") == 0 == bad_filter.counters.get("ingest_connects")
    finally:
        await wrong.close()
        await bad_filter.close()


async def test_reconnects_after_the_broker_restarts(tmp_path: Path) -> None:
    server = Broker(tmp_path / "restart", anonymous=False)
    server.start()
    bus = BusConfig(port=server.port, username="influx-writer", password=server.files.password("influx-writer"),
                    reconnect_min_s=0.2, reconnect_max_s=1.0)
    receiver = _Receiver(bus, [topics.ALL_READINGS], "influx-writer-sub-restart")
    try:
        await asyncio.wait_for(receiver.sub.connected.wait(), 20)
        await _publish(server.port, server.files.password(PUBLISHER), 20, "meter-before")
        await until(lambda: len(receiver.got) == 20, 20, "20 readings before the restart")
        server.stop()
        await until(lambda: not receiver.sub.connected.is_set(), 20, "the loss noticed")
        server.start()
        await asyncio.wait_for(receiver.sub.connected.wait(), 30)
        await _publish(server.port, server.files.password(PUBLISHER), 20, "meter-after")
        await until(lambda: len(receiver.got) == 40, 20, "20 more after the restart")
        assert receiver.counters.get("ingest_connects") == 2
    finally:
        await receiver.close()
        server.stop()
