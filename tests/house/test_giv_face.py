"""The house as a GivEnergy hybrid: house_devices' giv face read by the real giv-bridge.

One simulated house serves its PV, grid, load and battery through the GivEnergy dongle framing
on loopback (wattbus_sim.giv with the house as its FlowProvider); the real giv-bridge process
polls it onto the real broker (real ACL, logged in as giv-bridge). The house clock only moves
when the test steps it, so every published value can be compared with the house's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Message
from wattbus_sim.house import House
from wattbus_sim.house_devices import HouseDevices

from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto

SOURCE = "giv-bridge"
INVERTER = "givenergy-sa2345g678"  # from the simulated inverter's serial (HR 13-17)
PACKS = ("givenergy-bg2345g001", "givenergy-dz2345g002")


class Seen:
    """The newest reading per device id on the bus."""

    def __init__(self) -> None:
        self.last: dict[str, m.ReadingBase] = {}

    def __call__(self, msg: Message[m.Reading]) -> None:
        self.last[msg.payload.device_id] = msg.payload

    def agrees(self, house: House) -> bool:
        """The bridge's newest readings equal the house's present values (within register rounding)."""
        inv, bat, grid = (self.last.get(INVERTER), self.last.get(f"{INVERTER}-battery"),
                          self.last.get(f"{INVERTER}-grid"))
        packs = [self.last.get(p) for p in PACKS]
        b = house.battery
        assert b is not None
        return (isinstance(inv, m.InverterReading) and isinstance(bat, m.BatteryReading)
                and isinstance(grid, m.MeterReading)
                and all(isinstance(p, m.BatteryReading) for p in packs)
                # PV is split over two strings, each truncated to whole watts
                and inv.dc_power_w is not None and abs(inv.dc_power_w - house.pv_power_w()) <= 2.0
                and bat.power_w is not None and abs(bat.power_w - b.power_w()) <= 1.0
                and bat.soc_pct is not None and abs(bat.soc_pct - b.soc_pct()) <= 0.5
                and grid.power_w is not None and abs(grid.power_w - house.grid_power_w()) <= 1.0
                and all(isinstance(p, m.BatteryReading) and p.soc_pct is not None
                        and abs(p.soc_pct - b.soc_pct()) <= 0.5 for p in packs))


async def test_giv_bridge_reads_the_house_and_its_writes_reach_the_house_battery(
        broker: Mosquitto, start_service: Callable[..., Any]) -> None:
    house = House.from_profile("clear", "12:30", with_heater=False)
    battery = house.battery
    assert battery is not None and battery.max_charge_w == 3500.0, "the clear profile's battery"
    house.step(1.0)  # one step so the battery carries the noon surplus
    devices = HouseDevices(house, goe_force=1)  # the go-e off: the noon surplus goes into the battery
    await devices.start(0, 0, None)
    # heartbeats every 3 s: the bridge must echo them to stay connected through the test
    port = await devices.start_giv(0, batteries=2, heartbeat_s=3.0, heartbeat_timeout_s=10.0)
    env = {**broker.env(SOURCE), "WATTBUS_GIV_BRIDGE_POLL_INTERVAL_S": "1",
           "WATTBUS_GIV_BRIDGE_INSTANCE": f"house{port}",
           "WATTBUS_GIV_BRIDGE_INVERTERS":
               f'[{{ host = "127.0.0.1", port = {port}, batteries = 2, battery_max_power_w = 3500 }}]'}
    bridge = start_service("wattbus_giv_bridge", env=env)
    bus = await started_bus(broker, "http-api", instance=f"house-giv{port}")
    seen = Seen()
    bus.subscribe(f"{topics.PREFIX}/device/{SOURCE}/+/reading", m.Reading, seen)

    def logs() -> str:
        return f"readings {seen.last}\n--- bridge\n{bridge.output()[-4000:]}"

    try:
        assert battery.power_w() < -1000 and house.pv_power_w() > 3000, "12:30 on a clear day charges"
        await until(lambda: seen.agrees(house), 45, f"giv-bridge readings = house values\n{logs()}")

        # the house moves on (20 simulated minutes): the readings follow its PV, SOC and battery
        soc_before = battery.soc_pct()
        house.step(1200.0)
        assert battery.soc_pct() > soc_before + 1
        await until(lambda: seen.agrees(house), 45, f"readings follow the house\n{logs()}")

        # writes the house battery can follow reach it through the dongle
        target = topics.device_command(SOURCE, INVERTER)
        for command in (m.SetBatteryReserve(soc_pct=20),
                        m.SetBatteryPowerLimit(direction="charge", power_w=1750),
                        m.SetBatteryPowerLimit(direction="discharge", power_w=2100)):
            result = await bus.request(target, command, timeout=20)
            assert result.status == "ok", (command, result.message, logs())
        assert battery.min_soc_pct == 20.0
        # HR 111/112 count in C/100 of the pack: the bridge rounds up to the next step
        step = battery.capacity_wh / 100
        assert battery.max_charge_w == pytest.approx(1750.0, abs=step)
        assert battery.max_discharge_w == pytest.approx(2100.0, abs=step)
        house.step(1.0)
        assert battery.power_w() == pytest.approx(-battery.max_charge_w), "the surplus is larger than the new limit"
        await until(lambda: seen.agrees(house), 45, f"the limited charge power on the bus\n{logs()}")

        # a charge target is accepted by the inverter's registers, but the house battery has none
        result = await bus.request(target, m.SetChargeTarget(soc_pct=80), timeout=20)
        assert result.status == "ok", result.message
        assert devices.giv is not None and devices.giv.not_followed.get(116, 0) >= 1
    finally:
        await bus.stop()
        await devices.stop()
    assert "Traceback" not in bridge.output(), logs()
