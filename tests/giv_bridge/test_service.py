"""giv-bridge end to end: simulator on loopback, real broker with the real ACL, service subprocess."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus, Message
from wattbus.counters import Counters
from wattbus.log import Logger
from wattbus_giv_bridge.config import InverterConfig
from wattbus_giv_bridge.dongle import Dongle
from wattbus_giv_bridge.plant import Plant

from tests.giv_bridge.conftest import GivSim
from tests.giv_bridge.givtcp_fields import CORE_FIELDS, compare, lookup
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto

SOURCE = "giv-bridge"
INVERTER = "givenergy-sa2345g678"


def _env(broker: Mosquitto, sim: GivSim, **extra: str) -> dict[str, str]:
    return {**broker.env(SOURCE), "WATTBUS_GIV_BRIDGE_POLL_INTERVAL_S": "1",
            "WATTBUS_GIV_BRIDGE_INSTANCE": f"t{sim.port}", **extra}


async def _watch(bus: Bus) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    seen: dict[str, list[Any]] = {}
    native: dict[str, Any] = {}

    def reading(msg: Message[m.Reading]) -> None:
        seen.setdefault(msg.payload.device_id, []).append(msg.payload)

    def doc(msg: Message[bytes]) -> None:
        native["runAll"] = json.loads(msg.payload)

    bus.subscribe(f"{topics.PREFIX}/device/{SOURCE}/+/reading", m.Reading, reading)
    bus.subscribe(topics.device_native(SOURCE, INVERTER, "runAll"), bytes, doc)
    return seen, native


async def test_readings_runall_and_every_control(broker: Mosquitto, giv_sim: GivSim, start_service: Any) -> None:
    # The GivTCP environment alone configures it (INVERTOR_IP, NUM_BATTERIES).
    # MQTT_OUTPUT: GivTCP's MQTT tree too, published by the bridge's own account under the shipped ACL
    env = _env(broker, giv_sim, INVERTOR_IP="127.0.0.1", NUM_BATTERIES="2", MQTT_OUTPUT="True",
               WATTBUS_GIV_BRIDGE_INVERTERS=f'[{{ host = "127.0.0.1", port = {giv_sim.port}, batteries = 2 }}]')
    service = start_service("wattbus_giv_bridge", env=env)
    bus = await started_bus(broker, "http-api", instance=f"giv{giv_sim.port}")
    seen, native = await _watch(bus)
    admin = await started_bus(broker, "test-admin", instance=f"givtcp{giv_sim.port}")
    tree: dict[str, str] = {}

    def givtcp_topic(msg: Message[bytes]) -> None:
        tree[msg.topic] = msg.payload.decode()

    admin.subscribe("GivEnergy/#", bytes, givtcp_topic)
    try:
        await until(lambda: "runAll" in native and len(seen) >= 7, 30, "readings and runAll")
        assert {INVERTER, f"{INVERTER}-grid", f"{INVERTER}-battery", "givenergy-bg2345g001",
                "givenergy-dz2345g002"} <= set(seen)
        battery = seen["givenergy-bg2345g001"][-1]
        assert isinstance(battery, m.BatteryReading) and len(battery.cell_voltages_v) == 16
        doc = native["runAll"]
        assert set(doc) >= {"Power", "Energy", "Invertor_Details", "Timeslots", "Control", "Battery_Details"}
        assert set(doc["Battery_Details"]) == {"BG2345G001", "DZ2345G002"}
        missing, wrong = compare(doc)  # GivTCP's 93 core fields, each of GivTCP's kind
        assert missing == [] and wrong == [], (missing, wrong)
        totals = doc["Energy"]["Total"]
        assert all(v > 0 for k, v in totals.items() if k != "Load_Energy_Total_kWh"), totals
        assert doc["Invertor_Details"]["Battery_Capacity_kWh"] == 16.38  # 2 x 160 Ah at 51.2 V
        # every core field on its GivTCP topic, as text (each poll publishes the whole tree again, so a
        # subscription that started in the middle of one is complete after the next)
        await until(lambda: all(f"GivEnergy/SA2345G678/{path}" in tree for path in CORE_FIELDS), 15,
                    "every core field in the GivTCP MQTT tree")
        assert tree["GivEnergy/SA2345G678/Invertor_Details/Invertor_Serial_Number"] == "SA2345G678"
        assert tree["GivEnergy/SA2345G678/Invertor_Details/Meter_Type"] == lookup(doc, "Invertor_Details/Meter_Type")
        assert "GivEnergy/SA2345G678/Battery_Details/BG2345G001/Battery_SOC" in tree

        target = topics.device_command(SOURCE, INVERTER)
        raw = RawRequester(bus)
        commands: list[tuple[m.CommandBase, dict[str, int]]] = [
            (m.SetChargeTargetEnabled(enabled=True), {"hr_20": 1}),
            (m.SetChargeTargetEnabled(enabled=False), {"hr_20": 0}),
            (m.SetSchedule(which="charge", enabled=True), {"hr_96": 1}),
            (m.SetSchedule(which="discharge", enabled=True), {"hr_59": 1}),
            (m.SetSchedule(which="discharge", enabled=False), {"hr_59": 0}),
            (m.SetChargeTarget(soc_pct=80), {"hr_20": 1, "hr_116": 80}),
            (m.SetBatteryReserve(soc_pct=20), {"hr_110": 20}),
            (m.SetChargeSlot(slot=1, start="0130", end="0430", target_soc_pct=90), {"hr_94": 130, "hr_95": 430}),
            (m.SetChargeSlot(slot=2, start="1200", end="1300"), {"hr_31": 1200, "hr_32": 1300}),
            (m.SetDischargeSlot(slot=1, start="1700", end="1959", reserve_soc_pct=10), {"hr_56": 1700, "hr_110": 10}),
            (m.SetDischargeSlot(slot=2, start="2000", end="2100"), {"hr_44": 2000, "hr_45": 2100}),
            (m.SetBatteryMode(mode="timed_export"), {"hr_27": 0, "hr_59": 1}),
            (m.SetBatteryMode(mode="eco"), {"hr_27": 1, "hr_59": 0, "hr_110": 4}),
            # HR 111 counts C/100 of the 2 x 160 Ah packs (16.4 kWh): 1300 W is 8 (rounded up)
            (m.SetBatteryPowerLimit(direction="charge", power_w=1300), {"hr_111": 8}),
            (m.SetBatteryPowerLimit(direction="discharge", power_w=2600), {"hr_112": 50}),
        ]
        for command, expected in commands:
            result = await bus.request(target, command, timeout=20)
            assert result.status == "ok", (command, result.message)
            assert {k: result.applied[k] for k in expected} == expected, command
        clock = await bus.request(target, m.SetClock(time=datetime(2026, 3, 4, 5, 6, 7)), timeout=20)
        assert clock.status == "ok" and clock.applied["hr_35"] == 26 and clock.applied["hr_39"] == 6

        # GivTCP-shaped requests on the same topic, translated and validated.
        givtcp_ok = await raw.request(target, {"givtcp": "setBatteryMode", "mode": "3"})
        assert givtcp_ok.status == "ok" and givtcp_ok.command == "set_battery_mode"
        for bad, fragment in (({"givtcp": "setChargeSlot1", "start": "0160", "finish": "0400"}, "minutes"),
                              ({"givtcp": "setBatteryMode", "mode": "5"}, "Eco (Paused)"),
                              ({"givtcp": "setBatteryReserve", "dischargeToPercent": "2"}, "between 4 and 100"),
                              ({"givtcp": "setDateTime", "dateTime": "2026-01-01 10:00"}, "dd/mm/yyyy"),
                              ({"command": "set_charge_target", "soc_pct": 101}, "soc_pct"),
                              ({"command": "set_charge_slot", "start": "2400", "end": "0100"}, "start")):
            result = await raw.request(target, bad)
            assert result.status == "invalid" and fragment in result.message, (bad, result)
        await until(lambda: native["runAll"]["Control"]["Mode"] == "Timed Demand", 15, "runAll shows mode 3")
        await until(lambda: tree["GivEnergy/SA2345G678/Control/Mode"] == "Timed Demand", 15, "MQTT Mode")
        assert service.proc.poll() is None
    finally:
        await bus.stop()
        await admin.stop()


class RawRequester:
    """Sends hand-written JSON (GivTCP shape or invalid) with a v5 response topic, collects answers."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.reply = topics.reply("http-api", bus.instance, "raw")
        self.answers: dict[bytes, m.CommandResult] = {}
        bus.subscribe(self.reply, m.CommandResult, self._got)

    def _got(self, msg: Message[m.CommandResult]) -> None:
        self.answers[msg.correlation_data or b""] = msg.payload

    async def request(self, topic: str, payload: dict[str, Any]) -> m.CommandResult:
        correlation = uuid.uuid4().bytes
        self.bus.publish(topic, json.dumps(payload).encode(), response_topic=self.reply, correlation_data=correlation)
        await until(lambda: correlation in self.answers, 20, f"answer to {payload}")
        return self.answers[correlation]


async def test_a_stopped_bridge_puts_a_forced_charge_back(broker: Mosquitto, giv_sim: GivSim,
                                                          start_service: Any) -> None:
    """forceCharge through the service, then SIGTERM: the pollers stop first, the restore then
    reconnects to the dongle and writes back what the inverter held before."""
    env = _env(broker, giv_sim, WATTBUS_GIV_BRIDGE_INVERTERS=f'[{{ host = "127.0.0.1", port = {giv_sim.port} }}]')
    env["WATTBUS_GIV_BRIDGE_INSTANCE"] = f"stop{giv_sim.port}"
    dongle = Dongle("127.0.0.1", giv_sim.port, Counters(), Logger("test"), timeout_s=2.0)
    plant = Plant(InverterConfig(host="127.0.0.1", port=giv_sim.port, batteries=0), dongle)
    points = ("charge_slot_1_start", "charge_slot_1_end", "enable_charge", "battery_charge_limit",
              "charge_target_pct", "enable_charge_target")

    async def holding() -> dict[str, object]:
        await plant.read_map(plant.config.address, "inverter")
        values = plant.inverter_values()
        return {name: values[name] for name in points}

    service = start_service("wattbus_giv_bridge", env=env)
    bus = await started_bus(broker, "http-api", instance=f"stop{giv_sim.port}")
    seen, native = await _watch(bus)
    try:
        await until(lambda: "runAll" in native and INVERTER in seen, 30, "the bridge polling")
        before = await holding()
        raw = RawRequester(bus)
        target = topics.device_command(SOURCE, INVERTER)
        forced = await raw.request(target, {"givtcp": "forceCharge", "duration": "30"})
        assert forced.status == "ok" and forced.command == "forceCharge", forced
        assert (await holding())["enable_charge"] is True
        assert service.stop() == 0
        assert await holding() == before, service.output()[-3000:]  # restored, not left forcing
    finally:
        await dongle.close()
        await bus.stop()
