"""go-e Charger HTTP API v2 (`/api/status`, `/api/set`): every key go-e documents, over GoeFirmware.

The keys the physics decides (car, nrg, alw, tpa, times, ...) are computed on each request; the rest
are stored settings and fixed status values from data/goe_v2_keys.json. `/api/set` takes JSON values
and checks each against the key's type and the firmware's limits, as the real charger does.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .goe import GoeFirmware

MIN_CURRENT_A = 6  # IEC 61851: no car charges below 6 A

DATA = json.loads((Path(__file__).parent / "data" / "goe_v2_keys.json").read_text())
TPA_WINDOW_S = 30.0  # `tpa` is the 30-second total power average
# Enumerations and bounded settings: (lowest, highest) whole value the firmware accepts.
RANGES: dict[str, tuple[int, int]] = {
    "frc": (0, 2), "psm": (0, 2), "ust": (0, 2), "tds": (0, 2), "acs": (0, 1), "bac": (0, 3), "bar": (0, 3),
    "sdp": (0, 3), "lmo": (3, 5), "lbr": (0, 255), "loty": (0, 1), "ufm": (0, 1), "awc": (0, 1),
    "tof": (-720, 840), "att": (0, 86399), "lop": (0, 65535), "msp": (1, 65535), "wbw": (1, 2),
}
SIGNED = {"tof", "pgt", "po", "zfo"}  # settings that may be negative (watts or minutes)
COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
MAX_TEXT = 64
# Keys computed from the charger's state on each request (read-only to /api/set, like DATA["status"]).
LIVE = frozenset({
    "acu", "alw", "amt", "car", "cbl", "cdi", "cll", "cus", "err", "eto", "frc", "fsp", "fwv", "host", "lccfc", "lccfi",
    "lcctc", "lck", "lmsc", "loc", "lto", "mmp", "modelStatus", "nrg", "pha", "pnp", "pwm", "rbt", "rfb", "sse", "tab",
    "tpa", "trx", "var", "wcb", "wh"})


class SetRefused(ValueError):
    """The text the firmware answers for one refused /api/set key."""


def eu_summer_time(utc: datetime) -> bool:
    """EU rule: from the last Sunday of March to the last Sunday of October, 01:00 UTC."""
    def last_sunday(month: int) -> datetime:
        day = datetime(utc.year, month, 31, 1, tzinfo=UTC)
        return day - timedelta(days=(day.weekday() + 1) % 7)
    return last_sunday(3) <= utc < last_sunday(10)


def go_e_time(moment: datetime) -> str:
    """go-e's timestamp text: ISO 8601 with milliseconds, no zone."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


class GoeV2:
    """The v2 face of one GoeFirmware: its stored settings and the bookkeeping the status keys need."""

    def __init__(self, fw: GoeFirmware) -> None:
        self.fw = fw
        self.conf: dict[str, Any] = json.loads(json.dumps(DATA["config"]))  # a private deep copy
        self.conf["fna"] = f"go-e-Charger {fw.serial}"
        self.conf["mtp"] = f"go-eCharger/{fw.serial}"
        self.conf["clp"] = [a for a in (6, 10, 16, 20, 32) if a <= fw.max_current_a][:5]
        self.clock_offset_s = 0.0  # set by `utc`
        self.samples: deque[tuple[float, float]] = deque()
        self.max_power_w = 0.0
        self.car_seen: int | None = None
        self.model_status: int | None = None
        self.marks: dict[str, int | None] = {"lccfi": None, "lccfc": None, "lcctc": None, "lmsc": None}

    # ---- derived values
    def rbt_ms(self) -> int:
        return int(time.monotonic() * 1000)

    def utc_now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset_s)

    def local_offset_min(self, utc: datetime) -> int:
        dst = 60 if self.conf["tds"] == 1 and eu_summer_time(utc) else 0
        return int(self.conf["tof"]) + dst

    def energy_limit_reached(self) -> bool:
        limit = self.conf["dwo"]
        return limit is not None and self.fw.model.session_energy_wh() >= limit

    def status_code(self) -> int:
        """modelStatus: why the charger allows charging or not (go-e's enumeration)."""
        if self.fw.frc == 1:
            return 4  # NotChargingBecauseForceStateOff
        if self.energy_limit_reached():
            return 6  # NotChargingBecauseEnergyLimit
        return 3 if self.fw.frc == 2 else 15  # ForceStateOn / FallbackDefault

    def tpa(self, power_w: float, now_s: float) -> float:
        self.samples.append((now_s, power_w))
        while self.samples and self.samples[0][0] < now_s - TPA_WINDOW_S:
            self.samples.popleft()
        return round(sum(p for _t, p in self.samples) / len(self.samples), 1)

    def track(self, car: int, model_status: int, rbt: int) -> None:
        """Millisecond stamps (since boot) of the last car-state and model-status changes."""
        if self.car_seen is not None and car != self.car_seen:
            if self.car_seen == 1:
                self.marks["lccfi"] = rbt
            if self.car_seen == 2:
                self.marks["lccfc"] = rbt
            if car == 2:
                self.marks["lcctc"] = rbt
        elif self.car_seen is None and car == 2:
            self.marks["lcctc"] = rbt
        if model_status != self.model_status:
            self.marks["lmsc"] = rbt
        self.car_seen, self.model_status = car, model_status

    def status(self, keys: list[str] | None) -> dict[str, Any]:
        fw, model = self.fw, self.fw.model
        now_s = time.monotonic()
        model.step(now_s)
        fw.enforce_energy_limit()
        currents = model.phase_currents_a()
        power = model.power_w()
        car = fw.car()
        code = self.status_code()
        rbt = self.rbt_ms()
        self.track(car, code, rbt)
        self.max_power_w = max(self.max_power_w, power)
        utc = self.utc_now()
        offset = self.local_offset_min(utc)
        sign = "+" if offset >= 0 else "-"
        local = go_e_time(utc + timedelta(minutes=offset)) + f" {sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
        live = sum(1 for a in currents if a > 0)
        hardware_a = 16 if fw.variant_kw == 11 else 32
        allowed = fw.allowed() and model.car_connected() and not self.energy_limit_reached()
        charging_since = self.marks["lcctc"]
        doc: dict[str, Any] = {
            **DATA["status"], **self.conf,
            "acu": fw.amp if allowed else None, "alw": allowed, "ama": fw.max_current_a, "amp": fw.amp,
            "amt": hardware_a, "car": car, "cbl": hardware_a, "err": fw.err, "eto": round(model.energy_total_wh()),
            "cdi": {"type": 0, "value": rbt - charging_since} if car == 2 and charging_since is not None else None,
            "cll": {"ama": fw.max_current_a, "cbl": hardware_a, "amt": hardware_a, "tcl": self.conf["tcl"]},
            "cus": 3 if model.car_connected() and self.conf["ust"] != 1 else 1, "frc": fw.frc,
            "fsp": fw.psm == 1, "fwv": fw.firmware_v2, "host": f"go-echarger_{fw.serial}", "lck": self.conf["ust"],
            **self.marks, "loc": local, "lto": offset * 60_000, "mmp": round(self.max_power_w, 1),
            "modelStatus": code, "nrg": fw.nrg(), "psm": fw.psm,
            "pha": [a > 0 for a in currents] + [True, True, True],
            "pnp": live if live else model.phases(), "pwm": {0: 2, 1: 1, 2: 0}[fw.psm], "rbt": rbt,
            "rfb": 1 if live else 0, "sse": fw.serial, "tab": int(utc.timestamp() * 1000) - rbt,
            "tpa": self.tpa(power, now_s), "trx": 0 if model.car_connected() else None, "utc": go_e_time(utc),
            "var": fw.variant_kw, "wcb": fw.mac,
            "wh": round(model.session_energy_wh(), 2),
        }
        return {k: doc[k] for k in keys if k in doc} if keys else doc

    # ---- /api/set
    def set(self, key: str, raw: str) -> None:
        """Apply one key; raises SetRefused with the answer text."""
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SetRefused(f"could not parse json value {raw!r} for {key}") from exc
        fw = self.fw
        match key:
            case "amp":
                fw.amp = self._whole(key, value, MIN_CURRENT_A, fw.max_current_a)
            case "ama":
                hardware_a = 16 if fw.variant_kw == 11 else 32
                fw.max_current_a = self._whole(key, value, 6, hardware_a)
                fw.amp = min(fw.amp, fw.max_current_a)  # the requested current never exceeds the limit
                self.conf["clp"] = [a for a in self.conf["clp"] if a <= fw.max_current_a]
            case "frc" | "psm":
                setattr(fw, key, self._whole(key, value, *RANGES[key]))
            case "mca":
                self.conf["mca"] = self._whole(key, value, 6, fw.max_current_a)
            case "clp":
                if not (isinstance(value, list) and 1 <= len(value) <= 5):
                    raise SetRefused("clp: expected an array of 1 to 5 currents")
                self.conf["clp"] = sorted(self._whole(key, a, 6, fw.max_current_a) for a in value)
            case "dwo":
                if value is not None and not (_number(value) and value > 0):
                    raise SetRefused("dwo: expected null or an energy in Wh above 0")
                self.conf["dwo"] = value
            case "utc":
                self._set_clock(value)
                return
            case _:
                self._set_generic(key, value)
        fw.sets += 1
        fw.apply()

    def _whole(self, key: str, value: Any, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise SetRefused(f"{key}: expected a whole number, got {value!r}")
        if not low <= value <= high:
            raise SetRefused(f"{key}: {value} is out of range ({low}..{high})")
        return int(value)

    def _set_clock(self, value: Any) -> None:
        try:
            wanted = datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
        except ValueError as exc:
            raise SetRefused(f"utc: {value!r} is not a time (YYYY-MM-DDTHH:MM:SS.mmm)") from exc
        self.clock_offset_s = (wanted - datetime.now(UTC)).total_seconds()
        self.fw.sets += 1

    def _set_generic(self, key: str, value: Any) -> None:
        if key not in self.conf:
            raise SetRefused(f"{key}: {'read-only' if key in DATA['status'] or key in LIVE else 'unknown'} key")
        old = self.conf[key]
        if key in RANGES:
            value = self._whole(key, value, *RANGES[key])
        elif old is None:
            if value is not None and not _number(value):
                raise SetRefused(f"{key}: expected null or a number")
        elif isinstance(old, bool):
            if not isinstance(value, bool):
                raise SetRefused(f"{key}: expected true or false")
        elif isinstance(old, int | float):
            if not _number(value) or not math.isfinite(value):
                raise SetRefused(f"{key}: expected a number")
            if value < 0 and key not in SIGNED:
                raise SetRefused(f"{key}: {value} is below 0")
            value = int(value) if isinstance(old, int) and value == int(value) else value
        elif isinstance(old, str):
            if not isinstance(value, str) or len(value) > MAX_TEXT:
                raise SetRefused(f"{key}: expected a text of at most {MAX_TEXT} characters")
            if key in ("cid", "cwc", "cch", "cfi") and not COLOR.match(value):
                raise SetRefused(f"{key}: expected a colour #RRGGBB")
        elif type(value) is not type(old):
            raise SetRefused(f"{key}: expected {'an array' if isinstance(old, list) else 'an object'}")
        self.conf[key] = value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
