"""GivTCP compatibility: the nested runAll document, its control payloads and its environment.

GivTCP users find the same data on `.../native/runAll`; GivTCP-shaped control requests
(`{"givtcp": "setChargeSlot1", "start": "0100", "finish": "0400", "chargeToPercent": "55"}`) are
accepted on the device's command topic next to contract commands.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from datetime import datetime
from typing import Any

from wattbus import messages as m

from .controls import CommandInvalid, hhmm, mode_of, percent
from .plant import Plant
from .regmap import Value

MODE_NUMBERS = {1: "eco", 2: "eco_paused", 3: "timed_demand", 4: "timed_export"}


def _kwh(value: Value) -> float | None:
    return round(float(value) / 1000, 2) if isinstance(value, int | float) else None


def _slot(value: Value) -> str:
    return f"{value}:00" if isinstance(value, str) else "00:00:00"


def _pos(value: float | None) -> float:
    return max(value or 0.0, 0.0)


def run_all(plant: Plant, raw: bool = False) -> dict[str, Any]:
    v = plant.inverter_values()
    num = {k: (float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None) for k, x in v.items()}
    pv = (num["pv1_power_w"] or 0.0) + (num["pv2_power_w"] or 0.0)
    grid = -(num["grid_export_power_w"] or 0.0)  # + import
    battery = num["battery_power_w"] or 0.0  # + discharge
    load = num["load_power_w"] or 0.0
    solar_to_house = min(pv, load)
    solar_to_battery = min(_pos(pv - solar_to_house), _pos(-battery))
    solar_to_grid = _pos(pv - solar_to_house - solar_to_battery)
    battery_to_house = min(_pos(battery), _pos(load - solar_to_house))
    grid_to_house = _pos(load - solar_to_house - battery_to_house)
    clock = [v[f"clock_{k}"] for k in ("year", "month", "day", "hour", "minute", "second")]
    inverter_time = (f"{clock[2]:02d}/{clock[1]:02d}/20{clock[0]:02d} {clock[3]:02d}:{clock[4]:02d}:{clock[5]:02d}"
                     if all(isinstance(c, int) for c in clock) else None)
    mode = mode_of(v)
    doc: dict[str, Any] = {
        "Power": {
            "Power": {
                "PV_Power_String_1": num["pv1_power_w"], "PV_Power_String_2": num["pv2_power_w"], "PV_Power": pv,
                "PV_Voltage_String_1": num["pv1_voltage_v"], "PV_Voltage_String_2": num["pv2_voltage_v"],
                "PV_Current_String_1": num["pv1_current_a"], "PV_Current_String_2": num["pv2_current_a"],
                "Grid_Power": -grid, "Import_Power": _pos(grid), "Export_Power": _pos(-grid),
                "EPS_Power": num["eps_power_w"], "Invertor_Power": num["inverter_power_w"], "Load_Power": load,
                "SOC": num["battery_soc_pct"], "Battery_Power": battery, "Discharge_Power": _pos(battery),
                "Charge_Power": _pos(-battery), "Grid_Voltage": num["grid_voltage_v"],
                "Grid_Frequency": num["grid_frequency_hz"],
            },
            "Flows": {
                "Solar_to_House": solar_to_house, "Solar_to_Battery": solar_to_battery, "Solar_to_Grid": solar_to_grid,
                "Battery_to_House": battery_to_house, "Battery_to_Grid": _pos(_pos(battery) - battery_to_house),
                "Grid_to_House": grid_to_house, "Grid_to_Battery": _pos(_pos(-battery) - solar_to_battery),
            },
        },
        "Energy": {
            "Today": {
                "PV_Energy_Today_kWh": _kwh(v["pv_today_wh"]), "Import_Energy_Today_kWh": _kwh(v["import_today_wh"]),
                "Export_Energy_Today_kWh": _kwh(v["export_today_wh"]),
                "Battery_Charge_Energy_Today_kWh": _kwh(v["battery_charge_today_wh"]),
                "Battery_Discharge_Energy_Today_kWh": _kwh(v["battery_discharge_today_wh"]),
                "AC_Charge_Energy_Today_kWh": _kwh(v["ac_charge_today_wh"]),
            },
            "Total": {
                "PV_Energy_Total_kWh": _kwh(v["pv_total_wh"]), "Import_Energy_Total_kWh": _kwh(v["import_total_wh"]),
                "Export_Energy_Total_kWh": _kwh(v["export_total_wh"]),
                "Battery_Charge_Energy_Total_kWh": _kwh(v["battery_charge_total_wh"]),
                "Battery_Discharge_Energy_Total_kWh": _kwh(v["battery_discharge_total_wh"]),
                "Battery_Throughput_Total_kWh": _kwh(v["battery_throughput_total_wh"]),
            },
        },
        "Invertor_Details": {
            "Invertor_Serial_Number": plant.serial, "Invertor_Type": plant.metas("giv-bridge")[0].model,
            "Modbus_Version": v["modbus_version"], "Meter_Type": v["meter_type"], "Battery_Type": v["battery_type"],
            "Battery_Capacity_Ah": v["battery_capacity_ah"],
            "Invertor_Firmware": f"{v['dsp_firmware']}/{v['arm_firmware']}", "Invertor_Time": inverter_time,
            "Invertor_Temperature": num["heatsink_temperature_c"],
            "Charger_Temperature": num["charger_temperature_c"], "Fault_Code": v["fault_code"],
        },
        "Timeslots": {
            "Charge_start_time_slot_1": _slot(v["charge_slot_1_start"]),
            "Charge_end_time_slot_1": _slot(v["charge_slot_1_end"]),
            "Charge_start_time_slot_2": _slot(v["charge_slot_2_start"]),
            "Charge_end_time_slot_2": _slot(v["charge_slot_2_end"]),
            "Discharge_start_time_slot_1": _slot(v["discharge_slot_1_start"]),
            "Discharge_end_time_slot_1": _slot(v["discharge_slot_1_end"]),
            "Discharge_start_time_slot_2": _slot(v["discharge_slot_2_start"]),
            "Discharge_end_time_slot_2": _slot(v["discharge_slot_2_end"]),
        },
        "Control": {
            "Battery_Power_Reserve": v["battery_reserve_pct"], "Target_SOC": v["charge_target_pct"],
            "Enable_Charge_Target": v["enable_charge_target"], "Enable_Charge_Schedule": v["enable_charge"],
            "Enable_Discharge_Schedule": v["enable_discharge"], "Battery_Power_Mode": v["battery_power_mode"],
            "Mode": next((n for n, name in MODE_NUMBERS.items() if name == mode), None),
            "Battery_Charge_Rate": v["battery_charge_limit"], "Battery_Discharge_Rate": v["battery_discharge_limit"],
        },
        "Battery_Details": {},
    }
    for index in sorted(plant.battery_serials):
        b = plant.battery_values(index)
        details: dict[str, Any] = {
            "Battery_Serial_Number": b["serial_number"], "Battery_SOC": b["soc_pct"],
            "Battery_Capacity": b["capacity_calibrated_ah"], "Battery_Design_Capacity": b["capacity_design_ah"],
            "Battery_Remaining_Capacity": b["capacity_remaining_ah"], "Battery_Firmware_Version": b["bms_firmware"],
            "Battery_Cells": b["cells"], "Battery_Cycles": b["cycles"], "Battery_USB_present": b["usb_inserted"] == 1,
            "Battery_Temperature": b["max_temperature_c"], "Battery_Voltage": b["cells_sum_v"],
        }
        for cell in range(1, 17):
            details[f"Battery_Cell_{cell}_Voltage"] = b[f"cell_{cell:02d}_v"]
        for group, first in enumerate((1, 5, 9, 13), start=1):
            details[f"Battery_Cell_{group}_Temperature"] = b[f"cells_{first:02d}_{first + 3:02d}_temperature_c"]
        doc["Battery_Details"][str(b["serial_number"] or f"battery_{index + 1}")] = details
    if raw:
        doc["raw"] = {f"{addr:#04x}": {f"{bank}_{reg}": word for (bank, reg), word in sorted(cache.words.items())}
                      for addr, cache in plant.caches.items()}
    return doc


# --------------------------------------------------------------------------- control payloads

def _text_percent(payload: Mapping[str, Any], key: str, what: str, minimum: int = 0) -> int:
    raw = payload.get(key)
    try:
        number = float(str(raw))
    except ValueError:
        raise CommandInvalid(f"{key} {raw!r}: {what} must be a number") from None
    return percent(number, what, minimum)


def from_givtcp(payload: Mapping[str, Any]) -> m.CommandBase:
    """Translate a GivTCP control request into a contract command; raises CommandInvalid."""
    name = payload.get("givtcp")
    rid = payload.get("request_id") if isinstance(payload.get("request_id"), str) else None
    simple: dict[str, m.CommandBase] = {
        "enableChargeTarget": m.SetChargeTargetEnabled(enabled=True, request_id=rid),
        "disableChargeTarget": m.SetChargeTargetEnabled(enabled=False, request_id=rid),
        "pauseChargeSchedule": m.SetSchedule(which="charge", enabled=False, request_id=rid),
        "resumeChargeSchedule": m.SetSchedule(which="charge", enabled=True, request_id=rid),
        "pauseDischargeSchedule": m.SetSchedule(which="discharge", enabled=False, request_id=rid),
        "resumeDischargeSchedule": m.SetSchedule(which="discharge", enabled=True, request_id=rid),
    }
    if isinstance(name, str) and name in simple:
        return simple[name]
    match name:
        case "setChargeTarget":
            return m.SetChargeTarget(soc_pct=_text_percent(payload, "chargeToPercent", "charge target", 4),
                                     request_id=rid)
        case "setBatteryReserve":
            return m.SetBatteryReserve(soc_pct=_text_percent(payload, "dischargeToPercent", "battery reserve", 4),
                                       request_id=rid)
        case "setChargeSlot1" | "setChargeSlot2" | "setDischargeSlot1" | "setDischargeSlot2":
            start = f"{hhmm(str(payload.get('start')), 'start'):04d}"
            end = f"{hhmm(str(payload.get('finish')), 'finish'):04d}"
            slot = int(name[-1])
            if name.startswith("setCharge"):
                target = _text_percent(payload, "chargeToPercent", "charge target", 4) \
                    if "chargeToPercent" in payload else None
                return m.SetChargeSlot(slot=slot, start=start, end=end, target_soc_pct=target, request_id=rid)
            reserve = _text_percent(payload, "dischargeToPercent", "discharge reserve", 4) \
                if "dischargeToPercent" in payload else None
            return m.SetDischargeSlot(slot=slot, start=start, end=end, reserve_soc_pct=reserve, request_id=rid)
        case "setBatteryMode":
            raw = str(payload.get("mode"))
            if not raw.isdigit() or int(raw) not in MODE_NUMBERS:
                raise CommandInvalid(f"mode {payload.get('mode')!r}: battery mode must be 1, 2, 3 or 4")
            mode = MODE_NUMBERS[int(raw)]
            return m.SetBatteryMode(mode=mode, request_id=rid)  # type: ignore[arg-type]
        case "setDateTime":
            text = str(payload.get("dateTime"))
            try:
                when = datetime.strptime(text, "%d/%m/%Y %H:%M:%S")
            except ValueError:
                raise CommandInvalid(f"dateTime {text!r}: use dd/mm/yyyy hh:mm:ss") from None
            return m.SetClock(time=when, request_id=rid)
        case "setChargeRate" | "setDischargeRate":
            try:
                watts = float(str(payload.get("chargeRate" if name == "setChargeRate" else "dischargeRate")))
            except ValueError:
                raise CommandInvalid(f"{name}: the rate must be a number of watts") from None
            if not 0 <= watts <= 20000:
                raise CommandInvalid(f"{name} {watts:g} W: between 0 and 20000 W")
            return m.SetBatteryPowerLimit(direction="charge" if name == "setChargeRate" else "discharge",
                                          power_w=watts, request_id=rid)
    raise CommandInvalid(f"givtcp function {name!r} is not one of GivTCP's control functions")


# --------------------------------------------------------------------------- environment

def apply_env(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Map GivTCP's variables to wattbus ones (never over explicit WATTBUS_* values); returns notes."""
    env = os.environ if environ is None else environ
    notes: list[str] = []

    def put(name: str, value: str, origin: str) -> None:
        if name not in env:
            env[name] = value
            notes.append(f"{origin} -> {name}")

    hosts = [h.strip() for h in env.get("INVERTOR_IP", "").split(",") if h.strip()]
    hosts += [env[k] for k in sorted(env) if k.startswith("INVERTOR_IP_") and env[k].strip()]
    if hosts:
        tables = []
        for index, host in enumerate(hosts, start=1):
            batteries = env.get(f"NUM_BATTERIES_{index}", env.get("NUM_BATTERIES", "1"))
            if not batteries.strip().isdigit():
                raise ValueError(f"NUM_BATTERIES = {batteries!r}: a whole number of batteries")
            tables.append(f'{{ host = "{host}", batteries = {int(batteries)} }}')
        put("WATTBUS_GIV_BRIDGE_INVERTERS", "[" + ", ".join(tables) + "]", "INVERTOR_IP")
    for givtcp, ours in (("MQTT_ADDRESS", "WATTBUS_BUS_HOST"), ("MQTT_PORT", "WATTBUS_BUS_PORT"),
                         ("MQTT_USERNAME", "WATTBUS_BUS_USERNAME"), ("MQTT_PASSWORD", "WATTBUS_BUS_PASSWORD"),
                         ("SELF_RUN_LOOP_TIMER", "WATTBUS_GIV_BRIDGE_POLL_INTERVAL_S"),
                         ("PRINT_RAW", "WATTBUS_GIV_BRIDGE_PRINT_RAW"), ("LOG_LEVEL", "WATTBUS_LOG_LEVEL")):
        if env.get(givtcp, "").strip():
            value = env[givtcp].strip()
            put(ours, value.lower() if givtcp == "PRINT_RAW" else value.upper() if givtcp == "LOG_LEVEL" else value,
                givtcp)
    if any(k.startswith("INFLUX_") for k in env):
        notes.append("INFLUX_* are served by the influx-writer service, which stores every giv-bridge reading")
    return notes
