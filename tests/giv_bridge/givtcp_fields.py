"""GivTCP's core runAll fields and the kind of value each carries: what a GivTCP user's dashboards,
REST sensors and automations read.

Provenance: GivTCP (github.com/britkat1980/giv_tcp) at tag 2.2, GivTCP/read.py `getData`, the
document it builds for a single-phase hybrid with batteries: 90 fields (its `raw`/`result`
extras left out), plus the three its tag 2.4.3 added to the same sections (Grid_Frequency,
Inverter_Output_Frequency, Battery_Power_Mode): 93. Kinds are read off the code that fills
them (e.g. Mode from the r27/r59/r110 recipe as "Eco"; schedules as "enable"/"disable"; meter
type 0/1 as "EM418"/"EM115"; battery type 1 as "Lithium"; Invertor_Time and the completion
times via datetime.isoformat() with the time zone; slots via time.isoformat(); rates in watts
from the C-rate registers). Battery_Details: the 31 fields per battery serial of the same read.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

NUMBER, TEXT, TIME, SLOT, SWITCH = "number", "text", "iso8601", "hh:mm:ss", "enable/disable"
MODE, TIMED, METER, BATTERY_TYPE, STATUS = "mode", "Normal/Running", "meter", "battery type", "online"

_POWER = ["AC_Charge_Power", "Battery_Power", "Charge_Power", "Charge_Time_Remaining", "Discharge_Power",
          "Discharge_Time_Remaining", "EPS_Power", "Export_Power", "Grid_Current", "Grid_Power", "Grid_Voltage",
          "Import_Power", "Invertor_Power", "Load_Power", "PV_Current_String_1", "PV_Current_String_2", "PV_Power",
          "PV_Power_String_1", "PV_Power_String_2", "PV_Voltage_String_1", "PV_Voltage_String_2", "SOC", "SOC_kWh",
          "Self_Consumption_Power", "Grid_Frequency", "Inverter_Output_Frequency"]
_FLOWS = ["Battery_to_Grid", "Battery_to_House", "Grid_to_Battery", "Grid_to_House", "Solar_to_Battery",
          "Solar_to_Grid", "Solar_to_House"]
_ENERGY = ["AC_Charge_Energy", "Battery_Charge_Energy", "Battery_Discharge_Energy", "Battery_Throughput",
           "Export_Energy", "Import_Energy", "Invertor_Energy", "Load_Energy", "PV_Energy", "Self_Consumption_Energy"]

CORE_FIELDS: dict[str, str] = {
    "Last_Updated_Time": TIME, "status": STATUS, "Time_Since_Last_Update": NUMBER,
    **{f"Power/Power/{name}": NUMBER for name in _POWER},
    "Power/Power/Charge_Completion_Time": TIME, "Power/Power/Discharge_Completion_Time": TIME,
    **{f"Power/Flows/{name}": NUMBER for name in _FLOWS},
    **{f"Energy/Today/{name}_Today_kWh": NUMBER for name in _ENERGY},
    **{f"Energy/Total/{name}_Total_kWh": NUMBER for name in _ENERGY},
    "Invertor_Details/Battery_Capacity_kWh": NUMBER, "Invertor_Details/Battery_Type": BATTERY_TYPE,
    "Invertor_Details/Invertor_Firmware": NUMBER, "Invertor_Details/Invertor_Max_Rate": NUMBER,
    "Invertor_Details/Invertor_Serial_Number": TEXT, "Invertor_Details/Invertor_Temperature": NUMBER,
    "Invertor_Details/Invertor_Time": TIME, "Invertor_Details/Invertor_Type": TEXT,
    "Invertor_Details/Meter_Type": METER, "Invertor_Details/Modbus_Version": NUMBER,
    **{f"Timeslots/{kind}_{edge}_time_slot_{n}": SLOT for kind in ("Charge", "Discharge") for edge in ("start", "end")
       for n in (1, 2)},
    "Control/Active_Power_Rate": NUMBER, "Control/Battery_Charge_Rate": NUMBER,
    "Control/Battery_Discharge_Rate": NUMBER, "Control/Battery_Power_Cutoff": NUMBER,
    "Control/Battery_Power_Reserve": NUMBER, "Control/Enable_Charge_Schedule": SWITCH,
    "Control/Enable_Discharge": SWITCH, "Control/Enable_Discharge_Schedule": SWITCH, "Control/Force_Charge": TIMED,
    "Control/Force_Export": TIMED, "Control/Mode": MODE, "Control/Reboot_Addon": SWITCH,
    "Control/Reboot_Invertor": SWITCH, "Control/Target_SOC": NUMBER, "Control/Temp_Pause_Charge": TIMED,
    "Control/Temp_Pause_Discharge": TIMED, "Control/Battery_Power_Mode": SWITCH,
}

BATTERY_FIELDS: dict[str, str] = {
    "Battery_Serial_Number": TEXT, "Battery_SOC": NUMBER, "Battery_Capacity": NUMBER,
    "Battery_Design_Capacity": NUMBER, "Battery_Remaining_Capacity": NUMBER, "Battery_Firmware_Version": NUMBER,
    "Battery_Cells": NUMBER, "Battery_Cycles": NUMBER, "Battery_USB_present": NUMBER, "Battery_Temperature": NUMBER,
    "Battery_Voltage": NUMBER, **{f"Battery_Cell_{i}_Voltage": NUMBER for i in range(1, 17)},
    **{f"Battery_Cell_{i}_Temperature": NUMBER for i in range(1, 5)},
}


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _time(v: Any) -> bool:
    try:
        return isinstance(v, str) and "T" in v and datetime.fromisoformat(v).tzinfo is not None
    except ValueError:
        return False


CHECKS: dict[str, Callable[[Any], bool]] = {
    NUMBER: _number, TEXT: lambda v: isinstance(v, str) and bool(v), TIME: _time,
    SLOT: lambda v: isinstance(v, str) and re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d:00", v) is not None,
    SWITCH: lambda v: v in ("enable", "disable"),
    MODE: lambda v: v in ("Eco", "Eco (Paused)", "Timed Demand", "Timed Export", "Export (Paused)"),
    TIMED: lambda v: v in ("Normal", "Running"), METER: lambda v: v in ("EM115", "EM418"),
    BATTERY_TYPE: lambda v: v in ("Lithium", "Lead Acid"), STATUS: lambda v: v == "online",
}


def lookup(doc: Mapping[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


def compare(doc: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(missing fields, fields of the wrong kind with their value) of a runAll document."""
    missing, wrong = [], []
    for path, kind in CORE_FIELDS.items():
        try:
            value = lookup(doc, path)
        except KeyError:
            missing.append(path)
            continue
        if not CHECKS[kind](value):
            wrong.append(f"{path} = {value!r} (GivTCP: {kind})")
    for serial, battery in doc.get("Battery_Details", {}).items():
        for name, kind in BATTERY_FIELDS.items():
            if name not in battery:
                missing.append(f"Battery_Details/{serial}/{name}")
            elif not CHECKS[kind](battery[name]):
                wrong.append(f"Battery_Details/{serial}/{name} = {battery[name]!r} (GivTCP: {kind})")
    return missing, wrong
