"""wattbus.adoption: the announcement filter every bridge shares, on real payloads and the real broker."""

from __future__ import annotations

from typing import Any

import pytest
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.adoption import Adoption, Decision, Target, target_of
from wattbus.counters import Counters

from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto


@pytest.fixture
def broker(private_broker: Mosquitto) -> Mosquitto:
    """A broker of this module's own: other tests leave retained discovery announcements on the
    session broker, and a bridge would rightly adopt those too."""
    return private_broker


def ann(**fields: Any) -> m.DeviceAnnouncement:
    values: dict[str, Any] = {"device_id": "sma-3004512345", "protocol": "sunspec", "address": "192.168.1.20",
                              "port": 502, "unit_id": 126, "serial": "3004512345", "manufacturer": "SMA"}
    values.update(fields)
    return m.DeviceAnnouncement(**values)


@pytest.mark.parametrize(("address", "port", "expected"), [
    ("192.168.1.20", 502, Target("192.168.1.20", 502, 126)),
    ("192.168.1.20:1502", None, Target("192.168.1.20", 1502, 126)),
    ("192.168.1.20:1502", 502, Target("192.168.1.20:1502", 502, 126)),  # an explicit port: address kept as is
    ("fd00::20", None, Target("fd00::20", None, 126)),
    ("charger.local:80x", None, Target("charger.local:80x", None, 126)),
])
def test_target_of(address: str, port: int | None, expected: Target) -> None:
    assert target_of(ann(address=address, port=port)) == expected


def test_start_repeat_move_absent() -> None:
    adoption = Adoption(["sunspec"])
    assert adoption.judge(ann()).action == "start"
    assert adoption.judge(ann()).action == "same"  # every sweep repeats it
    assert adoption.judge(ann(present=False)).action == "absent"  # kept, availability handles it
    assert adoption.judge(ann()).action == "same"
    moved = adoption.judge(ann(address="192.168.1.77"))
    assert (moved.action, moved.previous, moved.target.host) == ("move", Target("192.168.1.20", 502, 126),
                                                                 "192.168.1.77")
    assert adoption.judge(ann(address="192.168.1.77")).action == "same"
    adoption.forget("sma-3004512345")
    assert adoption.judge(ann(address="192.168.1.77")).action == "start"


@pytest.mark.parametrize("deny", ["3004512345", "SMA-3004512345", "192.168.1.20", "192.168.1.20:502", " 192.168.1.20 "])
def test_deny_by_serial_id_or_address(deny: str) -> None:
    adoption = Adoption(["sunspec"], deny=[deny, ""])
    assert adoption.judge(ann()).action == "denied"
    assert adoption.judge(ann(address="192.168.1.21", serial="other", device_id="sma-other")).action == "start"


@pytest.mark.parametrize("pin", ["3004512345", "sma-3004512345", "192.168.1.20:502"])
def test_configured_devices_are_pinned(pin: str) -> None:
    adoption = Adoption(["sunspec"])
    adoption.pin(pin, None)
    assert adoption.judge(ann()).action == "pinned"
    assert adoption.is_pinned(pin.upper())


def test_other_protocols_and_adoption_off() -> None:
    assert Adoption(["goe", "shelly"]).judge(ann()).action == "foreign"
    assert Adoption(["sunspec"], enabled=False).judge(ann()).action == "disabled"
    assert Adoption(["goe", "shelly"]).judge(ann(protocol="shelly", device_id="shelly-a8032ab12345")).action == "start"


@pytest.mark.parametrize(("topic", "payload", "rejected"), [
    (topics.DISCOVERY_COMMAND, codec.encode(m.Rescan()), 0),  # the command shares the filter: skipped
    (topics.discovery("sma-1"), b"", 0),  # a cleared retained announcement
    (topics.discovery("sma-1"), b"{", 1),
    (topics.discovery("sma-1"), b'{"device_id": "sma-1", "protocol": "modbus-x", "address": "h"}', 1),
    (topics.discovery("sma-1"), b'{"device_id": "sma/1", "protocol": "sunspec", "address": "h"}', 1),
    (topics.discovery("sma-1"), b'{"device_id": "sma-1", "protocol": "sunspec", "address": ""}', 1),
    (topics.discovery("sma-1"), b'{"device_id": "sma-1", "protocol": "sunspec", "address": "\xff"}', 1),
])
def test_parse_skips_and_rejects(topic: str, payload: bytes, rejected: int) -> None:
    counters = Counters()
    adoption = Adoption(["sunspec"], counters=counters)
    assert adoption.parse(topic, payload) is None
    assert counters.get("announcements_rejected") == rejected


def test_parse_a_discovery_payload() -> None:
    payload = codec.encode(ann(via="sweep", extra={"models": "1,103,160", "base": 40000}))
    parsed = Adoption(["sunspec"]).parse(topics.discovery("sma-3004512345"), payload)
    assert parsed is not None and parsed.unit_id == 126 and parsed.extra["base"] == 40000


async def test_subscribe_on_the_real_broker(broker: Any) -> None:
    """Retained announcements from the `discovery` user reach the handler once each; declined ones come back."""
    discovery = await started_bus(broker, "discovery", instance="adoption-test")
    bridge = await started_bus(broker, "sunspec-bridge", instance="adoption-test")
    decisions: list[Decision] = []
    declined: list[str] = []

    def handler(decision: Decision) -> bool:
        if decision.announcement.device_id == "sma-declined":
            declined.append(decision.action)
            return False
        decisions.append(decision)
        return True

    counters = Counters()
    adoption = Adoption(["sunspec"], deny=["denied-serial"], counters=counters)
    ids = ["sma-adopt-1", "sma-denied", "sma-declined", "goe-foreign"]
    try:
        discovery.publish(topics.discovery(ids[0]), ann(device_id=ids[0], address="127.0.0.1", port=1502), retain=True)
        discovery.publish(topics.discovery(ids[1]), ann(device_id=ids[1], serial="denied-serial"), retain=True)
        discovery.publish(topics.discovery(ids[2]), ann(device_id=ids[2], serial="x"), retain=True)
        discovery.publish(topics.discovery(ids[3]), ann(device_id=ids[3], protocol="goe"), retain=True)
        discovery.publish(topics.discovery("sma-garbage"), b"[]", retain=True)
        discovery.publish(topics.DISCOVERY_COMMAND, m.Rescan())
        adoption.subscribe(bridge, handler)
        await until(lambda: bool(decisions) and counters.get("adopt_denied") == 1 and bool(declined)
                    and counters.get("announcements_rejected") == 1, 10, "retained announcements handled")
        discovery.publish(topics.discovery(ids[2]), ann(device_id=ids[2], serial="x"), retain=True)
        discovery.publish(topics.discovery(ids[0]), ann(device_id=ids[0], address="127.0.0.2", port=1502), retain=True)
        await until(lambda: len(decisions) == 2 and len(declined) == 2, 10, "the move and the declined one again")
        assert [(d.action, d.target.host) for d in decisions] == [("start", "127.0.0.1"), ("move", "127.0.0.2")]
        assert counters.get("adopt_start") == 1 and counters.get("adopt_move") == 1
        assert declined == ["start", "start"]
    finally:
        for device_id in [*ids, "sma-garbage"]:
            discovery.publish(topics.discovery(device_id), b"", retain=True)
        await discovery.stop()
        await bridge.stop()
