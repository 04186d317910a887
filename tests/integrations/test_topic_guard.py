"""Issue #21, item 8: a rule whose rendered topic contains CR/LF or `#` dropped the service's broker
connection on every reading ("Malformed packet"). Now the topic is refused at render time, counted,
logged once, and the connection (and every other device's messages) carries on. Real broker with
the shipped ACL, the real service, a bridge's bus user publishing the devices."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Message
from wattbus_integrations.render import MAX_TOPIC_BYTES, topic_problem

from tests.integrations.helpers import metas, readings
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto

CHARGER = metas()["goe-203040"]
READING: m.ReadingBase = next(r for _n, r, _raw in readings() if r.device_id == CHARGER.device_id)
BAD_NAMES = {"goe-crlf": "Garage\r\nwallbox", "goe-hash": "Garage #1", "goe-plus": "a+b", "goe-nul": "x\x00y"}
GOOD = "goe-fine"


@pytest.mark.parametrize(("topic", "problem"), [
    ("integrations/a/b", None), ("integrations/äöü/€", None),
    ("", "empty"), ("$SYS/x", "$"), ("integrations/#", "wildcard"), ("integrations/+/x", "wildcard"),
    ("integrations/a\r\nb", "U+000D"), ("integrations/a\x00", "U+0000"), ("integrations/\x7f", "U+007F"),
    ("integrations/\x85", "U+0085"), ("integrations/\ud800", "U+D800"), ("integrations/\uffff", "U+FFFF"),
    ("i/" + "x" * MAX_TOPIC_BYTES, "at most 65535"), ("i/" + "€" * 21845, "at most 65535"),
])
def test_topic_problem_names_what_is_wrong(topic: str, problem: str | None) -> None:
    found = topic_problem(topic)
    assert (found is None) == (problem is None) and (problem is None or problem in str(found)), found


async def test_a_bad_rendered_topic_is_refused_and_the_connection_stays(
        broker: Mosquitto, tmp_path: Path, start_service: Callable[..., Any],
        record_property: Callable[[str, object], None]) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "by-name"\nkinds = ["charger"]\n[rule.mqtt]\n'
                     'topic = "integrations/guard/{{name}}/{{device_id}}"\npayload = "{{power_w}}"\n')
    config = tmp_path / "wattbus.toml"
    # An instance of its own: the session broker keeps other tests' retained status of instance "main".
    config.write_text(f'[integrations]\ninstance = "guard"\nstatus_interval_s = 1\nhass_enabled = false\n'
                      f'template_files = ["{rules}"]\n')
    observer = await started_bus(broker, "test-admin", "guard")
    bridge = await started_bus(broker, "goe-shelly-bridge", "guard")
    seen: list[Message[bytes]] = []
    for pattern in ("integrations/#", topics.service_availability("integrations", "guard"),
                    topics.service_status("integrations", "guard")):
        observer.subscribe(pattern, bytes, seen.append)
    devices = {**BAD_NAMES, GOOD: "Carport"}
    try:
        for device_id, name in devices.items():
            meta = msgspec.structs.replace(CHARGER, device_id=device_id, name=name)
            bridge.publish(topics.device_meta(CHARGER.source, device_id), meta, retain=True)
        proc = start_service("wattbus_integrations", "--config", str(config), env=broker.env("integrations"))

        def status() -> m.ServiceStatus | None:
            payloads = [msg.payload for msg in seen if msg.topic.endswith("/status")]
            return codec.decode(payloads[-1], m.ServiceStatus) if payloads else None

        await until(lambda: (s := status()) is not None and s.counters.get("messages_in", 0) > 0, 30, "the service")
        good = f"integrations/guard/Carport/{GOOD}"
        rounds = 10
        for n in range(rounds):  # every reading of every bad device would have cost the connection
            for device_id in devices:
                reading = msgspec.structs.replace(READING, device_id=device_id, power_w=1000.0 + n)
                bridge.publish(topics.device_reading(CHARGER.source, device_id), reading)
            await asyncio.sleep(0.1)
        await until(lambda: len([s for s in seen if s.topic == good]) == rounds, 20, "every good message")
        refused = len(BAD_NAMES) * rounds
        await until(lambda: (s := status()) is not None and s.counters.get("template_topic_refused") == refused,
                    20, f"{refused} refusals counted")
        assert [s.payload for s in seen if s.topic == good] == [str(1000 + n).encode() for n in range(rounds)]
        assert not [s.topic for s in seen if s.topic.startswith("integrations/") and s.topic != good]
        availability = [s.payload for s in seen if s.topic.endswith("/availability")]
        assert availability and m.OFFLINE.encode() not in availability, availability  # never dropped
        lines = [line for line in proc.output().splitlines() if "rendered topic refused" in line]
        assert len(lines) == 1 and "by-name" in lines[0], lines  # one rule: logged once
        assert "Malformed" not in proc.output() and "disconnected" not in proc.output().lower()
        record_property("refused", f"{refused} messages with a bad topic refused and counted, 1 log line, "
                                   f"{rounds}/{rounds} good messages, availability never offline")
    finally:
        for device_id in devices:
            bridge.publish(topics.device_meta(CHARGER.source, device_id), b"", retain=True)
        await bridge.stop()
        await observer.stop()
