"""Fleet mode: the shipped Mosquitto bridge config between two real brokers with the real ACL.

The site broker runs mosquitto/bridge.conf.example (TLS lines removed: both ends are on
loopback); the central broker lets the site's user write only under sites/<site>/.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Bus, Message
from wattbus.embedded import write_broker

from tests.support.bus_helpers import started_bus, until
from tests.support.servers import ROOT, TEST_ADMIN, Mosquitto

SITE = "site-0042"
INTRUDER = "site-0099"
ADMIN_ACL = f"\nuser {TEST_ADMIN}\ntopic readwrite #\ntopic readwrite $SYS/#\n"
CENTRAL_ACL = "\n# fleet: each site's bridge writes under its own prefix only\npattern readwrite sites/%u/#\n"


def render_example(site: str, port: int, password: str) -> str:
    text = (ROOT / "mosquitto" / "bridge.conf.example").read_text()
    lines = [line for line in text.splitlines() if not line.startswith(("bridge_cafile", "bridge_tls_version"))]
    return ("\n".join(lines).replace("SITE_ID", site).replace("CENTRAL_HOST:8883", f"127.0.0.1:{port}")
            .replace("CHANGE-ME", password)) + "\n"


@pytest.fixture
def fleet(tmp_path: Path) -> Any:
    central = Mosquitto(tmp_path / "central")
    central.files = write_broker(ROOT, tmp_path / "central", central.port, anonymous=False,
                                 extra_users=(TEST_ADMIN, SITE, INTRUDER), extra_acl=ADMIN_ACL + CENTRAL_ACL,
                                 persistence=False)
    site = Mosquitto(tmp_path / "site")
    with site.files.conf.open("a") as conf:
        conf.write(render_example(SITE, central.port, central.files.password(SITE)))
    central.start()
    site.start()
    yield central, site
    site.stop()
    central.stop()


class Recorder:
    def __init__(self, bus: Bus, subscription: str) -> None:
        self.got: list[tuple[str, bytes, bool]] = []
        bus.subscribe(subscription, bytes, self.on)

    def on(self, msg: Message[bytes]) -> None:
        self.got.append((msg.topic, bytes(msg.payload), msg.retained))

    def topics(self) -> list[str]:
        return [t for t, _, _ in self.got]


async def test_site_bus_reaches_central_under_prefix(fleet: Any) -> None:
    central, site = fleet
    meter = await started_bus(site, "sml-reader", "bridge-test")
    meta = m.DeviceMeta(device_id="emh-1esy1160123456", kind="meter", source="sml-reader", protocol="sml",
                        serial="1ESY1160123456")
    meter.publish(topics.device_meta("sml-reader", meta.device_id), meta, retain=True)
    watch = await started_bus(central, TEST_ADMIN, "central-watch")
    seen = Recorder(watch, "sites/#")
    prefix = f"sites/{SITE}/"
    await until(lambda: f"{prefix}bridge/state" in seen.topics(), 20, "bridge connected")
    await until(lambda: prefix + topics.device_meta("sml-reader", meta.device_id) in seen.topics(), 20,
                "retained meta forwarded")
    reading = m.MeterReading(device_id=meta.device_id, timestamp=datetime(2026, 5, 1, 12, tzinfo=UTC),
                             power_w=-1234.5, energy_import_wh=4.2e6)
    sent = codec.encode(reading)
    meter.publish(topics.device_reading("sml-reader", meta.device_id), sent)
    reading_topic = prefix + topics.device_reading("sml-reader", meta.device_id)
    await until(lambda: reading_topic in seen.topics(), 20, "reading forwarded")
    payload = next(p for t, p, _ in seen.got if t == reading_topic)
    assert payload == sent  # byte for byte: the central side decodes the same contract
    assert codec.decode(payload, m.MeterReading).power_w == -1234.5
    state = [p for t, p, _ in seen.got if t == f"{prefix}bridge/state"]
    assert state[-1] == b"1"
    await meter.stop()
    await watch.stop()


async def test_commands_come_in_and_do_not_loop(fleet: Any) -> None:
    central, site = fleet
    bridge = await started_bus(site, "sml-reader", "bridge-cmd")
    commands: list[Message[m.Command]] = []
    bridge.subscribe(topics.commands_for("sml-reader"), m.Command, commands.append)
    watch = await started_bus(central, TEST_ADMIN, "central-cmd")
    seen = Recorder(watch, f"sites/{SITE}/#")
    target = topics.device_command("sml-reader", "emh-1")
    command = codec.encode(m.Restart(request_id="fleet-1"))
    inbound = f"sites/{SITE}/to-site/{target}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    sends = 0
    while not commands:  # the bridge subscribes on central a moment after it connects
        assert loop.time() < deadline, "command from central never reached the site"
        watch.publish(inbound, command)
        sends += 1
        await asyncio.sleep(0.5)
    assert commands[0].payload.request_id == "fleet-1"
    assert commands[0].topic == target  # the to-site prefix is gone on the site's bus
    watch.publish(inbound, command)
    sends += 1
    await until(lambda: len(commands) >= 2, 20, "second command")
    await asyncio.sleep(2)  # a loop between the brokers would multiply the copies by now
    assert len(commands) <= sends
    copies = [t for t in seen.topics() if t.endswith("/command")]
    assert all(t == inbound for t in copies), copies  # nothing bounced back under sites/<site>/wattbus/
    assert len(copies) == sends
    await bridge.stop()
    await watch.stop()


async def test_central_acl_keeps_sites_apart(fleet: Any) -> None:
    central, _site = fleet
    intruder = await started_bus(central, INTRUDER, "intruder")
    watch = await started_bus(central, TEST_ADMIN, "central-acl")
    seen = Recorder(watch, "sites/#")
    await asyncio.sleep(0.5)  # the watcher's subscription is in place before anything is sent
    intruder.publish(f"sites/{SITE}/wattbus/v1/device/sml-reader/fake/reading", b"{}")
    intruder.publish(f"sites/{INTRUDER}/wattbus/v1/device/sml-reader/own/reading", b"{}")
    await until(lambda: f"sites/{INTRUDER}/wattbus/v1/device/sml-reader/own/reading" in seen.topics(), 20,
                "the intruder's own prefix works")
    assert not any(t.startswith(f"sites/{SITE}/wattbus/v1/device/sml-reader/fake") for t in seen.topics())
    await intruder.stop()
    await watch.stop()
