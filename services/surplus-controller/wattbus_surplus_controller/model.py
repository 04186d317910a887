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
class LoadpointChoices:
    """What a person chose; persisted in the state file."""

    mode: Literal["off", "now", "minpv", "pv"]
    min_current_a: float
    max_current_a: float
    # the charge plan (plan.py): target SoC by HHMM local time, and a minimum SoC at full power
    plan_soc_pct: int | None = None
    plan_time: str | None = None
    plan_min_soc_pct: int | None = None


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


def ema(average: float | None, value: float, dt: float, tau_s: float) -> float:
    if average is None or tau_s <= 0:
        return value
    moved = average + (value - average) * min(1.0, dt / tau_s)
    # snap when within 1 W: an average that only approaches a whole-amp boundary would stay one amp short
    return value if abs(value - moved) < 1.0 else moved


def ride_weight(cover: float, one_phase_would_do: bool) -> float:
    """How much a Wh imported while riding a dip at minimum current counts against the allowance.

    cover: the share of the minimum power the surplus still covers. A dip covered at least half
    counts as it is; a deeper one times half over the cover, up to 4x (a kettle with the car at the
    1p minimum imports 1.4 kW for no PV: measured 0.8 kWh of PV per kWh of import against ~4.5 for
    shallow rides). one_phase_would_do: a 3p ride while 1p would take the whole surplus without
    import buys no PV, only the way back up when the sun returns soon: twice. Both measured on the
    whole bench (docs/surplus.md): less import at the same car share.
    """
    weight = min(4.0, max(1.0, 0.5 / max(cover, 0.125)))
    return 2.0 * weight if one_phase_would_do else weight
