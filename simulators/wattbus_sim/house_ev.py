"""The EV and its wallbox in the simulated house: the charger physics controllers have to live with.

- The charger offers a current (6-32 A, IEC 61851 has no lower PWM current) on 1 or 3 phases and
  may be enabled or not; the car follows a new offer after `response_delay_s` and then ramps
  (`ramp_up_a_per_s` / `ramp_down_a_per_s`); a start from standstill takes `start_delay_s`.
- Switching phases while charging stops the car for `phase_switch_pause_s` (contactors open,
  the car sees an unplug-like pause) before it ramps up again.
- The car's onboard charger caps current and phases; it stops when full (state `complete`).
Power is phases × 230 V × current (unity power factor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

VOLTAGE_V = 230.0
MIN_CURRENT_A = 6.0
MAX_CURRENT_A = 32.0

ChargerStateName = Literal["idle", "waiting", "charging", "complete"]


@dataclass
class Ev:
    capacity_wh: float
    soc_pct: float
    max_current_a: float = 16.0
    max_phases: int = 3
    efficiency: float = 0.92  # AC energy into the battery

    @property
    def full(self) -> bool:
        return self.soc_pct >= 100.0

    def absorb(self, ac_power_w: float, dt_s: float) -> None:
        stored = ac_power_w * dt_s / 3600.0 * self.efficiency
        self.soc_pct = min(100.0, self.soc_pct + 100.0 * stored / self.capacity_wh)


@dataclass
class ChargerTiming:
    response_delay_s: float = 2.0
    start_delay_s: float = 5.0
    ramp_up_a_per_s: float = 3.0
    ramp_down_a_per_s: float = 8.0
    phase_switch_pause_s: float = 15.0


@dataclass
class Charger:
    """A go-e-like wallbox. The setters are what a bridge's command maps to."""

    timing: ChargerTiming = field(default_factory=ChargerTiming)
    ev: Ev | None = None  # None: no car plugged in
    offered_a: float = MIN_CURRENT_A
    enabled: bool = False
    phases: int = 3
    actual_a: float = 0.0
    energy_total_wh: float = 0.0
    session_energy_wh: float = 0.0
    charge_starts: int = 0  # starts as the car saw them (phase-switch pauses included)
    enable_count: int = 0  # on/off cycles as commanded (disabled -> enabled)
    phase_switches: int = 0  # every change of the phase setting, also while nothing charges
    # changes while the car draws (or is about to draw) current: only these open the contactors
    # under load and interrupt charging, so these are the switches that wear the hardware and
    # cost energy; a change while stopped (before a start) is a relay move without load
    phase_switches_charging: int = 0
    # False: a wallbox without a phase-switch contactor (wired 3p, or 1p only): the bridge
    # refuses set_phases, as real ones without the feature do
    can_switch_phases: bool = True
    _now_s: float = 0.0
    _target_a: float = 0.0  # what the car is currently ramping to
    _pending: tuple[float, float] | None = None  # (effective at, target) after the response delay
    _paused_until_s: float = 0.0
    _charging: bool = False

    # ------------------------------------------------------------------ commands

    def set_current_a(self, current_a: float) -> None:
        if not MIN_CURRENT_A <= current_a <= MAX_CURRENT_A:
            raise ValueError(f"charge current {current_a} A outside {MIN_CURRENT_A:g}-{MAX_CURRENT_A:g} A")
        self.offered_a = float(int(current_a))  # the PWM offer is set in whole amps, like go-e `amp`

    def set_enabled(self, enabled: bool) -> None:
        if enabled and not self.enabled:
            self.enable_count += 1
        self.enabled = enabled

    def set_phases(self, phases: int) -> None:
        if phases not in (1, 3):
            raise ValueError(f"phases must be 1 or 3, not {phases}")
        if phases == self.phases:
            return
        self.phases = phases
        self.phase_switches += 1
        if self.actual_a > 0 or self._target_a > 0:
            self.phase_switches_charging += 1
            # the contactors open: the car stops at once and only restarts after the pause
            self.actual_a = 0.0
            self._target_a = 0.0
            self._pending = None
            self._paused_until_s = self._now_s + self.timing.phase_switch_pause_s

    def plug(self, ev: Ev | None) -> None:
        if ev is not self.ev:
            self.session_energy_wh = 0.0
        self.ev = ev

    # ------------------------------------------------------------------ readings

    def effective_phases(self) -> int:
        return min(self.phases, self.ev.max_phases) if self.ev else self.phases

    def current_a(self) -> float:
        return self.actual_a

    def power_w(self) -> float:
        return self.actual_a * VOLTAGE_V * self.effective_phases()

    def state(self) -> ChargerStateName:
        if self.ev is None:
            return "idle"
        if self.ev.full:
            return "complete"
        return "charging" if self.actual_a > 0 else "waiting"

    # ------------------------------------------------------------------ physics

    def _wanted_a(self) -> float:
        ev = self.ev
        if ev is None or ev.full or not self.enabled or self._now_s < self._paused_until_s:
            return 0.0
        return min(self.offered_a, ev.max_current_a)

    def step(self, dt_s: float) -> None:
        self._now_s += dt_s
        wanted = self._wanted_a()
        pending_target = self._pending[1] if self._pending else self._target_a
        if wanted != pending_target:
            delay = self.timing.start_delay_s if self._target_a == 0 and wanted > 0 else self.timing.response_delay_s
            self._pending = (self._now_s + delay, wanted)
        if self._pending and self._now_s >= self._pending[0]:
            self._target_a = self._pending[1]
            self._pending = None
        self._ramp(dt_s)
        power = self.power_w()
        if power > 0 and self.ev is not None:
            self.ev.absorb(power, dt_s)
            self.energy_total_wh += power * dt_s / 3600.0
            self.session_energy_wh += power * dt_s / 3600.0
        charging = power > 0
        if charging and not self._charging:
            self.charge_starts += 1
        self._charging = charging

    def _ramp(self, dt_s: float) -> None:
        if self._target_a == 0.0 and self._pending is None:
            self.actual_a = 0.0  # stopping or disabled: the contactor opens, no ramp
            return
        if self._target_a > self.actual_a:
            # a start jumps to the minimum current: cars do not charge below 6 A
            floor = max(self.actual_a, MIN_CURRENT_A if self._target_a >= MIN_CURRENT_A else 0.0)
            self.actual_a = min(self._target_a, floor + self.timing.ramp_up_a_per_s * dt_s)
        elif self._target_a < self.actual_a:
            self.actual_a = max(self._target_a, self.actual_a - self.timing.ramp_down_a_per_s * dt_s)
