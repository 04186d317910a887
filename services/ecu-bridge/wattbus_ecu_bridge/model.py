"""From decoded ECU answers to contract readings (SI at the boundary); aps2mqtt's shapes are in apsout."""

from __future__ import annotations

from datetime import datetime

from wattbus import messages as m
from wattbus import topics
from wattbus.apsystems import EcuInfo

from .decode import InverterData


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
