"""Issue 21's broker attacks against a real Mosquitto with the shipped ACL and limits (the embedded
demo's broker: anonymous read-only clients admitted, per-service users): forged command results, an
oversized packet, and what an anonymous client reads (client-id takeover: test_client_ids.py).
reliability/REPORT.md states each attack as expected -> observed."""

# ruff: noqa: F811

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Bus
from wattbus.config import BusConfig
from wattbus.embedded import BROKER_LIMITS, broker_limits

from tests.reliability.brokers import Broker
from tests.reliability.mqtt_probe import NOT_AUTHORIZED, Probe
from tests.reliability.test_acl import demo_broker as demo  # noqa: F401  (the demo broker fixture)
from tests.reliability.waiting import wait_for
from tests.support.bus_helpers import subscriptions_active, until
from tests.support.servers import ROOT, TEST_ADMIN

READING = "wattbus/v1/device/sml-reader/emh-1/reading"
COMMAND = topics.device_command("goe-shelly-bridge", "goe-1")


def bus_config(broker: Broker, user: str, **extra: Any) -> BusConfig:
    return BusConfig(host="127.0.0.1", port=broker.port, username=user, password=broker.files.password(user),
                     reconnect_max_s=1.0, **extra)


class Answerer:
    """A client logged in as `user` that records the v5 properties of what it receives."""

    def __init__(self, broker: Broker, user: str | None) -> None:
        self.seen: list[tuple[str, str | None, bytes | None]] = []
        self.probe = Probe(broker.port, user, broker.files.password(user) if user else None)
        assert (reason := self.probe.connect()) is not None and not reason.is_failure
        self.probe.client.on_message = self._on_message
        self.probe.subscribe("#")

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        props = msg.properties
        self.seen.append((msg.topic, getattr(props, "ResponseTopic", None), getattr(props, "CorrelationData", None)))

    def answer(self, topic: str, status: str, correlation: bytes) -> None:
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.CorrelationData = correlation
        info = self.probe.client.publish(topic, codec.encode(m.CommandResult(status=status)), qos=1,
                                         properties=props)
        info.wait_for_publish(10)

    def commands(self) -> list[tuple[str, str | None, bytes | None]]:
        return [s for s in self.seen if s[0].endswith("/command")]


async def test_forged_command_result_is_not_taken(demo: Broker) -> None:
    """Issue 21 item 6: with the bridge hung, an sml-reader login answered the http-api's command."""
    requester = Bus(bus_config(demo, "http-api"), "http-api", "main")
    await requester.start()
    assert await requester.wait_connected(10)
    forger = await asyncio.to_thread(Answerer, demo, "sml-reader")
    anonymous = await asyncio.to_thread(Answerer, demo, None)
    bridge = await asyncio.to_thread(Answerer, demo, "goe-shelly-bridge")
    try:
        # The bridge is hung: nobody answers; the forger answers everything it can see or guess.
        hung = asyncio.create_task(requester.request(COMMAND, m.SetCharging(enabled=True), timeout=3))
        await until(lambda: bool(bridge.commands()), 10, "the command at its addressee")
        inbox = topics.reply("http-api", "main", "result")
        _topic, reply_to, real = bridge.commands()[0]
        assert reply_to == inbox and real  # the addressee has it all
        assert forger.commands() == [] and anonymous.commands() == [], "a command was readable by others"
        # Guesses: a constant, a fresh random value, half of the real one (as if leaked in part).
        for guess in (b"\0", uuid.uuid4().bytes, real[:8]):
            await asyncio.to_thread(forger.answer, inbox, "ok", guess)
        result = await hung
        assert result.status == "timeout", f"a forged answer was taken: {result}"
        # The Home Assistant account answers nothing: it may not even write to an inbox.
        ha = Probe(demo.port, "homeassistant", demo.files.password("homeassistant"))
        assert ha.connect() is not None and ha.publish_reason(inbox) == NOT_AUTHORIZED
        ha.close()

        # The real addressee's answer still arrives; nobody else sees the result.
        pending = asyncio.create_task(requester.request(COMMAND, m.SetCharging(enabled=False), timeout=10))
        await until(lambda: len(bridge.commands()) == 2, 10, "the second command")
        _topic, reply_to, correlation = bridge.commands()[1]
        assert reply_to and correlation
        await asyncio.to_thread(bridge.answer, reply_to, "ok", correlation)
        assert (await pending).status == "ok"
        assert not [s for s in forger.seen + anonymous.seen if s[0].startswith("wattbus/v1/reply/")]
    finally:
        await requester.stop()
        for client in (forger, anonymous, bridge):
            client.probe.close()


def test_anonymous_demo_client_reads_no_commands_or_replies(demo: Broker) -> None:
    anon = Probe(demo.port, None, None)
    admin = Probe(demo.port, TEST_ADMIN, demo.files.password(TEST_ADMIN))
    private = [COMMAND, "wattbus/v1/service/influx-writer/main/command", "wattbus/v1/service/http-api/all/command",
               "wattbus/v1/loadpoint/lp1/command", topics.DISCOVERY_COMMAND, "wattbus/v1/reply/http-api/main/result"]
    public = ["wattbus/v1/device/sml-reader/emh-1/reading", "wattbus/v1/loadpoint/lp1/state",
              "wattbus/v1/service/http-api/main/status", "wattbus/v1/discovery/sma-1", "homeassistant/status"]
    try:
        assert (reason := anon.connect()) is not None and not reason.is_failure
        anon.subscribe("#")
        assert admin.connect() is not None
        for topic in private + public:
            admin.publish_reason(topic, b"x")
        wait_for(lambda: set(public) <= anon.topics_received(), "the public topics at the anonymous client")
        assert not set(private) & anon.topics_received()
        for topic in private:
            assert anon.publish_reason(topic) == NOT_AUTHORIZED, topic
    finally:
        anon.close()
        admin.close()


async def test_oversized_packet_is_refused_without_affecting_others(demo: Broker) -> None:
    limit = int(next(line for line in broker_limits(ROOT) if line.startswith("max_packet_size")).split()[1])
    got: list[bytes] = []
    bystander = Bus(bus_config(demo, "http-api"), "http-api", "main")
    bystander.subscribe(topics.ALL_READINGS, bytes, lambda msg: got.append(msg.payload))
    await bystander.start()
    assert await bystander.wait_connected(10)
    await subscriptions_active(bystander)
    sender = Probe(demo.port, "sml-reader", demo.files.password("sml-reader"))
    dropped = threading.Event()
    try:
        assert (reason := sender.connect()) is not None and not reason.is_failure
        sender.client.on_disconnect = lambda *_a: dropped.set()
        assert sender.publish_reason(READING, b"x" * (limit // 2)) < 0x80  # big but legitimate
        sender.client.publish(READING, b"x" * (limit + 1), qos=1)
        assert await asyncio.to_thread(dropped.wait, 10), "an oversized packet was accepted"
        await until(lambda: len(got) >= 1, 10, "the legitimate big reading")
        await asyncio.sleep(0.3)
        assert [len(p) for p in got] == [limit // 2] and bystander.connected
        ok = Probe(demo.port, "sml-reader", demo.files.password("sml-reader"))
        assert ok.connect() is not None and ok.publish_reason(READING, b"small") < 0x80  # the account is not banned
        ok.close()
        await until(lambda: got[-1] == b"small", 10, "a reading after the refusal")
    finally:
        sender.close()
        await bystander.stop()


def test_demo_and_compose_enforce_the_same_limits(demo: Broker) -> None:
    demo_conf = demo.files.conf.read_text().splitlines()
    limits = broker_limits(ROOT)
    assert {line.split()[0] for line in limits} == set(BROKER_LIMITS)
    assert all(line in demo_conf for line in limits)
    listener = next(i for i, line in enumerate(demo_conf) if line.startswith("listener "))
    assert demo_conf.index(next(x for x in limits if x.startswith("max_connections"))) > listener
