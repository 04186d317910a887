"""Plain data the strategies work on: what a charger reports, what a loadpoint should do."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

Phases = Literal[1, 3]


@dataclass
class ChargerView:
    """The latest ChargerReading of a loadpoint's charger (None = not reported)."""

    power_w: float | None = None
    state: str = "unknown"
    set_current_a: float | None = None
    phases: int | None = None
    enabled: bool | None = None
    at: float | None = None  # controller clock when it arrived
    session_energy_wh: float | None = None


@dataclass
class Settings:
    """What a person chose; persisted in the state file."""

    mode: Literal["off", "now", "minpv", "pv"]
    min_current_a: float
    max_current_a: float


@dataclass
class Setting:
    """What the charger should do now, and why."""

    enabled: bool
    current_a: float
    phases: Phases
    reason: str = ""


@dataclass
class PhaseBudget:
    """A hard cap on phase switches in any sliding hour."""

    per_hour: int
    times: deque[float] = field(default_factory=deque)

    def used(self, now: float) -> int:
        while self.times and now - self.times[0] >= 3600.0:
            self.times.popleft()
        return len(self.times)

    def allowed(self, now: float) -> bool:
        return self.used(now) < self.per_hour

    def record(self, now: float) -> None:
        self.times.append(now)


def amps_for(power_w: float, voltage_v: float, phases: int) -> float:
    """Whole amps that fit into power_w (chargers take whole amps; rounding down avoids import)."""
    return float(math.floor(power_w / (voltage_v * phases) + 1e-9))
