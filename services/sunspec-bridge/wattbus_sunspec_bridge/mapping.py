"""Decoded SunSpec models -> the contract's readings (inverter, strings, meter, battery)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from wattbus import messages as m
from wattbus import sunspec, topics

from .decode import DecodedModel

# The models mapped onto readings (what kind a device is: wattbus.sunspec.kind_of).
INVERTER_PHASES = {101: 1, 102: 2, 103: 3, 111: 1, 112: 2, 113: 3}  # model -> phases
METER_PHASES = {201: 1, 202: 2, 203: 3, 204: 3, 211: 1, 212: 2, 213: 3, 214: 3}
BATTERY_READ = (124, 802)
_PHASE = ("A", "B", "C")


def _num(values: dict[str, Any], key: str) -> float | None:
    value = values.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _pf(value: float | None) -> float | None:
    """SunSpec PF points are percent (-100..100, the sign says leading/lagging) in every model,
    integer and float; the contract's power factor is the magnitude |P|/S, 0..1."""
    if value is None:
        return None
    return round(abs(value) / 100, 4)


def device_kind(models: list[int]) -> m.DeviceKind:
    """SunSpec's kind of the device; one that names none of its models' kinds is taken for an inverter."""
    return sunspec.kind_of(models) or "inverter"


def device_id(common: dict[str, Any], fallback: str) -> str:
    """Stable id from manufacturer + serial (never a display name); fallback = host + unit."""
    serial = common.get("SN")
    return topics.slug(str(common.get("Mn") or "sunspec"), str(serial) if serial else fallback)


@dataclass
class Readings:
    main: m.ReadingBase | None = None
    strings: list[m.StringReading] = field(default_factory=list)
    battery: m.BatteryReading | None = None


def _phases(values: dict[str, Any], count: int, meter: bool) -> list[m.PhaseValues]:
    phases = []
    for n in range(count):
        tag = _PHASE[n]
        volts = _num(values, f"PhVph{tag}")
        amps = _num(values, f"Aph{tag}")
        watts = _num(values, f"Wph{tag}") if meter else None
        pf = _pf(_num(values, f"PFph{tag}")) if meter else None
        if any(v is not None for v in (volts, amps, watts, pf)):
            phases.append(m.PhaseValues(phase=n + 1, voltage_v=volts, current_a=amps, power_w=watts, power_factor=pf))
    return phases


def inverter_reading(dev_id: str, ts: datetime, model: DecodedModel) -> m.InverterReading:
    v = model.values
    state = v.get("St")
    events = v.get("Evt1") or []
    extra: dict[str, m.ExtraValue] = {"events": ",".join(e.lower() for e in events)} if events else {}
    return m.InverterReading(
        device_id=dev_id, timestamp=ts, power_w=_num(v, "W"), dc_power_w=_num(v, "DCW"),
        energy_total_wh=_num(v, "WH"), frequency_hz=_num(v, "Hz"), temperature_c=_num(v, "TmpCab"),
        state=state.lower() if isinstance(state, str) else None,
        phases=_phases(v, INVERTER_PHASES[model.model_id], False),
        extra=extra,
    )


def string_readings(inverter_id: str, ts: datetime, model: DecodedModel) -> list[m.StringReading]:
    out = []
    for n, module in enumerate(model.values.get("module") or [], start=1):
        label = module.get("IDStr")
        out.append(m.StringReading(
            device_id=f"{inverter_id}-mppt{n}", timestamp=ts, inverter_id=inverter_id, index=n,
            power_w=_num(module, "DCW"), voltage_v=_num(module, "DCV"), current_a=_num(module, "DCA"),
            energy_wh=_num(module, "DCWH"), extra={"label": label} if isinstance(label, str) else {},
        ))
    return out


def meter_reading(dev_id: str, ts: datetime, model: DecodedModel) -> m.MeterReading:
    v = model.values
    return m.MeterReading(
        device_id=dev_id, timestamp=ts, power_w=_num(v, "W"), energy_import_wh=_num(v, "TotWhImp"),
        energy_export_wh=_num(v, "TotWhExp"), frequency_hz=_num(v, "Hz"),
        phases=_phases(v, METER_PHASES[model.model_id], True),
    )


def battery_reading(dev_id: str, ts: datetime, models: dict[int, DecodedModel]) -> m.BatteryReading:
    storage = models[124].values if 124 in models else {}
    battery = models[802].values if 802 in models else {}
    soc = _num(battery, "SoC")
    if soc is None:
        soc = _num(storage, "ChaState")
    soh = _num(battery, "SoH")
    voltage = _num(battery, "V")
    return m.BatteryReading(
        device_id=dev_id, timestamp=ts, power_w=_num(battery, "W"),
        soc_pct=soc if soc is not None and 0 <= soc <= 100 else None,
        soh_pct=soh if soh is not None and 0 <= soh <= 100 else None,
        voltage_v=voltage if voltage is not None else _num(storage, "InBatV"), current_a=_num(battery, "A"),
        capacity_wh=_num(battery, "WHRtg"),
        extra={"state": str(battery.get("ChaSt") or storage.get("ChaSt") or "").lower()}
        if (battery.get("ChaSt") or storage.get("ChaSt")) else {},
    )


def readings(dev_id: str, ts: datetime, decoded: list[DecodedModel]) -> Readings:
    by_id = {model.model_id: model for model in decoded}
    out = Readings()
    inverter = next((mo for mo in decoded if mo.model_id in INVERTER_PHASES), None)
    meter = next((mo for mo in decoded if mo.model_id in METER_PHASES), None)
    if inverter is not None:
        out.main = inverter_reading(dev_id, ts, inverter)
        if 123 in by_id and out.main is not None:
            limit = by_id[123].values
            extra = dict(out.main.extra)
            extra["connected"] = limit.get("Conn") == "CONNECT"
            if limit.get("WMaxLim_Ena") == "ENABLED" and isinstance(limit.get("WMaxLimPct"), (int, float)):
                extra["limit_pct"] = limit["WMaxLimPct"]
            out.main = m.InverterReading(**{**_fields(out.main), "extra": extra})
    elif meter is not None:
        out.main = meter_reading(dev_id, ts, meter)
    if 160 in by_id and inverter is not None:
        out.strings = string_readings(dev_id, ts, by_id[160])
    if any(mid in by_id for mid in BATTERY_READ):
        battery_id = dev_id if out.main is None else f"{dev_id}-battery"
        out.battery = battery_reading(battery_id, ts, by_id)
    return out


def _fields(struct: Any) -> dict[str, Any]:
    return {name: getattr(struct, name) for name in struct.__struct_fields__}
