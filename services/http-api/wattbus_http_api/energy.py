"""Today's energy: the live power flow integrated into 15-minute buckets since local midnight.

Integrating the flow (instead of differencing device counters) gives home and EV energy too,
which no single counter measures. Gaps longer than max_gap_s (service or bus down) are not
guessed: that part of the day stays empty.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime

from .flows import Flow

SERIES = ("pv_wh", "home_wh", "ev_wh", "grid_import_wh", "grid_export_wh", "battery_charge_wh",
          "battery_discharge_wh")


def _parts(f: Flow) -> dict[str, float | None]:
    grid, battery = f.grid_w, f.battery_w
    return {
        "pv_wh": f.pv_w, "home_wh": f.home_w, "ev_wh": f.ev_w,
        "grid_import_wh": None if grid is None else max(grid, 0.0),
        "grid_export_wh": None if grid is None else max(-grid, 0.0),
        "battery_charge_wh": None if battery is None else max(-battery, 0.0),
        "battery_discharge_wh": None if battery is None else max(battery, 0.0),
    }


class EnergyToday:
    def __init__(self, compute: Callable[[float], Flow], bucket_s: int = 900, min_step_s: float = 1.0,
                 max_gap_s: float = 120.0, clock: Callable[[], datetime] = datetime.now) -> None:
        self.compute = compute
        self.bucket_s = bucket_s
        self.min_step_s = min_step_s
        self.max_gap_s = max_gap_s
        self.clock = clock  # local wall clock: "today" is the user's day
        self.day: date = clock().date()
        self.buckets: dict[str, list[float]] = {name: [0.0] * (86400 // bucket_s) for name in SERIES}
        self._last: tuple[float, Flow] | None = None

    def sample(self, mono: float | None = None) -> None:
        mono = time.monotonic() if mono is None else mono
        if self._last is not None and mono - self._last[0] < self.min_step_s:
            return
        current = self.compute(mono)
        wall = self.clock()
        if wall.date() != self.day:
            self.day = wall.date()
            for values in self.buckets.values():
                values[:] = [0.0] * len(values)
        if self._last is not None:
            then, previous = self._last
            dt = mono - then
            if dt <= self.max_gap_s:
                seconds = wall.hour * 3600 + wall.minute * 60 + wall.second
                index = min(seconds // self.bucket_s, len(self.buckets["pv_wh"]) - 1)
                for name, watts in _parts(previous).items():
                    if watts is not None:
                        self.buckets[name][index] += watts * dt / 3600.0
        self._last = (mono, current)

    def document(self) -> dict[str, object]:
        series = {name: [round(v, 1) for v in values] for name, values in self.buckets.items()}
        totals = {name: round(sum(values), 1) for name, values in self.buckets.items()}
        return {"date": self.day.isoformat(), "bucket_s": self.bucket_s, "series": series, "totals_wh": totals}
