"""The real `givenergy-modbus` client (the library GivTCP and the Home Assistant integration use)
against the GivEnergy simulator: it must take the simulator for a commissioned inverter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from givenergy_modbus.client import commands
from givenergy_modbus.client.client import Client
from givenergy_modbus.model.inverter import Model

from tests.giv_bridge.conftest import GivSim

# the inverter counters GivTCP 2.x adds up to refuse an "all zeros" read, and the battery ones
TOTALS = ("e_pv_total", "e_grid_in_total", "e_grid_out_total", "e_inverter_in_total", "e_battery_throughput",
          "e_battery_charge_total", "e_battery_discharge_total")


@pytest.fixture(scope="module")
def fast_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GivSim]:
    # energy flows 600x faster (a 0.1 kWh register step within seconds); the clock stays real
    sim = GivSim(Path(tmp_path_factory.mktemp("giv")) / "sim.log", "--batteries", "2", "--speed", "600",
                 "--no-split")
    yield sim
    sim.stop()


@pytest.fixture
async def client(fast_sim: GivSim) -> AsyncIterator[Client]:
    c = Client("127.0.0.1", fast_sim.port, tx_message_wait=0.0, tx_jitter=0.0)
    await c.connect()
    await c.detect(timeout=2.0, retries=1, probe_timeout=0.3, probe_retries=0)
    await c.load_config(timeout=2.0, retries=1)
    await c.refresh(timeout=2.0, retries=1)
    yield c
    await c.close()


def _totals(c: Client) -> dict[str, Any]:
    inverter = c.plant.inverter
    return {name: getattr(inverter, name) for name in TOTALS}


async def test_the_client_sees_a_commissioned_hybrid(client: Client) -> None:
    caps = client.plant.capabilities
    assert caps is not None and caps.device_type == Model.HYBRID_GEN1 and caps.lv_battery_addresses == [0x32, 0x33]
    inverter = client.plant.inverter
    assert inverter.serial_number == "SA2345G678"
    # the clock runs (GivTCP dereferences system_time and refuses the default year 2000)
    clock = inverter.system_time
    assert isinstance(clock, datetime) and abs(clock - datetime.now()) < timedelta(minutes=1), clock
    totals = _totals(client)
    assert all(isinstance(v, float) and v > 0 for v in totals.values()), totals
    assert inverter.battery_capacity_ah == 320  # HR 55: both packs
    for battery in client.plant.batteries:
        assert battery.is_valid()
        assert 0 < battery.cap_calibrated <= battery.cap_design == 160.0, battery
        assert 0 < battery.cap_remaining < battery.cap_calibrated
        assert battery.e_battery_charge_total > 0 and battery.e_battery_discharge_total > 0


async def test_counters_rise(client: Client) -> None:
    first = _totals(client)
    rose: dict[str, Any] = {}
    for _ in range(40):  # at 600x, a house of 300 W or more moves a 0.1 kWh register within ~2 s
        await asyncio.sleep(0.25)
        await client.refresh(timeout=2.0, retries=1)
        now = _totals(client)
        assert all(now[k] >= first[k] for k in TOTALS), (first, now)  # lifetime counters never fall
        rose = {k: now[k] - first[k] for k in TOTALS if now[k] > first[k]}
        if rose:
            break
    assert rose, f"no lifetime counter rose: {first}"


async def test_the_clients_own_writes_read_back(client: Client) -> None:
    target = datetime.now().replace(microsecond=0) + timedelta(days=3, hours=2)
    for requests in (commands.set_battery_soc_reserve(30), commands.set_charge_target_enabled(80),
                     commands.set_battery_charge_limit(25), commands.set_enable_discharge(True),
                     commands.set_system_date_time(target)):
        await client.one_shot_command(requests, timeout=2.0, retries=1)
    await client.load_config(timeout=2.0, retries=1)
    inverter = client.plant.inverter
    assert inverter.battery_soc_reserve == 30 and inverter.charge_target_soc == 80
    assert inverter.battery_charge_limit == 25 and inverter.enable_discharge is True
    assert abs(inverter.system_time - target) < timedelta(seconds=5), inverter.system_time  # it runs on from there
    await client.one_shot_command(commands.set_system_date_time(datetime.now()), timeout=2.0, retries=1)
