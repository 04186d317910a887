"""What the controller knows about the site: the latest readings it uses, on its own clock.

The clock is wall time in production. With `clock = "readings"` (simulated houses running faster
than real time) it is the newest reading timestamp, so every delay and the staleness check run in
the simulation's time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from wattbus import messages as m

from .config import Config
from .model import ChargerView
from .relays import RelayView


@dataclass
class Site:
    config: Config
    grid_w: float | None = None
    grid_at: float | None = None
    battery_w: float | None = None
    battery_soc: float | None = None
    battery_at: float | None = None
    chargers: dict[str, ChargerView] = field(default_factory=dict)
    relays: dict[tuple[str, int], RelayView] = field(default_factory=dict)
    sim_now: float | None = None
    assist_on: bool = False

    @property
    def clock(self) -> Literal["wall", "readings"]:
        return self.config.clock

    def now(self) -> float:
        if self.clock == "readings":
            return self.sim_now if self.sim_now is not None else 0.0
        return time.time()

    def now_dt(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)

    def arrived(self, reading: m.ReadingBase) -> float:
        """The controller-clock time of a reading (advances the simulated clock)."""
        if self.clock == "readings":
            ts = reading.timestamp.timestamp()
            self.sim_now = ts if self.sim_now is None else max(self.sim_now, ts)
            return ts
        return time.time()

    def grid_problem(self, now: float) -> str | None:
        """Why grid data cannot be trusted now, or None when it is fresh."""
        if self.grid_at is None or self.grid_w is None:
            return f"no reading from grid meter {self.config.grid_meter} yet"
        age = now - self.grid_at
        if age > self.config.stale_after_s:
            return f"grid meter {self.config.grid_meter} silent for {age:.0f} s (> {self.config.stale_after_s:g} s)"
        return None

    def battery_fresh(self, now: float) -> bool:
        return self.battery_at is not None and now - self.battery_at <= self.config.stale_after_s

    def available_w(self, now: float, consumers_w: float) -> float | None:
        """Power the controlled loads may use in total (their present draw included), or None if stale.

        grid + import; battery + discharge. Below battery_priority_soc the battery keeps its full
        charge power; above battery_assist_soc it may discharge up to battery_assist_w for the loads.
        """
        if self.grid_problem(now) is not None or self.grid_w is None:
            return None
        cfg = self.config
        available = -self.grid_w + consumers_w - cfg.residual_power_w
        if self.battery_w is not None and self.battery_fresh(now):
            soc = self.battery_soc if self.battery_soc is not None else 0.0
            available -= self.battery_w  # its charging is surplus we may redirect; discharging is not
            if soc < cfg.battery_priority_soc_pct:
                # the battery first: reserve its full charge power, whatever it takes right now
                available -= cfg.battery_max_charge_w
            elif self._assisting(soc):
                available += cfg.battery_assist_w
        return available

    def _assisting(self, soc: float) -> bool:
        """Battery assist with a 3 % SOC hysteresis: without it the surplus jumps by the assist power
        every time the SOC crosses the threshold, and the charger current flaps with it."""
        threshold = self.config.battery_assist_soc_pct
        if soc >= threshold:
            self.assist_on = True
        elif soc < threshold - 3.0:
            self.assist_on = False
        return self.assist_on
