"""go-e status documents (API v1 and v2) to a ChargerReading, driven by data/goe.toml."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, Literal, cast

from wattbus import messages as m
from wattbus.goe import Api

from .transport import ResponseRejected, number


@dataclass(frozen=True, slots=True)
class NrgSlot:
    index: int
    phase: int  # 0 = total
    quantity: str
    scale: dict[str, float]


@dataclass(frozen=True, slots=True)
class GoeTable:
    car: dict[int, m.ChargerState]
    force: dict[int, str]
    phase_mode: dict[int, int]
    errors: dict[int, str]
    scalars: dict[str, dict[str, tuple[str, float]]]  # api -> name -> (key, scale)
    nrg: tuple[NrgSlot, ...]


_STATES = {"idle", "waiting", "charging", "complete", "error", "unknown"}


def parse_table(data: dict[str, Any]) -> GoeTable:
    """Validate the data file; a broken file fails loudly at start-up, not mid-poll."""
    car = {int(k): v for k, v in data["car"].items()}
    if bad := [v for v in car.values() if v not in _STATES]:
        raise ValueError(f"goe.toml [car]: unknown states {bad}")
    scalars = {api: {name: (str(spec["key"]), float(spec["scale"])) for name, spec in table.items()}
               for api, table in data["scalars"].items()}
    nrg = tuple(NrgSlot(int(s["index"]), int(s["phase"]), str(s["quantity"]), {"v1": float(s["v1"]),
                                                                               "v2": float(s["v2"])})
                for s in data["nrg"])
    if bad_q := [s.quantity for s in nrg if s.quantity not in ("voltage_v", "current_a", "power_w", "power_factor")]:
        raise ValueError(f"goe.toml [[nrg]]: unknown quantities {bad_q}")
    return GoeTable(car=cast(dict[int, m.ChargerState], car), force={int(k): v for k, v in data["force"].items()},
                    phase_mode={int(k): int(v) for k, v in data["phase_mode"].items()},
                    errors={int(k): v for k, v in data["errors"].items()}, scalars=scalars, nrg=nrg)


@cache
def goe_table() -> GoeTable:
    text = resources.files(__package__).joinpath("data/goe.toml").read_text()
    return parse_table(tomllib.loads(text))


def _int(doc: dict[str, Any], key: str, where: str) -> int | None:
    value = number(doc, key, where)
    return None if value is None else int(value)


def _flag(doc: dict[str, Any], key: str, where: str) -> bool | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if value in ("0", "1", 0, 1):
        return value in ("1", 1)
    raise ResponseRejected(f"{where}: {key} = {value!r} is not a flag")


def _phases_from_currents(phases: list[m.PhaseValues]) -> Literal[1, 3] | None:
    live = sum(1 for p in phases if p.current_a is not None and p.current_a > 0.5)
    return 1 if live == 1 else 3 if live == 3 else None


def decode_status(doc: dict[str, Any], api: Api, device_id: str, timestamp: datetime, where: str,
                  table: GoeTable | None = None) -> m.ChargerReading:
    """One go-e status (full or filtered) to a ChargerReading; missing keys stay None."""
    table = table or goe_table()
    scal = table.scalars[api]

    def scalar(name: str) -> float | None:
        key, scale = scal[name]
        return number(doc, key, where, scale)

    car = _int(doc, "car", where)
    state: m.ChargerState = table.car.get(car, "unknown") if car is not None else "unknown"
    err = _int(doc, "err", where)
    nrg_raw = doc.get("nrg")
    values: dict[tuple[int, str], float | None] = {}
    if nrg_raw is not None:
        if not isinstance(nrg_raw, list):
            raise ResponseRejected(f"{where}: nrg = {nrg_raw!r} is not a list")
        padded = dict(enumerate(nrg_raw))  # older firmware sends fewer than 16 values
        for slot in table.nrg:
            values[(slot.phase, slot.quantity)] = number(padded, slot.index, f"{where} nrg", slot.scale[api])
    phases = [m.PhaseValues(phase=p, voltage_v=values.get((p, "voltage_v")), current_a=values.get((p, "current_a")),
                            power_w=values.get((p, "power_w")), power_factor=values.get((p, "power_factor")))
              for p in (1, 2, 3)] if values else []
    phases_active: Literal[1, 3] | None = None
    forced = None
    if api == "v2":
        frc = _int(doc, "frc", where)
        forced = cast(Literal["neutral", "off", "on"] | None, table.force.get(frc) if frc is not None else None)
        psm = _int(doc, "psm", where)
        mode = table.phase_mode.get(psm) if psm is not None else None
        phases_active = cast(Literal[1, 3] | None, mode) if mode in (1, 3) else None
    else:
        pha = _int(doc, "pha", where)
        if pha is not None:  # v1: bits 3..5 are the phases after the contactor
            after = bin((pha >> 3) & 0b111).count("1")
            phases_active = 1 if after == 1 else 3 if after == 3 else None
    if phases_active is None and state == "charging":
        phases_active = _phases_from_currents(phases)
    extra: dict[str, m.ExtraValue] = {"api": api}
    for name in ("max_current", "temperature"):
        if name in scal:
            extra[f"{name}_{'a' if name == 'max_current' else 'c'}"] = scalar(name)
    if api == "v2" and "psm" in doc:
        extra["phase_mode"] = _int(doc, "psm", where)
    return m.ChargerReading(
        device_id=device_id, timestamp=timestamp, state="error" if err else state,
        power_w=values.get((0, "power_w")), energy_total_wh=scalar("energy_total"),
        session_energy_wh=scalar("session_energy"), set_current_a=scalar("amp"), phases_active=phases_active,
        enabled=_flag(doc, "alw", where), forced=forced, phases=phases,
        error=(table.errors.get(err, f"error code {err}") if err else None), extra=extra)
