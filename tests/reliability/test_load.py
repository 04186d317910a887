"""Load: a flood of malformed messages on a bridge's command topic, many devices on one bridge,
and a payload that is not UTF-8 on a Struct-typed subscription."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus_sim.ecu import EcuSimulator, fleet_from_text

from tests.reliability.goe_rig import SOURCE, bridge_config, chargers, rss_kib, watch
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto

MALFORMED: list[bytes] = [
    b"", b"not json", b"{", b"[]", b"null", b"{}", b'{"command":"warp_speed"}',
    b'{"command":"set_charge_current","current_a":"16"}', b'{"command":"set_charge_current","current_a":1e308}',
    b'{"command":"set_charge_current","current_a":-6}', b'{"command":"set_relay","on":"yes"}',
    b'{"command":"set_charge_slot","start":"2500","end":"0100"}', b"\x00\xff" * 64,
    b'{"command":"set_charging","enabled":true,"request_id":' + b'"x' * 20000 + b'"}',
    b'{"command":"set_phases","phases":2}', b'{"command":"set_charging"' + b"," * 5000 + b"}",
]


def flood_size() -> int:
    return int(os.environ.get("WATTBUS_FLOOD", "1200"))


async def test_malformed_flood_on_command_topic(broker: Mosquitto, start_service: Any, tmp_path: Path,
                                                record_property: Callable[[str, object], None]) -> None:
    sims = await chargers(1)
    dev = sims[0].device_id
    admin = await started_bus(broker, "test-admin", "flood")
    seen = watch(admin)
    proc = start_service("wattbus_goe_shelly_bridge", "--config", str(bridge_config(tmp_path, sims)),
                         env=broker.env(SOURCE))
    topic = topics.device_command(SOURCE, dev)
    try:
        await until(lambda: seen.availability.get(dev) == "online", 30, "go-e online")
        rss_before = rss_kib(proc.proc.pid)
        total = flood_size()
        for index in range(total):
            admin.publish(topic, MALFORMED[index % len(MALFORMED)])
        await until(lambda: seen.counter("commands_invalid") >= total * 14 // 16, 90,
                    "malformed commands counted as invalid")
        # Good messages still flow: a valid command is confirmed, readings continue. Under a loaded
        # machine a poll may time out during the flood (the device shows offline and a command
        # then fails fast with that reason): wait until it is back, as a client would.
        await until(lambda: seen.availability.get(dev) == "online", 60, "go-e online after the flood")
        result = await admin.request(topic, m.SetChargeCurrent(current_a=9), timeout=30)
        if result.status == "failed" and "not reachable" in result.message:
            await until(lambda: seen.availability.get(dev) == "online", 60, "go-e back online")
            result = await admin.request(topic, m.SetChargeCurrent(current_a=9), timeout=30)
        assert result.status == "ok", result
        count = seen.readings.get(dev, 0)
        await until(lambda: seen.readings.get(dev, 0) >= count + 2, 20, "readings after the flood")
        assert proc.proc.poll() is None
        grown_mib = (rss_kib(proc.proc.pid) - rss_before) / 1024
        record_property("flood_messages", total)
        record_property("commands_invalid", seen.counter("commands_invalid"))
        record_property("handler_errors", seen.counter("handler_errors"))
        record_property("rss_before_mib", round(rss_before / 1024, 1))
        record_property("rss_growth_mib", round(grown_mib, 1))
        assert grown_mib < 64, f"the bridge grew by {grown_mib:.1f} MiB during the flood"
        assert sims[0].firmware.amp == 9
    finally:
        await admin.stop()
        await sims[0].stop()


async def test_many_devices_one_bridge(broker: Mosquitto, start_service: Any, tmp_path: Path,
                                       record_property: Callable[[str, object], None]) -> None:
    count = int(os.environ.get("WATTBUS_MANY_DEVICES", "30"))
    sims = await chargers(count, first_serial=300000)
    admin = await started_bus(broker, "test-admin", "many")
    seen = watch(admin)
    proc = start_service("wattbus_goe_shelly_bridge", "--config", str(bridge_config(tmp_path, sims, poll_s=1.0)),
                         env=broker.env(SOURCE))
    try:
        await until(lambda: all(seen.readings.get(s.device_id, 0) >= 3 for s in sims), max(90.0, count * 0.9),
                    f"3 readings from each of {count} devices")
        await until(lambda: seen.status is not None and seen.status.devices >= count, 20, "status counts devices")
        # Sustained load: every device keeps reading for the whole window (figures, not a timing test).
        window = float(os.environ.get("WATTBUS_LOAD_S", "3"))
        start = dict(seen.readings)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.sleep(window)  # the measuring window itself, not a wait for a condition
        await until(lambda: all(seen.readings[s.device_id] > start[s.device_id] for s in sims), 60,
                    "every device read again during the window")
        took = loop.time() - began
        assert proc.proc.poll() is None
        record_property("devices", count)
        record_property("window_s", round(took, 1))
        record_property("readings_per_s", round((sum(seen.readings.values()) - sum(start.values())) / took, 1))
        record_property("bridge_rss_mib", round(rss_kib(proc.proc.pid) / 1024, 1))
    finally:
        await admin.stop()
        for sim in sims:
            await sim.stop()


async def test_not_utf8_command_does_not_deafen_a_service(broker: Mosquitto, start_service: Any,
                                                          tmp_path: Path) -> None:
    """ecu-bridge subscribes its commands as m.Command: after one bad payload it must still answer.
    Regression: found by this suite (the payload ended Bus._dispatch), fixed in b4c689c."""
    sim = EcuSimulator(model="ECU-R", fleet=fleet_from_text("01:1"), refresh_s=0.3, pv_fraction=0.5)
    await sim.start(0)
    config = tmp_path / "ecu.toml"
    config.write_text(f'[ecu-bridge]\nstatus_interval_s = 1\n[[ecu-bridge.ecus]]\nhost = "127.0.0.1"\n'
                      f"port = {sim.port}\npoll_interval_s = 0.5\n")
    admin = await started_bus(broker, "test-admin", "utf8")
    start_service("wattbus_ecu_bridge", "--config", str(config), env=broker.env("ecu-bridge"))
    topic = topics.device_command("ecu-bridge", "apsystems-nothing")
    try:
        # Commands are not retained: ask until the bridge has subscribed (it answers `refused`).
        before = m.CommandResult(status="timeout")
        for _attempt in range(15):
            before = await admin.request(topic, m.SetCharging(enabled=True), timeout=2)
            if before.status != "timeout":
                break
        assert before.status == "refused", before
        admin.publish(topic, b'{"command":"rescan","request_id":"Z\xe4hler"}')
        after = await admin.request(topic, m.SetCharging(enabled=True), timeout=10)
        assert after.status == "refused", f"the bridge stopped answering after one non-UTF-8 payload: {after}"
    finally:
        await admin.stop()
        await sim.stop()
