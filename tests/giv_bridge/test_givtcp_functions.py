"""GivTCP's timed functions against the simulated inverter: written, confirmed, and put back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import pytest
from wattbus import messages as m
from wattbus.counters import Counters
from wattbus.log import Logger
from wattbus_giv_bridge import controls
from wattbus_giv_bridge.dongle import Dongle
from wattbus_giv_bridge.givtcp_control import GivAction, GivFunctions
from wattbus_giv_bridge.plant import InverterConfig, Plant

from tests.giv_bridge.conftest import GivSim


@pytest.fixture
async def plant(giv_sim: GivSim) -> AsyncIterator[Plant]:
    p = Plant(InverterConfig(host="127.0.0.1", port=giv_sim.port, batteries=2),
              Dongle("127.0.0.1", giv_sim.port, Counters(), Logger("test"), timeout_s=2.0))
    await p.poll()
    yield p
    await p.dongle.close()


def _holding(plant: Plant, *names: str) -> dict[str, int | None]:
    cache, table = plant.cache(plant.config.address), controls.inverter_map()
    return {name: cache.get("hr", table.point(name).address) for name in names}


async def test_a_timed_function_puts_the_settings_back(plant: Plant) -> None:
    lock = asyncio.Lock()

    async def write(p: Plant, writes: Mapping[str, int]) -> dict[str, m.ExtraValue]:
        async with lock:
            return await controls.write_confirmed(p, writes)

    functions = GivFunctions(write, Logger("test"))
    before = _holding(plant, "charge_slot_1_start", "charge_slot_1_end", "enable_charge", "battery_charge_limit",
                      "charge_target_pct", "enable_charge_target")
    applied, message = await functions.run(plant, GivAction("forceCharge", minutes=30))
    assert applied["hr_96"] == 1 and applied["hr_111"] == 50 and "30 minutes" in message
    assert functions.minutes_left(plant) == {"Force_Charge": 30}
    # a second forceCharge moves the end but keeps what was there before the first
    await functions.run(plant, GivAction("forceCharge", minutes=45))
    run = functions.running[(id(plant), "forceCharge")]
    assert run.restore == before
    # the end of the duration (shortened here): the inverter holds the old settings again
    assert run.task is not None
    run.task.cancel()
    await functions._revert_later(plant, "forceCharge", run, 0.01)
    await plant.read_map(plant.config.address, "inverter")
    assert _holding(plant, *before) == before and functions.minutes_left(plant) == {}

    # tempPauseDischarge, then the bridge stops: close() restores the rate
    rate = _holding(plant, "battery_discharge_limit")["battery_discharge_limit"]
    assert (await functions.run(plant, GivAction("tempPauseDischarge", minutes=10)))[0] == {"hr_112": 0}
    await functions.close()
    await plant.read_map(plant.config.address, "inverter")
    assert _holding(plant, "battery_discharge_limit")["battery_discharge_limit"] == rate and functions.running == {}
    # Cancel with nothing running is not an error
    assert (await functions.run(plant, GivAction("forceExport", minutes=None)))[1] == "forceExport was not running"
