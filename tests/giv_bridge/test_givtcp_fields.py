"""runAll field by field against GivTCP's 93 core fields and their kinds (givtcp_fields.py), from a
real inverter's captured registers; the GivTCP MQTT tree and GivTCP's control payloads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from wattbus import messages as m
from wattbus.counters import Counters
from wattbus.log import Logger
from wattbus_giv_bridge import givtcp, givtcp_mqtt
from wattbus_giv_bridge.controls import CommandInvalid
from wattbus_giv_bridge.dongle import Dongle
from wattbus_giv_bridge.givtcp_control import GivAction, from_givtcp
from wattbus_giv_bridge.plant import InverterConfig, Plant

from tests.giv_bridge.conftest import responses
from tests.giv_bridge.givtcp_fields import BATTERY_FIELDS, CORE_FIELDS, compare, lookup


def captured_plant(name: str, address: int) -> Plant:
    """A Plant whose caches hold a real capture's answers (as after a poll of that inverter)."""
    plant = Plant(InverterConfig(host="capture", address=address, batteries=2),
                  Dongle("capture", 8899, Counters(), Logger("test")))
    for frame in responses(name):
        if frame.function in (3, 4):
            plant.cache(frame.address).update("hr" if frame.function == 3 else "ir", frame.base, frame.values)
    serial = plant.inverter_values()["serial_number"]
    plant.serial = serial if isinstance(serial, str) else None
    for index in range(2):
        bserial = plant.battery_values(index)["serial_number"]
        if isinstance(bserial, str):
            plant.battery_serials[index] = bserial
    plant.previous_poll = datetime(2024, 6, 21, 10, 0, 0, tzinfo=UTC)
    plant.last_poll = plant.previous_poll + timedelta(seconds=15)
    return plant


def test_the_table_has_givtcps_93_core_fields() -> None:
    assert len(CORE_FIELDS) == 93 and len(BATTERY_FIELDS) == 31


def test_runall_of_a_real_gen1_hybrid_has_every_field_of_its_kind() -> None:
    plant = captured_plant("hybrid_gen1_arm449_0x11_poll_10min.log", 0x11)
    doc = givtcp.run_all(plant, timed={"Force_Charge": 12})
    missing, wrong = compare(doc)
    assert missing == [] and wrong == [], (missing, wrong)
    assert lookup(doc, "Invertor_Details/Invertor_Type") == "Gen 1 Hybrid"
    assert lookup(doc, "Time_Since_Last_Update") == 15.0
    assert lookup(doc, "Control/Force_Charge") == "Running" and lookup(doc, "Control/Force_Charge_Num") == 12
    energy = doc["Energy"]["Total"]
    assert energy["PV_Energy_Total_kWh"] > 0 and energy["Import_Energy_Total_kWh"] > 0
    # GivTCP's definitions of the derived figures
    assert energy["Self_Consumption_Energy_Total_kWh"] == pytest.approx(
        max(0.0, energy["PV_Energy_Total_kWh"] - energy["Export_Energy_Total_kWh"]), abs=0.011)
    load = (energy["Invertor_Energy_Total_kWh"] - energy["AC_Charge_Energy_Total_kWh"]) \
        - (energy["Export_Energy_Total_kWh"] - energy["Import_Energy_Total_kWh"])
    assert energy["Load_Energy_Total_kWh"] == pytest.approx(max(0.0, load), abs=0.011)
    power = doc["Power"]["Power"]
    grid = power["Grid_Power"]  # GivTCP's sign: + export
    assert power["Import_Power"] == max(0, -grid) and power["Export_Power"] == max(0, grid)
    assert power["SOC_kWh"] == pytest.approx(power["SOC"] * lookup(doc, "Invertor_Details/Battery_Capacity_kWh") / 100,
                                             abs=0.01)


def test_the_mqtt_tree_is_givtcps_layout() -> None:
    plant = captured_plant("hybrid_gen1_arm449_0x11_poll_10min.log", 0x11)
    doc = givtcp.run_all(plant)
    serial = str(plant.serial)
    tree = dict(givtcp_mqtt.topics_for("GivEnergy/", serial, doc))
    for path in CORE_FIELDS:
        value = lookup(doc, path)
        expected = str(round(value, 3)) if isinstance(value, float) else str(value)
        assert tree[f"GivEnergy/{serial}/{path}"] == expected, path
    battery = next(iter(doc["Battery_Details"]))
    assert f"GivEnergy/{serial}/Battery_Details/{battery}/Battery_SOC" in tree
    assert all(t.count("/") >= 2 and "#" not in t and "+" not in t for t in tree)


@pytest.mark.parametrize(("payload", "expected"), [
    ({"givtcp": "setBatteryMode", "mode": "Eco"}, m.SetBatteryMode(mode="eco")),
    ({"givtcp": "setBatteryMode", "mode": "timed export"}, m.SetBatteryMode(mode="timed_export")),
    ({"givtcp": "setBatteryMode", "mode": "2"}, m.SetBatteryMode(mode="eco_paused")),  # GivTCP 1.x numbers
    ({"givtcp": "enableChargeSchedule", "state": "disable"}, m.SetSchedule(which="charge", enabled=False)),
    ({"givtcp": "enableDischargeSchedule", "state": "enable"}, m.SetSchedule(which="discharge", enabled=True)),
    ({"givtcp": "enableChargeTarget"}, m.SetChargeTargetEnabled(enabled=True)),
    ({"givtcp": "setBatteryReserve", "reservePercent": "20"}, m.SetBatteryReserve(soc_pct=20)),
    ({"givtcp": "setChargeSlot1", "start": "01:30", "finish": "04:00"},
     m.SetChargeSlot(slot=1, start="0130", end="0400")),
    ({"givtcp": "forceCharge", "duration": "30"}, GivAction("forceCharge", minutes=30)),
    ({"givtcp": "tempPauseDischarge", "duration": "Cancel"}, GivAction("tempPauseDischarge", minutes=None)),
    ({"givtcp": "enableDischarge", "state": "disable"}, GivAction("enableDischarge", enable=False)),
])
def test_givtcp_payloads(payload: dict[str, Any], expected: object) -> None:
    assert from_givtcp(payload) == expected


@pytest.mark.parametrize(("payload", "fragment"), [
    ({"givtcp": "setBatteryMode", "mode": "Turbo"}, r"mode .Turbo.: battery mode must be one of Eco"),
    ({"givtcp": "forceCharge", "duration": "0"}, "whole minutes"),
    ({"givtcp": "forceCharge"}, "duration is required"),
    ({"givtcp": "enableDischarge", "state": "yes"}, "enable"),
    ({"givtcp": "setBatteryReserve", "reservePercent": "2"}, "between 4 and 100"),
])
def test_bad_givtcp_payloads_name_the_field(payload: dict[str, Any], fragment: str) -> None:
    with pytest.raises(CommandInvalid, match=fragment):
        from_givtcp(payload)
