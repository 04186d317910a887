"""Shelly status documents to readings: Gen1 `/status` and Gen2+ `Shelly.GetStatus` (the identity
from `/shelly` and the model table are wattbus.shelly, shared with discovery).

A device becomes at most one relay device (all its outputs, by `channel`) plus its energy
meters: a 3-phase meter (3EM, Pro 3EM) is one MeterReading, so it can serve as the grid meter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wattbus import messages as m
from wattbus.shelly import ShellyInfo

from .transport import ResponseRejected, number


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ResponseRejected(f"{where}: expected an object, got {value!r}")
    return value


def _bool(doc: dict[str, Any], key: str, where: str) -> bool:
    value = doc.get(key)
    if not isinstance(value, bool):
        raise ResponseRejected(f"{where}: {key} = {value!r} is not true/false")
    return value


def _sum(values: list[float | None]) -> float | None:
    return None if not values or any(v is None for v in values) else round(sum(v for v in values if v is not None), 3)


def decode_gen1(doc: dict[str, Any], info: ShellyInfo, ts: datetime, where: str) -> list[m.ReadingBase]:
    model = info.model
    metered = model.metered if model else True
    relays = doc.get("relays") or []
    meters = doc.get("meters") or []
    if not isinstance(relays, list) or not isinstance(meters, list):
        raise ResponseRejected(f"{where}: relays/meters are not lists")
    temp = number(doc, "temperature", where)
    if temp is None and isinstance(doc.get("tmp"), dict):
        temp = number(doc["tmp"], "tC", f"{where} tmp")
    out: list[m.ReadingBase] = []
    for ch, raw in enumerate(relays):
        relay = _obj(raw, f"{where} relays[{ch}]")
        power = energy = None
        if metered and ch < len(meters):
            meter = _obj(meters[ch], f"{where} meters[{ch}]")
            if meter.get("is_valid", True) is True:
                power = number(meter, "power", f"{where} meters[{ch}]")
                energy = number(meter, "total", f"{where} meters[{ch}]", 1 / 60)  # watt-minutes
        out.append(m.RelayReading(device_id=info.relay_id(), timestamp=ts, channel=ch,
                                  on=_bool(relay, "ison", f"{where} relays[{ch}]"), power_w=power,
                                  energy_wh=None if energy is None else round(energy, 3), temperature_c=temp))
    emeters = doc.get("emeters") or []
    if not isinstance(emeters, list):
        raise ResponseRejected(f"{where}: emeters is not a list")
    phases: list[m.PhaseValues] = []
    imports: list[float | None] = []
    exports: list[float | None] = []
    for n, raw in enumerate(emeters):
        em, at = _obj(raw, f"{where} emeters[{n}]"), f"{where} emeters[{n}]"
        valid = em.get("is_valid", True) is True
        phases.append(m.PhaseValues(phase=min(n + 1, 3), voltage_v=number(em, "voltage", at),
                                    current_a=number(em, "current", at) if valid else None,
                                    power_w=number(em, "power", at) if valid else None,
                                    power_factor=number(em, "pf", at) if valid else None))
        imports.append(number(em, "total", at))
        exports.append(number(em, "total_returned", at))
    if len(emeters) == 3:
        out.append(m.MeterReading(device_id=info.meter_id(), timestamp=ts, phases=phases,
                                  power_w=_sum([p.power_w for p in phases]), energy_import_wh=_sum(imports),
                                  energy_export_wh=_sum(exports)))
    else:  # Shelly EM: independent clamps, one single-phase meter each
        for n, phase in enumerate(phases):
            out.append(m.MeterReading(device_id=info.meter_id(n), timestamp=ts, power_w=phase.power_w,
                                      energy_import_wh=imports[n], energy_export_wh=exports[n],
                                      phases=[m.PhaseValues(phase=1, voltage_v=phase.voltage_v,
                                                            current_a=phase.current_a, power_w=phase.power_w,
                                                            power_factor=phase.power_factor)]))
    return out


def decode_switch(sw: dict[str, Any], info: ShellyInfo, ts: datetime, where: str) -> m.RelayReading:
    ch = number(sw, "id", where)
    energy = sw.get("aenergy")
    temp = sw.get("temperature")
    return m.RelayReading(
        device_id=info.relay_id(), timestamp=ts, channel=int(ch or 0), on=_bool(sw, "output", where),
        power_w=number(sw, "apower", where), voltage_v=number(sw, "voltage", where),
        energy_wh=number(energy, "total", f"{where} aenergy") if isinstance(energy, dict) else None,
        temperature_c=number(temp, "tC", f"{where} temperature") if isinstance(temp, dict) else None)


def decode_gen2(doc: dict[str, Any], info: ShellyInfo, ts: datetime, where: str) -> list[m.ReadingBase]:
    out: list[m.ReadingBase] = []
    for key in sorted(k for k in doc if k.startswith("switch:")):
        out.append(decode_switch(_obj(doc[key], f"{where} {key}"), info, ts, f"{where} {key}"))
    for key in sorted(k for k in doc if k.startswith("em:")):
        em, at = _obj(doc[key], f"{where} {key}"), f"{where} {key}"
        data = doc.get("emdata:" + key[3:])
        data = data if isinstance(data, dict) else {}
        phases = [m.PhaseValues(phase=n, voltage_v=number(em, f"{x}_voltage", at),
                                current_a=number(em, f"{x}_current", at), power_w=number(em, f"{x}_act_power", at),
                                power_factor=number(em, f"{x}_pf", at)) for n, x in ((1, "a"), (2, "b"), (3, "c"))]
        index = None if key == "em:0" else int(key[3:])
        freq = number(em, "a_freq", at)
        out.append(m.MeterReading(device_id=info.meter_id(index), timestamp=ts, phases=phases,
                                  power_w=number(em, "total_act_power", at),
                                  energy_import_wh=number(data, "total_act", f"{at} emdata"),
                                  energy_export_wh=number(data, "total_act_ret", f"{at} emdata"), frequency_hz=freq))
    for key in sorted(k for k in doc if k.startswith("em1:")):
        em, at = _obj(doc[key], f"{where} {key}"), f"{where} {key}"
        data = doc.get("em1data:" + key[4:])
        data = data if isinstance(data, dict) else {}
        power = number(em, "act_power", at)
        out.append(m.MeterReading(
            device_id=info.meter_id(int(key[4:])), timestamp=ts, power_w=power, frequency_hz=number(em, "freq", at),
            energy_import_wh=number(data, "total_act_energy", f"{at} em1data"),
            energy_export_wh=number(data, "total_act_ret_energy", f"{at} em1data"),
            phases=[m.PhaseValues(phase=1, voltage_v=number(em, "voltage", at), current_a=number(em, "current", at),
                                  power_w=power, power_factor=number(em, "pf", at))]))
    return out
