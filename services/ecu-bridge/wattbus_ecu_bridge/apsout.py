"""aps2mqtt's MQTT output, for users who replace it: its topics, its JSON values, its Home Assistant
discovery configs (`MQTT_DISCOVERY_ENABLED`), all derived from the decoded ECU answers.

aps2mqtt 2.x publishes one JSON document per ECU (`aps/<ECU_ID>`) and per inverter
(`aps/<ECU_ID>/<UID>`) plus `aps/status`; the per-value topics (`aps/<ECU_ID>/power`,
`.../<UID>/<n>/power`) are the ones its README lists from earlier releases, kept for their users.
"""

from __future__ import annotations

import json
from statistics import fmean
from typing import Any

from wattbus.apsystems import EcuInfo

from .decode import InverterData, RealtimeData, SignalData, inverter_types


def _num(value: float | None) -> float | int | None:
    """A whole number as an int (aps2mqtt's values are ints where the ECU sends integers)."""
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def base_topic(prefix: str, ecu_id: str) -> str:
    return f"{prefix.strip().rstrip('/') + '/' if prefix.strip() else ''}aps/{ecu_id}"


def status_topic(prefix: str) -> str:
    return f"{prefix.strip().rstrip('/') + '/' if prefix.strip() else ''}aps/status"


def channel_voltages(inv: InverterData) -> list[float]:
    """aps2mqtt's per-inverter `voltage` list: what the ECU sends per channel of a YC600/DS3, the
    three phase voltages of a YC1000/QT2, the one AC voltage of a QS1. It calls them panel voltages."""
    return [p.voltage_v for p in inv.panels if p.voltage_v is not None] or list(inv.ac_voltages_v)


def inverter_doc(inv: InverterData, signal_pct: int | None) -> dict[str, Any]:
    """aps2mqtt's document for one inverter, plus wattbus's own keys (uid, model, channel_qty, panels)."""
    doc: dict[str, Any] = {"online": inv.online, "uid": inv.uid, "model": inv.model, "channel_qty": len(inv.panels)}
    if not inv.online:
        return doc
    volts = channel_voltages(inv)
    # aps2mqtt reports 0 for an inverter missing from the signal answer.
    doc.update(signal=signal_pct if signal_pct is not None else 0, temperature=_num(inv.temperature_c),
               frequency=inv.frequency_hz, power=_num(inv.power_w), voltage=_num(fmean(volts)) if volts else None)
    for p in inv.panels:
        doc[f"panel_{p.index}_power"] = _num(p.power_w)
    for index, volt in enumerate(volts, start=1):
        doc[f"panel_{index}_voltage"] = _num(volt)
    doc["panels"] = {str(p.index): _panel(doc, p.index) for p in inv.panels}
    return doc


def _panel(doc: dict[str, Any], index: int) -> dict[str, Any]:
    return {"power": doc[f"panel_{index}_power"], "voltage": doc.get(f"panel_{index}_voltage")}


def ecu_doc(info: EcuInfo, rt: RealtimeData) -> dict[str, Any]:
    return {"current_power": _num(info.power_w), "today_energy": round(info.energy_today_wh / 1000, 2),
            "lifetime_energy": round(info.energy_total_wh / 1000, 1), "ecu_id": info.ecu_id,
            "qty_of_inverters": info.inverters_total, "qty_of_online_inverters": info.inverters_online,
            "timestamp": rt.timestamp.strftime("%Y-%m-%d %H:%M:%S") if rt.timestamp else None,
            "firmware": info.firmware}


def value_topics(prefix: str, info: EcuInfo, rt: RealtimeData, signal: SignalData) -> dict[str, str]:
    """Every aps2mqtt topic and its text value."""
    base = base_topic(prefix, info.ecu_id)
    ecu = ecu_doc(info, rt)
    out = {base: json.dumps(ecu), f"{base}/power": str(ecu["current_power"]),
           f"{base}/energy/today": str(ecu["today_energy"]), f"{base}/energy/lifetime": str(ecu["lifetime_energy"])}
    for inv in rt.inverters:
        doc = inverter_doc(inv, signal.strength_pct.get(inv.uid))
        ib = f"{base}/{inv.uid}"
        out[ib] = json.dumps(doc)
        out[f"{ib}/online"] = str(inv.online)
        if not inv.online:
            continue
        for key in ("signal", "temperature", "frequency", "power", "voltage"):
            out[f"{ib}/{key}"] = str(doc[key])
        for index, panel in doc["panels"].items():
            # aps2mqtt's discovery points its panel entities here (value_json.power / .voltage).
            out[f"{ib}/{index}"] = json.dumps({k: v for k, v in panel.items() if v is not None})
            for key, value in panel.items():
                if value is not None:
                    out[f"{ib}/{index}/{key}"] = str(value)
    return out


# aps2mqtt's Home Assistant entities: (component, object id, JSON key, name, device class, unit, icon).
Entity = tuple[str, str, str, str, str | None, str | None, str]
_ECU_ENTITIES: tuple[Entity, ...] = (
    ("sensor", "power", "current_power", "ECU Power", "power", "W", "mdi:solar-power"),
    ("sensor", "today_energy", "today_energy", "ECU Today Energy", "energy", "kWh", "mdi:solar-power"),
    ("sensor", "lifetime_energy", "lifetime_energy", "ECU Lifetime Energy", "energy", "kWh", "mdi:solar-power"),
)
_INVERTER_ENTITIES: tuple[Entity, ...] = (
    ("binary_sensor", "online", "online", "Inverter Online", None, None, "mdi:power-plug"),
    ("sensor", "signal", "signal", "Inverter Signal", "signal_strength", "dBm", "mdi:wifi"),
    ("sensor", "temperature", "temperature", "Inverter Temperature", "temperature", "°C", "mdi:thermometer"),
    ("sensor", "frequency", "frequency", "Inverter Frequency", "frequency", "Hz", "mdi:sine-wave"),
    ("sensor", "power", "power", "Inverter Power", "power", "W", "mdi:solar-power"),
    ("sensor", "voltage", "voltage", "Inverter Voltage", "voltage", "V", "mdi:lightning-bolt"),
)


def discovery(prefix: str, discovery_prefix: str, info: EcuInfo, rt: RealtimeData) -> dict[str, str]:
    """aps2mqtt's discovery configs (topic -> JSON), the same unique ids, names and state topics, so
    Home Assistant keeps its aps2mqtt entities (and their history) when the bridge takes over."""
    status = status_topic(prefix)
    base = base_topic(prefix, info.ecu_id)
    out: dict[str, str] = {}

    def add(spec: Entity, ident: str, device: dict[str, Any], state_topic: str) -> None:
        component, obj, key, name, device_class, unit, icon = spec
        payload: dict[str, Any] = {
            "name": name, "unique_id": f"aps_{ident}_{obj}", "state_topic": state_topic,
            "value_template": f"{{{{ value_json.{key} }}}}", "device": device, "availability_topic": status,
            "payload_available": "online", "payload_not_available": "offline"}
        if component == "binary_sensor":
            payload |= {"payload_on": "true", "payload_off": "false"}
        payload |= {k: v for k, v in (("device_class", device_class), ("unit_of_measurement", unit),
                                      ("icon", icon)) if v}
        out[f"{discovery_prefix.strip().rstrip('/')}/{component}/aps_{ident}_{obj}/config"] = json.dumps(payload)

    ecu_device = _device(info.ecu_id, "ECU")
    for spec in _ECU_ENTITIES:
        add(spec, info.ecu_id, ecu_device, base)
    types = inverter_types()
    for inv in rt.inverters:
        device = _device(inv.uid, "Inverter", via=info.ecu_id)
        ib = f"{base}/{inv.uid}"
        for spec in _INVERTER_ENTITIES:
            add(spec, inv.uid, device, ib)
        # Counted from the type, not the values: an inverter offline at the first poll has its entities too.
        kind = types[inv.type_code]
        for n in range(1, len(kind.panel_power) + 1):
            add(("sensor", f"panel_{n}_power", "power", f"Panel {n} Power", "power", "W", "mdi:solar-panel"),
                inv.uid, device, f"{ib}/{n}")
        for n in range(1, len(kind.ac_voltage) + 1):
            add(("sensor", f"panel_{n}_voltage", "voltage", f"Panel {n} Voltage", "voltage", "V",
                 "mdi:lightning-bolt"), inv.uid, device, f"{ib}/{n}")
    return out


def _device(ident: str, kind: str, via: str | None = None) -> dict[str, Any]:
    device: dict[str, Any] = {"identifiers": [ident], "name": f"APS {kind} {ident}", "manufacturer": "APsystems"}
    if via:
        device["via_device"] = via
    return device
