"""The bridge as a real process against the real broker (ACL user sunspec-bridge) and simulators."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Bus, Message
from wattbus_sim.sdm import PHASE_PF
from wattbus_sim.sunspec_devices import Plant
from wattbus_sim.sunspec_devices import meter as sim_meter
from wattbus_sunspec_bridge.decode import shortest_float32

from tests.support.bus_helpers import started_bus, until
from tests.support.servers import free_port

SOURCE = "sunspec-bridge"


def write_config(path: Path, devices: str, interval: float = 0.5) -> Path:
    path.write_text(f"[sunspec-bridge]\npoll_interval_s = {interval}\nstats_interval_s = 1\n"
                    f"offline_after_failures = 2\nmax_backoff_s = 2\nstatus_interval_s = 1\n{devices}")
    return path


class Seen:
    def __init__(self, bus: Bus) -> None:
        self.readings: dict[str, m.ReadingBase] = {}
        self.meta: dict[str, m.DeviceMeta] = {}
        self.availability: dict[str, str] = {}
        self.native: dict[str, Any] = {}
        self.status: m.ServiceStatus | None = None
        bus.subscribe(topics.service_status(SOURCE, "main"), m.ServiceStatus, self._status)
        bus.subscribe(f"wattbus/v1/device/{SOURCE}/+/reading", m.Reading, self._reading)
        bus.subscribe(f"wattbus/v1/device/{SOURCE}/+/meta", m.DeviceMeta, self._meta)
        bus.subscribe(f"wattbus/v1/device/{SOURCE}/+/availability", bytes, self._avail)
        bus.subscribe(f"wattbus/v1/device/{SOURCE}/+/native/+", bytes, self._native)

    def _status(self, msg: Message[m.ServiceStatus]) -> None:
        self.status = msg.payload

    def failing(self) -> set[str]:
        return {e.device_id or e.address or "" for e in self.status.device_errors} if self.status else set()

    def _reading(self, msg: Message[m.ReadingBase]) -> None:
        self.readings[msg.payload.device_id] = msg.payload

    def _meta(self, msg: Message[m.DeviceMeta]) -> None:
        self.meta[msg.payload.device_id] = msg.payload

    def _avail(self, msg: Message[bytes]) -> None:
        self.availability[topics.parse(msg.topic).ident or ""] = msg.payload.decode()

    def _native(self, msg: Message[bytes]) -> None:
        parsed = topics.parse(msg.topic)
        self.native[f"{parsed.ident}/{parsed.name}"] = codec.decode(msg.payload, dict[str, Any])


async def test_fronius_sma_float_and_sdm(broker: Any, start_sim: Callable[..., Any], start_service: Any,
                                         tmp_path: Path) -> None:
    sunspec = start_sim("fronius", "sma", "float")
    sdm = start_sim("sdm630")
    config = write_config(tmp_path / "w.toml", f"""
[[sunspec-bridge.devices]]
host = "127.0.0.1"
port = {sunspec.port}
controls = true
[[sunspec-bridge.devices]]
host = "127.0.0.1"
port = {sdm.port}
protocol = "eastron_sdm630"
unit_ids = [1]
""")
    bus = await started_bus(broker, "test-admin")
    seen = Seen(bus)
    proc = start_service("wattbus_sunspec_bridge", "--config", str(config), env=broker.env(SOURCE))
    try:
        wanted = {"fronius-34119102", "fronius-18420047", "sma-3004512345", "wattbus-sim-fl-000771",
                  "fronius-34119102-mppt1", "fronius-34119102-mppt2", "wattbus-sim-fl-000771-battery",
                  "eastron-sdm630-21003456"}
        await until(lambda: wanted <= set(seen.readings), 40, f"readings of {wanted} ({proc.output()[-2000:]})")
        inverter = seen.readings["fronius-34119102"]
        assert isinstance(inverter, m.InverterReading)
        assert inverter.power_w == 4960 and inverter.energy_total_wh == 12_345_678
        assert inverter.state == "mppt" and inverter.frequency_hz == 50.01
        assert [(p.phase, p.voltage_v) for p in inverter.phases] == [(1, 230.1), (2, 231.4), (3, 229.8)]
        string = seen.readings["fronius-34119102-mppt1"]
        assert isinstance(string, m.StringReading)
        assert (string.index, string.voltage_v, string.power_w) == (1, 612.3, 2812)
        meter = seen.readings["fronius-18420047"]
        assert isinstance(meter, m.MeterReading)
        assert meter.power_w == 650 - 4960 and meter.energy_import_wh == 4_567_890
        assert [p.power_w for p in meter.phases] == [round(-4310 * s) for s in (0.4, 0.35, 0.25)]
        # Model 203 sends PF in percent (PFphA 97.5 at scale -1); the contract has the ratio.
        sent = sim_meter(Plant(static=True))[1]
        assert [p.power_factor for p in meter.phases] == pytest.approx([sent[f"PFph{x}"] / 100 for x in "ABC"])
        battery = seen.readings["wattbus-sim-fl-000771-battery"]
        assert isinstance(battery, m.BatteryReading)
        assert (battery.soc_pct, battery.power_w, battery.soh_pct) == (57.3, -1198, 98)
        hybrid = seen.readings["wattbus-sim-fl-000771"]
        assert isinstance(hybrid, m.InverterReading) and hybrid.power_w == 4960.0
        sdm_reading = seen.readings["eastron-sdm630-21003456"]
        assert isinstance(sdm_reading, m.MeterReading)
        assert sdm_reading.power_w is not None and round(sdm_reading.power_w) == -4310
        assert sdm_reading.energy_import_wh is not None and round(sdm_reading.energy_import_wh) == 4_567_890
        assert len(sdm_reading.phases) == 3
        # Exporting: Eastron sends PF -0.97 (signed with the current), the contract has |P|/S.
        assert all(p.power_w is not None and p.power_w < 0 for p in sdm_reading.phases)
        assert [p.power_factor for p in sdm_reading.phases] == [shortest_float32(pf) for pf in PHASE_PF]
        assert seen.meta["fronius-34119102"].capabilities == ["set_power_limit", "set_connected"]
        assert seen.meta["fronius-34119102-mppt1"].parent_id == "fronius-34119102"
        # iotic's `live`: every decoded point per model; `stats`: the day's min/max.
        await until(lambda: "sma-3004512345/model_103" in seen.native and "sma-3004512345/stats_103" in seen.native,
                    20, "native model and stats documents")
        assert seen.native["sma-3004512345/model_103"]["values"]["PPVphAB"] == 399.2
        assert seen.native["sma-3004512345/stats_103"]["max"]["W"] == 4960

        # Model 123: limit to 40 %, read back, and the simulated inverter throttles.
        result = await bus.request(topics.device_command(SOURCE, "fronius-34119102"),
                                   m.SetPowerLimit(limit_pct=40, request_id="r1"), timeout=20)
        assert result.status == "ok", result
        assert result.applied["WMaxLimPct"] == 40.0 and result.applied["WMaxLim_Ena"] == "ENABLED"
        await until(lambda: getattr(seen.readings["fronius-34119102"], "state", None) == "throttled", 20,
                    "throttled state")
        result = await bus.request(topics.device_command(SOURCE, "fronius-34119102"),
                                   m.SetConnected(connected=False), timeout=20)
        assert result.status == "ok" and result.applied["Conn"] == "DISCONNECT"
        # A command the bridge cannot do, and one to a device it does not own.
        result = await bus.request(topics.device_command(SOURCE, "fronius-34119102"),
                                   m.SetRelay(on=True), timeout=20)
        assert result.status == "refused" and "set_power_limit" in result.message
        result = await bus.request(topics.device_command(SOURCE, "eastron-sdm630-21003456"),
                                   m.SetPowerLimit(limit_pct=10), timeout=20)
        assert result.status == "refused"
        # Garbage on the command topic is rejected and counted; the service keeps running.
        bus.publish(topics.device_command(SOURCE, "fronius-34119102"), b'{"command": "set_power_limit", '
                    b'"limit_pct": 140}')
        result = await bus.request(topics.device_command(SOURCE, "fronius-34119102"),
                                   m.SetPowerLimit(limit_pct=None), timeout=20)
        assert result.status == "ok" and result.applied["WMaxLim_Ena"] == "DISABLED"

        # The SDM gateway dies: only it goes offline; it comes back online on recovery.
        sdm.stop()
        await until(lambda: seen.availability.get("eastron-sdm630-21003456") == "offline", 30, "sdm offline")
        await until(lambda: "eastron-sdm630-21003456" in seen.failing(), 10, "the sdm's error in the status")
        assert "sma-3004512345" not in seen.failing()
        assert seen.availability["sma-3004512345"] == "online"
        seen.readings.pop("sma-3004512345")
        await until(lambda: "sma-3004512345" in seen.readings, 20, "sma keeps publishing")
        sdm.start()
        await until(lambda: seen.availability.get("eastron-sdm630-21003456") == "online", 40, "sdm online again")
        await until(lambda: "eastron-sdm630-21003456" not in seen.failing(), 10, "the sdm's error cleared")
    finally:
        assert proc.stop() == 0, proc.output()[-3000:]
        await bus.stop()


async def test_controls_are_off_by_default(broker: Any, start_sim: Callable[..., Any], start_service: Any,
                                           tmp_path: Path) -> None:
    sim = start_sim("sma")
    nothing = free_port()  # a configured endpoint where nothing listens
    config = write_config(tmp_path / "w.toml", f"""
[[sunspec-bridge.devices]]
host = "127.0.0.1"
port = {sim.port}
unit_ids = [1, 126]
[[sunspec-bridge.devices]]
host = "127.0.0.1"
port = {nothing}
name = "garage inverter"
""")
    bus = await started_bus(broker, "test-admin")
    seen = Seen(bus)
    proc = start_service("wattbus_sunspec_bridge", "--config", str(config), env=broker.env(SOURCE))
    try:
        await until(lambda: "sma-3004512345" in seen.readings, 40, f"sma reading ({proc.output()[-2000:]})")
        assert seen.meta["sma-3004512345"].capabilities == []
        result = await bus.request(topics.device_command(SOURCE, "sma-3004512345"),
                                   m.SetPowerLimit(limit_pct=50), timeout=20)
        assert result.status == "refused" and "controls = true" in result.message
        # Nothing there has an id yet: its address carries the error in the service status.
        await until(lambda: f"tcp://127.0.0.1:{nothing}" in seen.failing(), 20, "the endpoint's error")
        assert seen.status is not None
        error = next(e for e in seen.status.device_errors if e.address == f"tcp://127.0.0.1:{nothing}")
        assert error.name == "garage inverter" and "cannot connect" in error.error
    finally:
        assert proc.stop() == 0, proc.output()[-3000:]
        await bus.stop()


async def test_sdm630_over_modbus_rtu(broker: Any, start_sim: Callable[..., Any], start_service: Any,
                                      tmp_path: Path) -> None:
    sim = start_sim("sdm630", rtu=True)
    config = write_config(tmp_path / "w.toml", f"""
[[sunspec-bridge.devices]]
serial_port = "{sim.link}"
protocol = "eastron_sdm630"
unit_ids = [1]
""")
    bus = await started_bus(broker, "test-admin")
    seen = Seen(bus)
    proc = start_service("wattbus_sunspec_bridge", "--config", str(config), env=broker.env(SOURCE))
    try:
        await until(lambda: "eastron-sdm630-21003456" in seen.readings, 40, f"RTU reading ({proc.output()[-2000:]})")
        reading = seen.readings["eastron-sdm630-21003456"]
        assert isinstance(reading, m.MeterReading) and reading.frequency_hz == 50.02
        assert seen.meta["eastron-sdm630-21003456"].address == f"serial://{sim.link}/1"
    finally:
        assert proc.stop() == 0, proc.output()[-3000:]
        await bus.stop()
    await asyncio.sleep(0)
