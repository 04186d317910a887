"""What the controller knows about the site: the latest readings it uses, on its own clock.

The clock is the monotonic clock in production (`clock = "wall"`): delays and staleness are
intervals, and a wall clock stepped by NTP or an RTC-less boot (+/- hours) must neither make fresh
data look stale nor hide a silent meter; states are still stamped with wall time (now_dt). With
`clock = "readings"` (simulated houses running faster than real time) it is the newest reading
timestamp, so every delay and the staleness check run in the simulation's time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
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
    buffer_wh: float = 0.0  # battery energy charged from the surplus that a cloud may borrow back
    # why a device is judged offline, None while it is not (judged.py: its owner's lease counts too)
    judged_offline: Callable[[str | None], str | None] = lambda _ref: None
    _buffer_at: float | None = None

    @property
    def clock(self) -> Literal["wall", "readings"]:
        return self.config.clock

    def now(self) -> float:
        if self.clock == "readings":
            return self.sim_now if self.sim_now is not None else 0.0
        return time.monotonic()

    def now_dt(self) -> datetime:
        if self.clock == "readings":
            return datetime.fromtimestamp(self.now(), UTC)
        return datetime.now(UTC)

    def arrived(self, reading: m.ReadingBase) -> float:
        """The controller-clock time of a reading (advances the simulated clock)."""
        if self.clock == "readings":
            ts = reading.timestamp.timestamp()
            self.sim_now = ts if self.sim_now is None else max(self.sim_now, ts)
            return ts
        return time.monotonic()

    def grid_problem(self, now: float) -> str | None:
        """Why grid data cannot be trusted now, or None when it is fresh."""
        if (why := self.judged_offline(self.config.grid_meter)) is not None:
            # its last reading may still look fresh: the replica polling it is gone
            return f"grid meter {self.config.grid_meter} judged offline: {why}"
        if self.grid_at is None or self.grid_w is None:
            return f"no reading from grid meter {self.config.grid_meter} yet"
        age = now - self.grid_at
        if age > self.config.stale_after_s:
            return f"grid meter {self.config.grid_meter} silent for {age:.0f} s (> {self.config.stale_after_s:g} s)"
        return None

    def note_battery(self, now: float, power_w: float | None, soc_pct: float | None) -> None:
        """A battery reading: book its energy since the last one into the cloud buffer.

        Charging fills the buffer, discharging empties it, capped at battery_buffer_wh; so the
        loadpoints can borrow back only what the surplus put into the battery, never its
        morning charge, and the battery ends the day no emptier for it (round-trip losses aside).
        """
        if self._buffer_at is not None and self.battery_w is not None:
            dt = min(60.0, max(0.0, now - self._buffer_at))  # a long silence books nothing
            self.buffer_wh -= self.battery_w * dt / 3600.0
            self.buffer_wh = min(self.config.battery_buffer_wh, max(0.0, self.buffer_wh))
        self._buffer_at = now
        self.battery_w, self.battery_soc, self.battery_at = power_w, soc_pct, now

    def lendable_wh(self, now: float) -> float:
        """Energy the cloud buffer may give back now (0 when off, stale or below its SOC)."""
        cfg = self.config
        if cfg.battery_buffer_wh <= 0 or self.buffer_wh <= 0 or not self.battery_fresh(now):
            return 0.0
        if self.battery_soc is None or self.battery_soc < cfg.battery_buffer_soc_pct:
            return 0.0
        if cfg.battery_buffer_when == "no_room" and self.battery_room(now):
            return 0.0
        return self.buffer_wh

    def buffered_w(self, now: float) -> float:
        """Battery discharge the cloud buffer covers right now (W, 0 when none)."""
        return max(0.0, self.battery_w or 0.0) if self.lendable_wh(now) > 0 else 0.0

    def battery_room(self, now: float) -> bool:
        """The home battery can still take surplus (fresh reading below battery_room_soc_pct)."""
        return self.battery_fresh(now) and self.battery_soc is not None \
            and self.battery_soc < self.config.battery_room_soc_pct

    def battery_fresh(self, now: float) -> bool:
        return self.battery_at is not None and now - self.battery_at <= self.config.stale_after_s \
            and self.judged_offline(self.config.battery) is None

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
            elif self._assisting(soc) and cfg.battery_assist_use == "raise":
                available += cfg.battery_assist_w
        return available

    def assist_w(self, now: float) -> float:
        """Battery discharge that "ride" assist covers now: a shadow ridden on it is not import."""
        cfg = self.config
        if cfg.battery_assist_use != "ride" or cfg.battery_assist_w <= 0 or not self.battery_fresh(now):
            return 0.0
        if self.battery_soc is None or not self._assisting(self.battery_soc):
            return 0.0
        return min(cfg.battery_assist_w, max(0.0, self.battery_w or 0.0))

    def _assisting(self, soc: float) -> bool:
        """Battery assist with a 3 % SOC hysteresis: without it the surplus jumps by the assist power
        every time the SOC crosses the threshold, and the charger current flaps with it."""
        threshold = self.config.battery_assist_soc_pct
        if soc >= threshold:
            self.assist_on = True
        elif soc < threshold - 3.0:
            self.assist_on = False
        return self.assist_on
