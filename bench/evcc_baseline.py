"""An evcc-faithful pv-mode loadpoint, written from evcc's documentation: the benchmark's baseline.

What evcc documents (docs.evcc.io, configuration reference `interval`, loadpoints `enable` /
`disable` `threshold` / `delay`, `phases`, and the PV-charging and phase-switching pages):
- the control loop runs every `interval` (30 s) on the latest values;
- pv mode: charging is enabled once the surplus covers the minimum charge power (threshold 0 W)
  for the enable delay (1 min), disabled once the site imports (threshold 0 W) at minimum current
  for the disable delay (3 min); the delay timer restarts whenever its condition stops holding;
- the current follows the surplus proportionally: target = present charge current + (-site
  power) / (230 V x phases), whole amps, clamped to 6-16 A;
- automatic phase switching uses the same delays: 3p -> 1p when 3p at minimum does not fit for the
  disable delay, 1p -> 3p when the 3p minimum fits for the enable delay.
Site power is the grid meter plus the home battery's discharge (evcc counts battery charging as
surplus above `prioritySoc`, 0 by default, and does not lend battery discharge without
`bufferSoc`). Not modelled: evcc's vehicle API polling and its charger-specific quirks; while
stopped, the start uses the phase count that fits right away (in evcc's favour).
"""

from __future__ import annotations

import math

from wattbus_surplus_controller.model import ChargerView, Phases, Setting

INTERVAL_S = 30.0
ENABLE_DELAY_S = 60.0
DISABLE_DELAY_S = 180.0
MIN_A, MAX_A, V = 6.0, 16.0, 230.0


class EvccLoadpoint:
    def __init__(self) -> None:
        self.setting = Setting(False, MIN_A, 3, "starting")
        self._next_tick = 0.0
        self._enable_timer: float | None = None
        self._disable_timer: float | None = None
        self._phase_timer: float | None = None
        self._grid_w = 0.0
        self._battery_w = 0.0
        self._charger = ChargerView()

    # the bench's driver interface
    def battery(self, now: float, power_w: float, soc: float) -> None:
        self._battery_w = power_w

    def charger(self, now: float, view: ChargerView) -> None:
        self._charger = view

    def meter(self, now: float, grid_w: float) -> Setting:
        self._grid_w = grid_w
        if now < self._next_tick:
            return self.setting  # evcc only looks every interval
        self._next_tick = now + INTERVAL_S
        # battery discharge counts as import (no bufferSoc), battery charging as surplus
        return self.decide(now, grid_w + self._battery_w, self._charger.power_w or 0.0)

    def decide(self, now: float, site_w: float, ev_w: float) -> Setting:
        """site_w: + import, the car's draw included; ev_w: the car's measured power."""
        s = self.setting
        surplus = ev_w - site_w
        if not s.enabled:
            phases: Phases = 3 if surplus >= 3 * MIN_A * V else 1
            if surplus >= phases * MIN_A * V:
                self._enable_timer = self._enable_timer if self._enable_timer is not None else now
                if now - self._enable_timer >= ENABLE_DELAY_S:
                    s.enabled, s.phases, s.current_a = True, phases, MIN_A
                    self._enable_timer = self._disable_timer = self._phase_timer = None
                    s.reason = "evcc: enable"
                    return s
                s.reason = "evcc: enable timer running"
                return s
            self._enable_timer = None
            s.reason = "evcc: surplus below minimum"
            return s
        measured_a = ev_w / (V * s.phases) if ev_w > 0 else s.current_a
        target = float(math.floor(measured_a - site_w / (V * s.phases) + 1e-9))
        if s.phases == 3 and surplus < 3 * MIN_A * V:
            self._phase_timer = self._phase_timer if self._phase_timer is not None else now
            if now - self._phase_timer >= DISABLE_DELAY_S:
                return self._switch(1, surplus)
        elif s.phases == 1 and surplus >= 3 * MIN_A * V:
            self._phase_timer = self._phase_timer if self._phase_timer is not None else now
            if now - self._phase_timer >= ENABLE_DELAY_S:
                return self._switch(3, surplus)
        else:
            self._phase_timer = None
        if target < MIN_A:
            s.current_a = MIN_A
            if site_w > 0:
                self._disable_timer = self._disable_timer if self._disable_timer is not None else now
                if now - self._disable_timer >= DISABLE_DELAY_S:
                    s.enabled = False
                    self._disable_timer = self._phase_timer = None
                    s.reason = "evcc: disable"
                    return s
            else:
                self._disable_timer = None  # exporting at minimum: the disable condition does not hold
            s.reason = "evcc: at minimum"
            return s
        self._disable_timer = None
        s.current_a = min(MAX_A, target)
        s.reason = f"evcc: {s.current_a:g} A"
        return s

    def _switch(self, phases: Phases, surplus: float) -> Setting:
        s = self.setting
        s.phases = phases
        s.current_a = min(MAX_A, max(MIN_A, float(int(max(0.0, surplus) / (V * phases)))))
        self._phase_timer = self._disable_timer = None
        s.reason = f"evcc: switch to {phases}p"
        return s
