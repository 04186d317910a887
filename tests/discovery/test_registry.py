"""Device identity over time: stable ids, DHCP moves, misses before gone, mDNS goodbyes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from wattbus import messages as m
from wattbus_discovery.found import Found
from wattbus_discovery.registry import Registry

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def giv(address: str) -> Found:
    return Found("givenergy", address, 8899, "SA2345G678", "GivEnergy", kind="inverter")


def test_same_serial_at_a_new_address_is_the_same_device() -> None:
    reg = Registry(gone_after=2)
    first, moved = reg.seen(giv("192.168.1.20"), T0)
    assert moved is None and first.device_id == "givenergy-sa2345g678"
    again, moved = reg.seen(giv("192.168.1.57"), T0 + timedelta(hours=1))
    assert moved == "192.168.1.20:8899" and again.address == "192.168.1.57"
    assert again.first_seen == T0 and again.last_seen == T0 + timedelta(hours=1)
    assert len(reg.entries) == 1


def test_gone_after_consecutive_misses_only() -> None:
    reg = Registry(gone_after=2)
    ann, _ = reg.seen(giv("10.0.0.5"), T0)
    assert reg.end_sweep(set()) == []  # one miss: a device can be busy for one sweep
    assert reg.end_sweep({ann.device_id}) == []  # seen again: the count starts over
    assert reg.end_sweep(set()) == []
    gone = reg.end_sweep(set())
    assert [g.device_id for g in gone] == [ann.device_id] and not gone[0].present
    assert reg.end_sweep(set()) == []  # announced gone once, not every sweep
    back, _ = reg.seen(giv("10.0.0.5"), T0)
    assert back.present


def test_device_ids_match_the_bridges() -> None:
    cases = [
        (Found("sunspec", "h", 502, "3004512345", "SMA", unit_id=126), "sma-3004512345"),
        (Found("sunspec", "h", 502, None, None, unit_id=3), "sunspec-h-502-3"),
        (Found("aps-ecu", "h", 8899, "216200123456"), "apsystems-ecu-216200123456"),
        (Found("goe", "h", 80, "012345"), "goe-012345"),
        (Found("shelly", "h", 80, "A8032AB12345"), "shelly-a8032ab12345"),
    ]
    for found, device_id in cases:
        assert found.device_id == device_id


def test_restore_and_mdns_goodbye() -> None:
    reg = Registry(gone_after=3)
    old = m.DeviceAnnouncement(device_id="goe-1", protocol="goe", address="10.0.0.9", port=80, first_seen=T0)
    assert reg.restore(old) and not reg.restore(old)
    assert reg.removed("goe-1") is not None and reg.removed("goe-1") is None
    assert reg.removed("unknown") is None
    assert reg.present() == []
