"""The bridge as a real subprocess against the real broker and the HTTP simulators."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Bus, Message
from wattbus_sim.goe import GoeFirmware, SimCharger
from wattbus_sim.goe import build_app as goe_app
from wattbus_sim.shelly import ShellyState
from wattbus_sim.shelly import build_app as shelly_app

from tests.goe_shelly_bridge.conftest import ServeApp
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto

SOURCE = "goe-shelly-bridge"


class Recorder:
    """Everything the bridge publishes, decoded by topic leaf."""

    def __init__(self) -> None:
        self.readings: dict[str, list[m.ReadingBase]] = {}
        self.meta: dict[str, m.DeviceMeta] = {}
        self.availability: dict[str, str] = {}
        self.results: list[m.CommandResult] = []
        self.status: list[m.ServiceStatus] = []

    def __call__(self, msg: Message[bytes]) -> None:
        parsed = topics.parse(msg.topic)
        ident = parsed.ident or ""
        if parsed.leaf == "reading":
            self.readings.setdefault(ident, []).append(codec.decode_reading(msg.payload))
        elif parsed.leaf == "meta":
            self.meta[ident] = codec.decode(msg.payload, m.DeviceMeta)
        elif parsed.leaf == "availability":
            self.availability[ident] = msg.payload.decode()
        elif parsed.leaf == "result":
            self.results.append(codec.decode(msg.payload, m.CommandResult))
        elif parsed.leaf == "status":
            self.status.append(codec.decode(msg.payload, m.ServiceStatus))

    def count(self, device_id: str) -> int:
        return len(self.readings.get(device_id, []))


@pytest.fixture
async def watch(broker: Mosquitto) -> AsyncIterator[tuple[Bus, Recorder]]:
    bus = await started_bus(broker, "test-admin", "goe-shelly-test")
    rec = Recorder()
    bus.subscribe(f"{topics.PREFIX}/device/{SOURCE}/#", bytes, rec)
    bus.subscribe(topics.service_status(SOURCE, "main"), bytes, rec)
    yield bus, rec
    await bus.stop()


def write_config(tmp_path: Path, devices: list[dict[str, Any]], **extra: Any) -> Path:
    lines = ["[goe-shelly-bridge]", "poll_interval_s = 0.3", "timeout_s = 1.0", "max_backoff_s = 1.0",
             "status_interval_s = 1", *(f"{k} = {v!r}" for k, v in extra.items())]
    for dev in devices:
        lines.append("[[goe-shelly-bridge.devices]]")
        lines += [f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in dev.items()]
    path = tmp_path / "wattbus.toml"
    path.write_text("\n".join(lines).replace("'", '"') + "\n")
    return path


async def send(bus: Bus, device_id: str, command: m.CommandBase) -> m.CommandResult:
    return await bus.request(topics.device_command(SOURCE, device_id), command, timeout=20)


async def test_readings_and_guarded_commands(broker: Mosquitto, serve: ServeApp, start_service: Any,
                                             tmp_path: Path, watch: tuple[Bus, Recorder]) -> None:
    v2 = GoeFirmware(SimCharger(ramp_delay_s=0.0), serial="100001", max_current_a=32)
    v1 = GoeFirmware(SimCharger(ramp_delay_s=0.0), serial="100002", max_current_a=16)
    sw25 = ShellyState("SHSW-25", mac="E8DB84000001")
    pro3em = ShellyState("Pro3EM", mac="08F9E0000002")
    plus = ShellyState("Plus1PM", mac="A0A3B3000003")
    em3 = ShellyState("SHEM-3", mac="E8DB84000005")  # a meter with a contactor relay
    urls = [(await serve(goe_app(v2, "v2"))).url, (await serve(goe_app(v1, "v1"))).url,
            (await serve(shelly_app(sw25, "pw1"))).url, (await serve(shelly_app(pro3em, "pw2"))).url,
            (await serve(shelly_app(plus))).url, (await serve(shelly_app(em3))).url]
    config = write_config(tmp_path, [
        {"url": urls[0], "max_current_a": 16, "min_switch_interval_s": 60, "min_phase_switch_interval_s": 60},
        {"url": urls[1]},
        {"url": urls[2], "password": "pw1", "min_switch_interval_s": 60},
        {"url": urls[3], "password": "pw2"},
        {"url": urls[4], "min_switch_interval_s": 0},
        {"url": urls[5], "min_switch_interval_s": 0},
    ])
    bus, rec = watch
    start_service("wattbus_goe_shelly_bridge", "--config", str(config), env=broker.env(SOURCE))
    ids = ["goe-100001", "goe-100002", "shelly-e8db84000001", "shelly-08f9e0000002-em", "shelly-a0a3b3000003",
           "shelly-e8db84000005", "shelly-e8db84000005-em"]
    await until(lambda: all(rec.count(i) >= 2 for i in ids), 30, "readings from all six devices")

    # identity and values
    assert rec.meta["goe-100001"].capabilities == ["set_charge_current", "set_charging", "set_phases"]
    assert rec.meta["goe-100002"].capabilities == ["set_charge_current", "set_charging"]
    assert rec.meta["shelly-08f9e0000002-em"].kind == "meter" and rec.availability["goe-100001"] == "online"
    grid = rec.readings["shelly-08f9e0000002-em"][-1]
    assert isinstance(grid, m.MeterReading) and grid.power_w == sum(pro3em.grid_w)
    relays = {r.channel for r in rec.readings["shelly-e8db84000001"] if isinstance(r, m.RelayReading)}
    assert relays == {0, 1}
    # The current range it accepts goes out with each reading (Home Assistant's number offers it).
    extra = rec.readings["goe-100001"][-1].extra  # configured 16 A of the charger's 32 A
    assert (extra["limit_min_current_a"], extra["limit_max_current_a"], extra["max_current_a"]) == (6, 16, 32)

    # current: confirmed, clamped by the configured maximum, and v1 uses amx
    result = await send(bus, "goe-100001", m.SetChargeCurrent(current_a=10.6, request_id="r1"))
    assert (result.status, result.applied, result.request_id) == ("ok", {"set_current_a": 10.0}, "r1")
    assert v2.amp == 10
    result = await send(bus, "goe-100001", m.SetChargeCurrent(current_a=20))
    assert result.status == "refused" and "above the configured maximum of 16 A" in result.message
    assert v2.amp == 10
    assert (await send(bus, "goe-100002", m.SetChargeCurrent(current_a=12))).status == "ok" and v1.amp == 12

    # start/stop and phases with the switch intervals
    assert (await send(bus, "goe-100001", m.SetCharging(enabled=False))).status == "ok" and v2.frc == 1
    result = await send(bus, "goe-100001", m.SetCharging(enabled=True))
    assert result.status == "refused" and "minimum interval is 60 s" in result.message and v2.frc == 1
    assert (await send(bus, "goe-100001", m.SetCharging(enabled=False))).status == "ok"  # no switch needed
    assert (await send(bus, "goe-100001", m.SetPhases(phases=1))).status == "ok" and v2.psm == 1
    assert (await send(bus, "goe-100001", m.SetPhases(phases=3))).status == "refused" and v2.psm == 1
    result = await send(bus, "goe-100002", m.SetPhases(phases=1))
    assert result.status == "refused" and "set_phases is not supported" in result.message

    # relays: Gen1 basic auth, Gen2 without auth; wrong channel and wrong device kind refused
    result = await send(bus, "shelly-e8db84000001", m.SetRelay(on=True, channel=1))
    assert result.status == "ok" and sw25.relays == [False, True]
    assert (await send(bus, "shelly-e8db84000001", m.SetRelay(on=False, channel=1))).status == "refused"
    assert sw25.relays == [False, True] and sw25.switches == 1
    result = await send(bus, "shelly-e8db84000001", m.SetRelay(on=True, channel=3))
    assert result.status == "refused" and "no relay channel 3" in result.message
    assert (await send(bus, "shelly-a0a3b3000003", m.SetRelay(on=True))).status == "ok" and plus.relays == [True]
    assert (await send(bus, "shelly-a0a3b3000003", m.SetRelay(on=False))).status == "ok" and plus.relays == [False]
    # a meter beside a relay in one device takes no relay command: only the relay's id switches it
    result = await send(bus, "shelly-e8db84000005-em", m.SetRelay(on=True))
    assert result.status == "refused" and "accepts: none" in result.message and em3.relays == [False]
    assert (await send(bus, "shelly-e8db84000005", m.SetRelay(on=True))).status == "ok" and em3.relays == [True]

    # the devices' own limits hold too: a charger's ama, and relays that trip on overpower (Gen1 and Gen2)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{urls[0]}/api/set", params={"ama": "12"}) as resp:
            assert await resp.json() == {"ama": True}
        async with http.get(f"{urls[4]}/rpc/Switch.SetConfig", params={"id": "0", "config": '{"power_limit": 1000}'}
                            ) as resp:
            assert await resp.json() == {"restart_required": False}
        async with http.get(f"{urls[2]}/settings", params={"max_power": "1000"},
                            headers={"Authorization": aiohttp.encode_basic_auth("admin", "pw1")}) as resp:
            assert resp.status == 200
    result = await send(bus, "goe-100001", m.SetChargeCurrent(current_a=14))
    assert result.status == "refused" and "above the device maximum of 12 A" in result.message and v2.amp == 10
    for device_id, channel, state in (("shelly-a0a3b3000003", 0, plus), ("shelly-e8db84000001", 0, sw25)):
        result = await send(bus, device_id, m.SetRelay(on=True, channel=channel))
        assert result.status == "failed" and state.relays[channel] is False and state.overpower[channel]
        assert f"relay {channel} did not stay on: the device reports overpower" in result.message
    assert (await send(bus, "shelly-08f9e0000002-em", m.SetRelay(on=True))).status == "refused"
    assert (await send(bus, "goe-100001", m.SetRelay(on=True))).status == "refused"
    result = await send(bus, "goe-424242", m.SetChargeCurrent(current_a=8))
    assert result.status == "refused" and "no device 'goe-424242'" in result.message

    # a command that does not decode is answered `invalid` on the result topic (no v5 response topic)
    bus.publish(topics.device_command(SOURCE, "goe-100001"), b'{"command": "set_charge_current", "current_a": 3}')
    await until(lambda: any(r.status == "invalid" for r in rec.results), 20, "invalid answer")
    invalid = next(r for r in rec.results if r.status == "invalid")
    assert "current_a" in invalid.message and invalid.target == "goe-100001" and v2.amp == 10
    await until(lambda: any(s.counters.get("commands_invalid") == 1 for s in rec.status), 20, "counted")


async def test_device_leaving_does_not_stall_others(broker: Mosquitto, serve: ServeApp, start_service: Any,
                                                   tmp_path: Path, watch: tuple[Bus, Recorder]) -> None:
    goe = GoeFirmware(SimCharger(), serial="200001")
    plug = ShellyState("SHPLG-S", mac="C45BBE000004")
    goe_server = await serve(goe_app(goe, "both"))
    plug_url = (await serve(shelly_app(plug))).url
    config = write_config(tmp_path, [{"url": goe_server.url}, {"url": plug_url}])
    bus, rec = watch
    start_service("wattbus_goe_shelly_bridge", "--config", str(config), env=broker.env(SOURCE))
    await until(lambda: rec.count("goe-200001") >= 1 and rec.count("shelly-c45bbe000004") >= 1, 30, "readings")
    assert rec.readings["goe-200001"][-1].extra["api"] == "v2"  # v2 preferred when both APIs answer

    await goe_server.stop()
    await until(lambda: rec.availability.get("goe-200001") == "offline", 30, "charger offline")
    seen = rec.count("shelly-c45bbe000004")
    await until(lambda: rec.count("shelly-c45bbe000004") >= seen + 5, 30, "plug keeps being polled")
    assert rec.availability["shelly-c45bbe000004"] == "online"
    result = await send(bus, "goe-200001", m.SetChargeCurrent(current_a=8))
    assert result.status == "failed" and "not reachable" in result.message

    await serve(goe_app(goe, "both"), goe_server.port)
    await until(lambda: rec.availability.get("goe-200001") == "online", 30, "charger back online")
    await until(lambda: any(s.counters.get("poll_failures", 0) >= 2 for s in rec.status), 20, "failures counted")
