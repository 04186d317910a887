"""From decoded ECU answers to contract readings and aps2mqtt-shaped values (SI at the boundary)."""

from __future__ import annotations

import json
from datetime import datetime
from statistics import fmean
from typing import Any

from wattbus import messages as m
from wattbus import topics

from .decode import EcuInfo, InverterData, RealtimeData, SignalData


def ecu_model(ecu_id: str) -> tuple[str, bool]:
    """(model, can restart remotely) from the ECU id prefix, as APsystems numbers its units."""
    if ecu_id.startswith("215"):
        return "ECU-C", True
    if ecu_id.startswith("2162"):
        return "ECU-R (SunSpec)", True
    if ecu_id.startswith("2160"):
        return "ECU-R", False
    if ecu_id.startswith("2163"):
        return "ECU-B", False
    return "ECU", False


def ecu_device_id(ecu_id: str) -> str:
    return topics.slug("apsystems-ecu", ecu_id)


def inverter_device_id(uid: str) -> str:
    return topics.slug("apsystems", uid)


def panel_device_id(uid: str, index: int) -> str:
    return topics.slug("apsystems", uid, "panel", index)


def gateway_reading(device_id: str, info: EcuInfo, stamp: datetime) -> m.GatewayReading:
    return m.GatewayReading(device_id=device_id, timestamp=stamp, power_w=info.power_w,
                            energy_today_wh=info.energy_today_wh, energy_total_wh=info.energy_total_wh,
                            devices_total=info.inverters_total, devices_online=info.inverters_online,
                            extra={"firmware": info.firmware, "layout": info.layout})


def inverter_reading(device_id: str, inv: InverterData, signal_pct: int | None, stamp: datetime) -> m.InverterReading:
    if len(inv.ac_voltages_v) == 3:
        phases = [m.PhaseValues(phase=i + 1, voltage_v=v) for i, v in enumerate(inv.ac_voltages_v)]
    else:
        phases = [m.PhaseValues(phase=1, voltage_v=v) for v in inv.ac_voltages_v[:1]]
    extra: dict[str, m.ExtraValue] = {"type_code": inv.type_code, "model": inv.model}
    if signal_pct is not None:
        extra["signal_pct"] = signal_pct
    return m.InverterReading(device_id=device_id, timestamp=stamp, power_w=inv.power_w,
                             dc_power_w=inv.power_w, frequency_hz=inv.frequency_hz,
                             temperature_c=inv.temperature_c, online=inv.online,
                             state="mppt" if inv.online else "off", phases=phases, extra=extra)


def string_readings(inv: InverterData, stamp: datetime) -> list[m.StringReading]:
    parent = inverter_device_id(inv.uid)
    return [m.StringReading(device_id=panel_device_id(inv.uid, p.index), timestamp=stamp, inverter_id=parent,
                            index=p.index, power_w=p.power_w, voltage_v=p.voltage_v) for p in inv.panels]


# --------------------------------------------------------------------------- aps2mqtt compatibility

def _num(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else round(value, 3)


def aps_inverter_doc(inv: InverterData, signal_pct: int | None) -> dict[str, Any]:
    """aps2mqtt's per-inverter values (its data keys: uid, online, signal, temperature, ...)."""
    doc: dict[str, Any] = {"uid": inv.uid, "online": inv.online, "model": inv.model, "channel_qty": len(inv.panels)}
    if inv.online:
        doc.update(signal=signal_pct, temperature=_num(inv.temperature_c), frequency=inv.frequency_hz,
                   power=_num(inv.power_w), voltage=_num(fmean(inv.ac_voltages_v)) if inv.ac_voltages_v else None,
                   panels={str(p.index): {"power": _num(p.power_w), "voltage": _num(p.voltage_v)}
                           for p in inv.panels})
    return doc


def aps_ecu_doc(info: EcuInfo, rt: RealtimeData) -> dict[str, Any]:
    return {"ecu_id": info.ecu_id, "current_power": _num(info.power_w),
            "today_energy": round(info.energy_today_wh / 1000, 2),
            "lifetime_energy": round(info.energy_total_wh / 1000, 1),
            "qty_of_inverters": info.inverters_total, "qty_of_online_inverters": info.inverters_online,
            "timestamp": rt.timestamp.strftime("%Y-%m-%d %H:%M:%S") if rt.timestamp else None,
            "firmware": info.firmware}


def aps_topics(prefix: str, info: EcuInfo, rt: RealtimeData, signal: SignalData) -> dict[str, str]:
    """Every aps2mqtt topic and its text value, plus the JSON documents on aps/<ECU_ID>[/<UID>]."""
    base = f"{prefix.strip().rstrip('/') + '/' if prefix.strip() else ''}aps/{info.ecu_id}"
    ecu = aps_ecu_doc(info, rt)
    out = {base: json.dumps(ecu), f"{base}/power": str(ecu["current_power"]),
           f"{base}/energy/today": str(ecu["today_energy"]), f"{base}/energy/lifetime": str(ecu["lifetime_energy"])}
    for inv in rt.inverters:
        doc = aps_inverter_doc(inv, signal.strength_pct.get(inv.uid))
        ib = f"{base}/{inv.uid}"
        out[ib] = json.dumps(doc)
        out[f"{ib}/online"] = str(inv.online)
        if inv.online:
            for key in ("signal", "temperature", "frequency", "power", "voltage"):
                out[f"{ib}/{key}"] = str(doc[key])
            for p in inv.panels:
                out[f"{ib}/{p.index}/power"] = str(_num(p.power_w))
                if p.voltage_v is not None:
                    out[f"{ib}/{p.index}/voltage"] = str(_num(p.voltage_v))
    return out


def aps_status_topic(prefix: str) -> str:
    return f"{prefix.strip().rstrip('/') + '/' if prefix.strip() else ''}aps/status"
