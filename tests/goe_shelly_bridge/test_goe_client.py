"""The real `goe` PyPI client (GoEChargerClient) against the go-e API v2 simulator.

The client only reads (it has no setters), so settings go through go-e's documented `/api/set`
with aiohttp and are read back with the client: every property it exposes must parse and equal
the simulator's state, and values the firmware refuses must leave that state unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from goe.charger import GoEChargerClient
from goe.charger.components import ChargingStatus, Configuration, Statistics
from goe.charger.enums import CableLockMode, CableLockState, CarState, ChargingStateDetail, PhaseSwitchMode
from goe.components.common import MetaData, Time, TimeServerSyncStatus, TimeZoneDaylightSavingMode
from wattbus_goe_shelly_bridge.detect import detect
from wattbus_goe_shelly_bridge.goe import GoeCharger
from wattbus_goe_shelly_bridge.transport import HttpDevice
from wattbus_sim.goe import GoeFirmware, SimCharger
from wattbus_sim.goe import build_app as goe_app
from wattbus_sim.goe_v2 import DATA, LIVE

from tests.goe_shelly_bridge.conftest import ServeApp

SERIAL = "271828"


class Rig:
    def __init__(self, fw: GoeFirmware, url: str, http: aiohttp.ClientSession) -> None:
        self.fw = fw
        self.url = url
        self.http = http
        self.client = GoEChargerClient.local(url.removeprefix("http://"))

    async def read(self) -> tuple[MetaData, Time, Configuration, ChargingStatus, Statistics]:
        """All five components in one filtered request, as `goe charger meta time config ...` does."""
        components = list(self.client.supported_components())
        meta, clock, config, status, stats = await asyncio.to_thread(self.client.get_many, components)
        return meta, clock, config, status, stats

    async def set(self, **values: str) -> tuple[int, dict[str, Any]]:
        async with self.http.get(f"{self.url}/api/set", params=values) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def rig(serve: ServeApp) -> AsyncIterator[Rig]:
    # no ramp: the car draws what it is offered at once, so power is steady between two reads
    fw = GoeFirmware(SimCharger(ramp_delay_s=0.0, ramp_a_per_s=1e9), serial=SERIAL, max_current_a=32)
    served = await serve(goe_app(fw, "v2"))
    async with aiohttp.ClientSession() as http:
        yield Rig(fw, served.url, http)


async def test_every_documented_key_is_served(rig: Rig) -> None:
    async with rig.http.get(f"{rig.url}/api/status") as resp:
        doc = await resp.json()
    documented = set(DATA["config"]) | set(DATA["status"]) | LIVE | {"amp", "ama", "clp", "psm", "fna"}
    assert documented <= doc.keys() and len(doc) >= 270
    for component in GoEChargerClient.supported_components():
        assert set(component.keys()) <= doc.keys(), component.name()


async def test_client_reads_every_property_equal_to_the_simulator(rig: Rig) -> None:
    fw = rig.fw
    meta, clock, config, status, stats = await rig.read()
    model = fw.model
    assert (meta.serial_number, meta.friendly_name, meta.firmware_version) == (SERIAL, f"go-e-Charger {SERIAL}", "60.4")

    assert clock.time_server_enabled is True and clock.time_server_sync_status is TimeServerSyncStatus.Completed
    assert clock.timezone_offset == timedelta(minutes=60)
    assert clock.daylight_saving is TimeZoneDaylightSavingMode.EuropeanSummerTime
    assert clock.local_time == clock.utc_time  # one instant, two notations
    assert clock.local_time.utcoffset() == timedelta(minutes=fw.v2.local_offset_min(clock.utc_time))
    assert abs(clock.utc_time - datetime.now(UTC)) < timedelta(minutes=1)

    assert config.energy_limit is None and config.phase_switch_mode is PhaseSwitchMode.Force_3
    assert config.three_phase_switch_level == 4200.0 and config.current_limit_presets == [6, 10, 16, 20, 32]
    assert config.cable_lock_mode is CableLockMode.Default

    currents = model.phase_currents_a()
    assert currents == (16.0, 16.0, 16.0)
    assert status.allowed_to_charge_now is True and status.allowed_current_now == fw.amp == 16
    assert status.car_state is CarState.Charging and status.error is None
    assert status.cable_lock is CableLockState.Locked
    assert status.state_detail is ChargingStateDetail.ChargingBecauseFallbackDefault
    assert status.number_of_phases == 3
    energies = status.energies
    assert tuple(energies.current) == currents and tuple(energies.voltage)[:3] == model.voltages_v()
    assert energies.power_total == pytest.approx(model.power_w(), abs=0.1) == pytest.approx(sum(energies.power[:3]))
    assert status.power_average_30s == pytest.approx(energies.power_total)  # steady power: average = power
    assert tuple(energies.power_factor)[:3] == (99.0, 99.0, 99.0)
    # SimCharger advances only when the firmware serves a status, so its counters are those the client read
    # (the session may be a few ms old when read, under 0.005 Wh: the counter itself must run)
    assert status.energy_since_connected == round(model.session_energy_wh(), 2) and model.session_energy_wh() > 0
    assert stats.energy_total_wh == round(model.energy_total_wh()) >= 1_234_500
    assert stats.reboot_count == 12 and stats.uptime > timedelta(0)

    assert await rig.set(frc="1") == (200, {"frc": True})
    _meta, _clock, _config, status, stats = await rig.read()
    assert status.state_detail is ChargingStateDetail.NotChargingBecauseForceStateOff
    assert status.allowed_to_charge_now is False and status.allowed_current_now is None
    assert status.car_state is CarState.WaitCar and status.energies.power_total == 0.0
    assert status.number_of_phases == 3  # the phases it would switch, none live
    assert status.energy_since_connected == round(model.session_energy_wh(), 2)
    assert stats.energy_total_wh == round(model.energy_total_wh())


async def test_settings_written_with_api_set_read_back_by_the_client(rig: Rig) -> None:
    fw = rig.fw
    assert await rig.set(amp="10", psm="1", ust="2", spl3="3500.5", clp="[8,12,16]", tof="120", tds="0",
                         fna='"Garage"') == (200, dict.fromkeys(
                             ["amp", "psm", "ust", "spl3", "clp", "tof", "tds", "fna"], True))
    meta, clock, config, status, _stats = await rig.read()
    assert meta.friendly_name == "Garage" and fw.amp == 10 and fw.psm == 1
    assert status.allowed_current_now == 10 and tuple(status.energies.current) == (10.0, 0.0, 0.0)
    assert status.number_of_phases == 1 and config.phase_switch_mode is PhaseSwitchMode.Force_1
    assert config.cable_lock_mode is CableLockMode.AlwaysLock and config.three_phase_switch_level == 3500.5
    assert config.current_limit_presets == [8, 12, 16]
    assert clock.timezone_offset == timedelta(minutes=120) and clock.local_time.utcoffset() == timedelta(hours=2)
    assert clock.daylight_saving is TimeZoneDaylightSavingMode.NoDaylightSaving

    # West of UTC go-e writes " -05:00", which goe 0.3.2 cannot parse (it only strips the space before "+"),
    # so this one is checked on the raw text.
    assert await rig.set(tof="-300") == (200, {"tof": True})
    async with rig.http.get(f"{rig.url}/api/status", params={"filter": "loc,utc"}) as resp:
        times = await resp.json()
    local = datetime.fromisoformat(times["loc"].replace(" ", ""))
    assert local.utcoffset() == timedelta(minutes=-300)
    assert local == datetime.fromisoformat(times["utc"]).replace(tzinfo=UTC)

    assert await rig.set(utc='"2030-06-01T12:00:00.000"', tof="60", tds="1") == (200, dict.fromkeys(
        ["utc", "tof", "tds"], True))
    _meta, clock, *_ = await rig.read()
    assert abs(clock.utc_time - datetime(2030, 6, 1, 12, tzinfo=UTC)) < timedelta(minutes=1)
    assert clock.local_time.utcoffset() == timedelta(hours=2)  # CET + EU summer time in June


@pytest.mark.parametrize(("key", "raw", "why"), [
    ("amp", "33", "amp: 33 is out of range (6..32)"),
    ("amp", "5", "amp: 5 is out of range (6..32)"),
    ("amp", "7.5", "amp: expected a whole number, got 7.5"),
    ("ama", "40", "ama: 40 is out of range (6..32)"),
    ("frc", "3", "frc: 3 is out of range (0..2)"),
    ("psm", '"one"', "psm: expected a whole number, got 'one'"),
    ("dwo", "-1", "dwo: expected null or an energy in Wh above 0"),
    ("clp", "[5,16]", "clp: 5 is out of range (6..32)"),
    ("tof", "true", "tof: expected a whole number, got True"),
    ("cid", '"blue"', "cid: expected a colour #RRGGBB"),
    ("car", "2", "car: read-only key"),
    ("tpa", "0", "tpa: read-only key"),
    ("nosuchkey", "1", "nosuchkey: unknown key"),
    ("amp", "{", "could not parse json value '{' for amp"),
])
async def test_refused_settings_leave_the_state(rig: Rig, key: str, raw: str, why: str) -> None:
    before = await rig.read()
    status, answer = await rig.set(**{key: raw})
    assert (status, answer) == (400, {key: why})
    after = await rig.read()
    assert after[2] == before[2] and after[0] == before[0]  # configuration and metadata unchanged
    assert after[3].allowed_current_now == before[3].allowed_current_now == 16 and rig.fw.sets == 0


async def test_ama_caps_amp_and_energy_limit_stops_the_session(rig: Rig) -> None:
    fw = rig.fw
    assert await rig.set(ama="12") == (200, {"ama": True})
    _m, _t, config, status, _s = await rig.read()
    assert fw.amp == 12 and status.allowed_current_now == 12 and config.current_limit_presets == [6, 10]
    assert (await rig.set(amp="13"))[1] == {"amp": "amp: 13 is out of range (6..12)"}

    reached = fw.model.session_energy_wh() / 2  # already charged past it: the charger stops at once
    assert await rig.set(dwo=f"{reached:.3f}") == (200, {"dwo": True})
    _m, _t, config, status, _s = await rig.read()
    assert config.energy_limit == pytest.approx(reached, abs=0.001)
    assert status.state_detail is ChargingStateDetail.NotChargingBecauseEnergyLimit
    assert status.car_state is CarState.Complete and status.allowed_to_charge_now is False
    assert status.energies.power_total == 0.0 and fw.model.power_w() == 0.0
    assert await rig.set(dwo="null") == (200, {"dwo": True})
    _m, _t, config, status, _s = await rig.read()
    assert config.energy_limit is None and status.allowed_current_now == 12
    assert status.state_detail is ChargingStateDetail.ChargingBecauseFallbackDefault


async def test_bridge_and_client_agree(rig: Rig) -> None:
    """The bridge's adapter (detect + read) and the goe client on one charger: the same values."""
    http = HttpDevice(rig.url, timeout_s=2.0)
    try:
        adapter = await detect(http)
        assert isinstance(adapter, GoeCharger) and adapter.api == "v2"
        meta = adapter.metas("test")[0]
        assert (meta.serial, meta.firmware, meta.model) == (SERIAL, "60.4", "go-eCharger 22 kW")
        for frc in ("0", "1"):  # charging (steady power), then stopped (counters stand still)
            assert await rig.set(frc=frc) == (200, {"frc": True})
            reading = await adapter.read_charger()
            _meta, _clock, config, status, stats = await rig.read()
            energies = status.energies
            assert reading.power_w == energies.power_total and reading.set_current_a == rig.fw.amp
            assert [p.current_a for p in reading.phases] == list(energies.current)
            assert [p.voltage_v for p in reading.phases] == list(energies.voltage)[:3]
            assert reading.state == {"0": "charging", "1": "waiting"}[frc] and status.car_state.value == {
                "0": 2, "1": 3}[frc]
            assert reading.extra["phase_mode"] == config.phase_switch_mode.value
            assert reading.extra["max_current_a"] == 32.0
        assert reading.energy_total_wh == stats.energy_total_wh
        assert reading.session_energy_wh == status.energy_since_connected
    finally:
        await http.close()
