"""The generic-bridge process with `template = "fronius-solar-api"` entries on the real broker,
against two simulated Fronius sites: a hybrid with two inverters, a meter and a battery, and a
bare inverter by night (no meter, no battery)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from wattbus import messages as m
from wattbus import topics

from tests.conftest import ServiceProcess
from tests.generic_bridge.test_service import watching
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import TEST_ADMIN, Mosquitto, SimulatorProcess, free_port

HYBRID = ("roof", "roof-inverter-1", "roof-inverter-2", "roof-meter-0", "roof-battery-0")


@dataclass
class Sites:
    hybrid: SimulatorProcess
    bare: SimulatorProcess
    bridge: ServiceProcess


@pytest.fixture(scope="module")
def sites(broker: Mosquitto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    run = tmp_path_factory.mktemp("fronius")
    hybrid = SimulatorProcess(run / "hybrid.log", "fronius", "--inverters", "2")
    bare = SimulatorProcess(run / "bare.log", "fronius", "--no-meter", "--no-battery", "--night")
    config = run / "wattbus.toml"
    config.write_text("[generic-bridge]\nstatus_interval_s = 1\n" + "".join(
        f'[[generic-bridge.devices]]\nid = "{ident}"\ntemplate = "fronius-solar-api"\nhost = "127.0.0.1"\n'
        f"port = {sim.port}\ninterval_s = 0.5\n" for ident, sim in (("roof", hybrid), ("shed", bare))))
    bridge = ServiceProcess("wattbus_generic_bridge", ["--config", str(config)], broker.env("generic-bridge"),
                            run / "bridge.log")
    yield Sites(hybrid, bare, bridge)
    bridge.stop()
    hybrid.stop()
    bare.stop()


def set_night(sim: SimulatorProcess, night: bool) -> None:
    url = f"http://127.0.0.1:{sim.port}/sim/phase?night={int(night)}"
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5):
        pass


async def test_a_fronius_site_arrives_as_devices_in_si_with_the_contract_signs(broker: Mosquitto,
                                                                                sites: Sites) -> None:
    bus, seen = await watching(broker)
    try:
        await until(lambda: all(seen.last(d) is not None for d in (*HYBRID, "shed", "shed-inverter-1")), 20,
                    f"a reading from every Fronius device: {sites.bridge.output()[-2000:]}")
        await until(lambda: set(HYBRID) <= set(seen.metas), 10, "their metas")
        assert {d: seen.metas[d].kind for d in HYBRID} == {"roof": "gateway", "roof-inverter-1": "inverter",
                                                            "roof-inverter-2": "inverter", "roof-meter-0": "meter",
                                                            "roof-battery-0": "battery"}
        assert all(seen.metas[d].parent_id == "roof" and seen.metas[d].protocol == "http" for d in HYBRID[1:])
        gateway, inv1, inv2, meter, battery = (seen.last(d) for d in HYBRID)
        assert isinstance(gateway, m.GatewayReading) and gateway.power_w == 3200  # the simulator's PV by day
        assert gateway.devices_total == gateway.devices_online == 4
        assert isinstance(inv1, m.InverterReading) and inv1.power_w == inv2.power_w == 1600
        assert inv1.state == "mppt" and inv1.dc_power_w and inv1.dc_power_w > inv1.power_w  # DC before the losses
        # The simulated site charges 1000 W and uses 900 W of 3200 W: 1300 W go out, - at the grid meter.
        assert isinstance(meter, m.MeterReading) and meter.power_w == -1300 and len(meter.phases) == 3
        assert meter.energy_export_wh and meter.energy_export_wh > 9_000_000  # Wh, as the meter counts
        assert isinstance(battery, m.BatteryReading) and battery.power_w == -1000 and battery.soc_pct == 62.5
        # The bare site: an inverter and its gateway only; by night null, never 0.
        assert "shed-meter-0" not in seen.metas and "shed-battery-0" not in seen.metas
        shed, inverter = seen.last("shed"), seen.last("shed-inverter-1")
        assert shed.power_w is None and "grid_w" not in shed.extra
        assert inverter.power_w is None and inverter.dc_power_w is None and inverter.state == "sleeping"
        assert inverter.energy_total_wh and inverter.energy_total_wh > 20_000_000
    finally:
        await bus.stop()


async def test_night_falls_on_a_running_site(broker: Mosquitto, sites: Sites) -> None:
    bus, seen = await watching(broker)
    try:
        await until(lambda: all(seen.last(d) is not None for d in HYBRID), 20, "a reading of each roof device")
        set_night(sites.hybrid, True)
        await until(lambda: seen.last("roof-inverter-1").power_w is None, 20, "the inverters asleep")
        await until(lambda: seen.last("roof").power_w is None, 20, "no PV in the power flow")
        # By night the battery discharges 400 W into a 900 W house: 500 W come in, + at the meter.
        await until(lambda: seen.last("roof-meter-0").power_w == 500, 20, "the meter importing")
        await until(lambda: seen.last("roof-battery-0").power_w == 400, 20, "the battery discharging")
        assert seen.last("roof").devices_online == 4  # asleep is not offline: every device answered
        set_night(sites.hybrid, False)
        await until(lambda: seen.last("roof-inverter-1").power_w == 1600, 20, "the inverters back by day")
    finally:
        set_night(sites.hybrid, False)
        await bus.stop()


async def test_probe_reads_a_fronius_entry_before_it_is_saved(broker: Mosquitto, sites: Sites) -> None:
    bus = await started_bus(broker, TEST_ADMIN)
    service = topics.service_command("generic-bridge", "main")
    try:
        entry: dict[str, Any] = {"id": "garage", "template": "fronius-solar-api", "host": "127.0.0.1",
                                 "port": sites.bare.port}
        result = await bus.request(service, m.ProbeDevice(entry=entry), timeout=15)
        assert result.status == "ok", result.message
        assert [(d.device_id, d.kind) for d in result.devices] == [("garage", "gateway"),
                                                                   ("garage-inverter-1", "inverter")]
        assert {r.device_id for r in result.readings} == {"garage", "garage-inverter-1"}
        gone = await bus.request(service, m.ProbeDevice(entry={**entry, "port": free_port()}), timeout=15)
        assert gone.status == "failed" and "GetAPIVersion.cgi" in gone.message
    finally:
        await bus.stop()
