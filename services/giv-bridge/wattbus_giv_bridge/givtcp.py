"""GivTCP compatibility: the nested runAll document and GivTCP's environment variables.

The document has GivTCP's fields with GivTCP's kinds (see tests/giv_bridge/givtcp_fields.py for
the list and where it comes from): texts such as "Eco", "enable"/"disable", "EM115", ISO 8601
times, energies in kWh and rates in watts. Derived figures follow GivTCP's definitions (load
energy = inverter out - AC charge - (export - import), self consumption = PV - export). GivTCP
users find the document on `.../native/runAll`, on http-api's GET /runAll, /getCache, /readData
and, opt-in, as GivTCP's MQTT tree (givtcp_mqtt.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

from .controls import clock_time, mode_of
from .plant import Plant
from .regmap import Value

# GivTCP's names of the four battery modes (setBatteryMode and Control.Mode), in GivTCP's old numbering 1-4.
MODE_NAMES = {"eco": "Eco", "eco_paused": "Eco (Paused)", "timed_demand": "Timed Demand",
              "timed_export": "Timed Export"}
MODE_NUMBERS = {1: "eco", 2: "eco_paused", 3: "timed_demand", 4: "timed_export"}
METER_TYPES = {0: "EM418", 1: "EM115"}
BATTERY_TYPES = {0: "Lead Acid", 1: "Lithium"}
FAMILIES = {"2": "Hybrid", "3": "AC", "4": "Hybrid", "8": "All in One"}  # device type code, first digit
GENERATIONS = {3: "Gen 3", 8: "Gen 2", 9: "Gen 2"}  # ARM firmware // 100; everything else is Gen 1
INVERTER_MAX_W = {0x2001: 5000, 0x2002: 4600, 0x2003: 3600, 0x3001: 3000, 0x3002: 3600, 0x4001: 6000,
                  0x4002: 8000, 0x4003: 10000, 0x4004: 11000, 0x8001: 6000}
TIMED = ("Force_Charge", "Force_Export", "Temp_Pause_Charge", "Temp_Pause_Discharge")


def _num(value: Value) -> float | int:
    """A register value as a number (whole registers stay whole, as in GivTCP's document); a
    missing one counts 0 as GivTCP's arithmetic does."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _kwh(value: Value) -> float:
    return round(_num(value) / 1000, 2)


def _slot(value: Value) -> str:
    return f"{value}:00" if isinstance(value, str) else "00:00:00"


def _switch(value: object) -> str:
    return "enable" if value is True or value == 1 else "disable"


def _pos(value: float) -> float:
    return value if value > 0 else 0  # whole stays whole (GivTCP shows 0, not 0.0)


def inverter_type(code: Value, arm: Value) -> str:
    family = FAMILIES.get(f"{code:04x}"[0], "Unknown") if isinstance(code, int) else "Unknown"
    generation = GENERATIONS.get(arm // 100, "Gen 1") if isinstance(arm, int) else "Gen 1"
    return f"{generation} {family}"


def _local_time(v: Mapping[str, Value], fallback: datetime) -> str:
    """The inverter's clock (local time) as ISO 8601 with the bridge's UTC offset; GivTCP keeps the
    last good time when the clock reads the default year 2000 (or garbage): the poll time then."""
    clock = clock_time([v[f"clock_{k}"] for k in ("year", "month", "day", "hour", "minute", "second")])
    if clock is not None and clock.year != 2000:
        return clock.astimezone().isoformat(timespec="seconds")  # the inverter keeps local time
    return fallback.astimezone().isoformat(timespec="seconds")


# GivTCP's energy fields: (today's registers, total registers), summed; IR 44-46 are GivTCP's "Invertor" energy
ENERGY: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "PV_Energy": (("pv1_today_wh", "pv2_today_wh"), ("pv_total_wh",)),
    "Import_Energy": (("import_today_wh",), ("import_total_wh",)),
    "Export_Energy": (("export_today_wh",), ("export_total_wh",)),
    "AC_Charge_Energy": (("ac_charge_today_wh",), ("inverter_in_total_wh",)),
    "Invertor_Energy": (("pv_today_wh",), ("pv_generation_total_wh",)),
    "Battery_Charge_Energy": (("battery_charge_today_wh",), ("battery_charge_total_wh",)),
    "Battery_Discharge_Energy": (("battery_discharge_today_wh",), ("battery_discharge_total_wh",)),
}


def _energy(v: Mapping[str, Value]) -> dict[str, dict[str, float]]:
    today = {f"{name}_Today_kWh": _kwh(sum(_num(v[r]) for r in regs[0])) for name, regs in ENERGY.items()}
    total = {f"{name}_Total_kWh": _kwh(sum(_num(v[r]) for r in regs[1])) for name, regs in ENERGY.items()}
    total["Battery_Throughput_Total_kWh"] = _kwh(v["battery_throughput_total_wh"])
    today["Battery_Throughput_Today_kWh"] = round(today["Battery_Charge_Energy_Today_kWh"]
                                                  + today["Battery_Discharge_Energy_Today_kWh"], 2)
    for block, when in ((today, "Today"), (total, "Total")):
        load = (block[f"Invertor_Energy_{when}_kWh"] - block[f"AC_Charge_Energy_{when}_kWh"]) \
            - (block[f"Export_Energy_{when}_kWh"] - block[f"Import_Energy_{when}_kWh"])
        block[f"Load_Energy_{when}_kWh"] = round(_pos(load), 2)
        block[f"Self_Consumption_Energy_{when}_kWh"] = round(
            _pos(block[f"PV_Energy_{when}_kWh"] - block[f"Export_Energy_{when}_kWh"]), 2)
    return {"Today": today, "Total": total}


def _power(plant: Plant, v: Mapping[str, Value], control: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    pv1, pv2 = _num(v["pv1_power_w"]), _num(v["pv2_power_w"])
    grid = _num(v["grid_export_power_w"])  # GivTCP's sign: + export, - import
    battery, load, inverter = _num(v["battery_power_w"]), _num(v["load_power_w"]), _num(v["inverter_power_w"])
    imported, charge, discharge = _pos(-grid), _pos(-battery), _pos(battery)
    soc = _num(v["battery_soc_pct"])
    capacity_kwh = (plant.capacity_wh() or 0.0) / 1000
    charge_min = int(capacity_kwh * (_num(control["Target_SOC"]) - soc) / 100 / (charge / 1000) * 60) \
        if charge else 0
    discharge_min = int(capacity_kwh * (soc - _num(control["Battery_Power_Reserve"])) / 100
                        / (discharge / 1000) * 60) if discharge else 0
    charge_min, discharge_min = max(charge_min, 0), max(discharge_min, 0)
    return {
        "PV_Power_String_1": pv1, "PV_Power_String_2": pv2, "PV_Power": pv1 + pv2,
        "PV_Voltage_String_1": _num(v["pv1_voltage_v"]), "PV_Voltage_String_2": _num(v["pv2_voltage_v"]),
        "PV_Current_String_1": _num(v["pv1_current_a"]), "PV_Current_String_2": _num(v["pv2_current_a"]),
        "Grid_Voltage": _num(v["grid_voltage_v"]), "Grid_Current": _num(v["grid_port_current_a"]),
        "Grid_Power": grid, "Import_Power": imported, "Export_Power": _pos(grid),
        "EPS_Power": _num(v["eps_power_w"]), "Invertor_Power": inverter, "AC_Charge_Power": _pos(-inverter),
        "Load_Power": load, "Self_Consumption_Power": _pos(load - imported),
        "SOC": soc, "SOC_kWh": round(soc * capacity_kwh / 100, 2),
        "Battery_Power": battery, "Charge_Power": charge, "Discharge_Power": discharge,
        "Charge_Time_Remaining": charge_min,
        "Charge_Completion_Time": (now + timedelta(minutes=charge_min)).astimezone().isoformat(timespec="seconds"),
        "Discharge_Time_Remaining": discharge_min,
        "Discharge_Completion_Time": (now + timedelta(minutes=discharge_min)).astimezone().isoformat(
            timespec="seconds"),
        "Grid_Frequency": _num(v["grid_frequency_hz"]), "Inverter_Output_Frequency": _num(v["eps_frequency_hz"]),
    }


def _flows(p: Mapping[str, Any]) -> dict[str, float]:
    """Power flows by energy balance (never negative): PV serves the house first, then the
    battery, then the grid; the battery serves the house before the grid."""
    pv, load, battery = p["PV_Power"], p["Load_Power"], p["Battery_Power"]
    solar_to_house = min(pv, load)
    solar_to_battery = min(_pos(pv - solar_to_house), _pos(-battery))
    battery_to_house = min(_pos(battery), _pos(load - solar_to_house))
    return {"Solar_to_House": solar_to_house, "Solar_to_Battery": solar_to_battery,
            "Solar_to_Grid": _pos(pv - solar_to_house - solar_to_battery), "Battery_to_House": battery_to_house,
            "Battery_to_Grid": _pos(_pos(battery) - battery_to_house),
            "Grid_to_House": _pos(load - solar_to_house - battery_to_house),
            "Grid_to_Battery": _pos(_pos(-battery) - solar_to_battery)}


def _control(plant: Plant, v: Mapping[str, Value], timed: Mapping[str, int]) -> dict[str, Any]:
    mode = mode_of(v)
    reserve, soc = v["battery_reserve_pct"], v["battery_soc_pct"]
    control: dict[str, Any] = {
        "Mode": MODE_NAMES[mode] if mode else ("Export (Paused)" if v["battery_power_mode"] == 0 else "Unknown"),
        "Battery_Power_Reserve": _num(reserve), "Battery_Power_Cutoff": _num(v["battery_cutoff_pct"]),
        "Battery_Power_Mode": _switch(v["battery_power_mode"]), "Target_SOC": _num(v["charge_target_pct"]),
        "Enable_Charge_Target": _switch(v["enable_charge_target"]),
        "Enable_Charge_Schedule": _switch(v["enable_charge"]),
        "Enable_Discharge_Schedule": _switch(v["enable_discharge"]),
        # GivTCP: discharge is possible while the reserve is at or under the SOC
        "Enable_Discharge": _switch(isinstance(reserve, int) and isinstance(soc, int) and reserve <= soc),
        "Battery_Charge_Rate": plant.rate_w(v["battery_charge_limit"]) or 0,
        "Battery_Discharge_Rate": plant.rate_w(v["battery_discharge_limit"]) or 0,
        "Active_Power_Rate": _num(v["active_power_rate_pct"]),
        "Reboot_Invertor": "disable", "Reboot_Addon": "disable",
    }
    for name in TIMED:  # GivTCP's timed functions: "Running" with the minutes left, else "Normal"
        control[name] = "Running" if name in timed else "Normal"
        control[f"{name}_Num"] = timed.get(name, 0)
    return control


def run_all(plant: Plant, raw: bool = False, timed: Mapping[str, int] | None = None) -> dict[str, Any]:
    """GivTCP's runAll document for the last poll; `timed`: running timed functions, minutes left."""
    v = plant.inverter_values()
    polled = plant.last_poll or datetime.now(UTC)
    since = (polled - plant.previous_poll).total_seconds() if plant.previous_poll else 0
    control = _control(plant, v, timed or {})
    power = _power(plant, v, control, polled)
    dtc, arm = v["device_type_code"], v["arm_firmware"]
    doc: dict[str, Any] = {
        "Last_Updated_Time": polled.isoformat(), "status": "online", "Time_Since_Last_Update": round(since, 3),
        "Power": {"Power": power, "Flows": _flows(power)},
        "Energy": _energy(v),
        "Invertor_Details": {
            "Invertor_Serial_Number": plant.serial, "Invertor_Type": inverter_type(dtc, arm),
            "Modbus_Version": _num(v["modbus_version"]), "Invertor_Firmware": arm if isinstance(arm, int) else 0,
            "Invertor_Time": _local_time(v, polled),
            "Meter_Type": METER_TYPES.get(v["meter_type"] if isinstance(v["meter_type"], int) else -1, "Unknown"),
            "Battery_Type": BATTERY_TYPES.get(v["battery_type"] if isinstance(v["battery_type"], int) else -1,
                                              "Unknown"),
            "Battery_Capacity_kWh": round((plant.capacity_wh() or 0.0) / 1000, 2),
            "Battery_Capacity_Ah": _num(v["battery_capacity_ah"]),
            "Invertor_Max_Rate": round(plant.max_rate_w()), "Invertor_Max_Bat_Rate": round(plant.max_rate_w()),
            "Invertor_Max_Inv_Rate": INVERTER_MAX_W.get(dtc, 0) if isinstance(dtc, int) else 0,
            "Invertor_Temperature": _num(v["heatsink_temperature_c"]),
            "Charger_Temperature": _num(v["charger_temperature_c"]), "Fault_Code": _num(v["fault_code"]),
        },
        "Timeslots": {f"{kind.title()}_{edge}_time_slot_{n}": _slot(v[f"{kind}_slot_{n}_{reg}"])
                      for kind in ("charge", "discharge") for n in (1, 2)
                      for edge, reg in (("start", "start"), ("end", "end"))},
        "Control": control,
        "Battery_Details": {},
    }
    for index in sorted(plant.battery_serials):
        b = plant.battery_values(index)
        details: dict[str, Any] = {
            "Battery_Serial_Number": b["serial_number"], "Battery_SOC": b["soc_pct"],
            "Battery_Capacity": b["capacity_calibrated_ah"], "Battery_Design_Capacity": b["capacity_design_ah"],
            "Battery_Remaining_Capacity": b["capacity_remaining_ah"], "Battery_Firmware_Version": b["bms_firmware"],
            "Battery_Cells": b["cells"], "Battery_Cycles": b["cycles"], "Battery_USB_present": b["usb_inserted"],
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
    if env.get("MQTT_OUTPUT", "").strip().lower() == "true":
        put("WATTBUS_GIV_BRIDGE_GIVTCP_MQTT", "true", "MQTT_OUTPUT")
    for givtcp, ours in (("MQTT_TOPIC", "WATTBUS_GIV_BRIDGE_GIVTCP_MQTT_TOPIC"),
                         ("MQTT_RETAIN", "WATTBUS_GIV_BRIDGE_GIVTCP_MQTT_RETAIN"),
                         ("MQTT_ADDRESS", "WATTBUS_BUS_HOST"), ("MQTT_PORT", "WATTBUS_BUS_PORT"),
                         ("MQTT_USERNAME", "WATTBUS_BUS_USERNAME"), ("MQTT_PASSWORD", "WATTBUS_BUS_PASSWORD"),
                         ("SELF_RUN_LOOP_TIMER", "WATTBUS_GIV_BRIDGE_POLL_INTERVAL_S"),
                         ("PRINT_RAW", "WATTBUS_GIV_BRIDGE_PRINT_RAW"), ("LOG_LEVEL", "WATTBUS_LOG_LEVEL")):
        if env.get(givtcp, "").strip():
            value = env[givtcp].strip()
            lower, upper = givtcp in ("PRINT_RAW", "MQTT_RETAIN"), givtcp == "LOG_LEVEL"
            put(ours, value.lower() if lower else value.upper() if upper else value, givtcp)
    if any(k.startswith("INFLUX_") for k in env):
        notes.append("INFLUX_* are served by the influx-writer service, which stores every giv-bridge reading")
    return notes
