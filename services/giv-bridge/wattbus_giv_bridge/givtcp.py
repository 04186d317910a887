"""GivTCP compatibility: the nested runAll document and GivTCP's environment variables.

The document has GivTCP's fields with GivTCP's kinds (see tests/giv_bridge/givtcp_fields.py for
the list and where it comes from): texts such as "Eco", "enable"/"disable", "EM115", ISO 8601
times, energies in kWh and rates in watts. Derived figures follow GivTCP's definitions (load
energy = inverter out - AC charge - (export - import), self consumption = PV - export). GivTCP
users find the document on `.../native/runAll`, on http-api's GET /runAll, /getCache, /readData
and, opt-in, as GivTCP's MQTT tree (givtcp_mqtt.py).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

from . import regmap, runall
from .controls import clock_time, mode_of
from .plant import Plant
from .regmap import Value

# GivTCP's names of the four battery modes (setBatteryMode and Control.Mode), in GivTCP's old numbering 1-4.
MODE_NAMES = {"eco": "Eco", "eco_paused": "Eco (Paused)", "timed_demand": "Timed Demand",
              "timed_export": "Timed Export"}
MODE_NUMBERS = {1: "eco", 2: "eco_paused", 3: "timed_demand", 4: "timed_export"}
FAMILIES = {"2": "Hybrid", "3": "AC", "4": "Hybrid", "8": "All in One"}  # device type code, first digit
GENERATIONS = {3: "Gen 3", 8: "Gen 2", 9: "Gen 2"}  # ARM firmware // 100; everything else is Gen 1
TIMED = ("Force_Charge", "Force_Export", "Temp_Pause_Charge", "Temp_Pause_Discharge")
# The plant figures data/givtcp.toml may use besides register points (filled by _figures)
FIGURES = {"serial", "inverter_type", "inverter_time", "mode", "discharge_possible", "capacity_kwh", "max_rate_w",
           "charge_rate_w", "discharge_rate_w", "last_updated", "since_s", *(f"timed_{n.lower()}" for n in TIMED)}


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


def _figures(plant: Plant, v: Mapping[str, Value], polled: datetime, timed: Mapping[str, int]) -> dict[str, object]:
    mode = mode_of(v)
    reserve, soc = v["battery_reserve_pct"], v["battery_soc_pct"]
    return {
        "serial": plant.serial, "inverter_type": inverter_type(v["device_type_code"], v["arm_firmware"]),
        "inverter_time": _local_time(v, polled),
        "mode": MODE_NAMES[mode] if mode else ("Export (Paused)" if v["battery_power_mode"] == 0 else "Unknown"),
        # GivTCP: discharge is possible while the reserve is at or under the SOC
        "discharge_possible": isinstance(reserve, int) and isinstance(soc, int) and reserve <= soc,
        "capacity_kwh": (plant.capacity_wh() or 0.0) / 1000, "max_rate_w": plant.max_rate_w(),
        "charge_rate_w": plant.rate_w(v["battery_charge_limit"]) or 0,
        "discharge_rate_w": plant.rate_w(v["battery_discharge_limit"]) or 0,
        "last_updated": polled.isoformat(),
        "since_s": (polled - plant.previous_poll).total_seconds() if plant.previous_poll else 0,
        **{f"timed_{name.lower()}": timed.get(name) for name in TIMED},  # minutes left; None = not running
    }


@functools.cache
def document() -> runall.Document:
    """data/givtcp.toml, checked against the register maps and the figures (once per process)."""
    return runall.load(runall.shipped_text(), "data/givtcp.toml", set(regmap.load("inverter").points),
                       set(regmap.load("battery").points), FIGURES)


def run_all(plant: Plant, raw: bool = False, timed: Mapping[str, int] | None = None) -> dict[str, Any]:
    """GivTCP's runAll document for the last poll; `timed`: running timed functions, minutes left."""
    v = plant.inverter_values()
    polled = plant.last_poll or datetime.now(UTC)
    batteries = []
    for index in sorted(plant.battery_serials):
        b = plant.battery_values(index)
        batteries.append((str(b["serial_number"] or f"battery_{index + 1}"), b))
    doc = document().fill(v, _figures(plant, v, polled, timed or {}), polled, batteries)
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
