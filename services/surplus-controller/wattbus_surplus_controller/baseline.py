"""An evcc-style loadpoint with evcc's documented defaults: the benchmark's baseline.

A decision every `interval_s` (30 s) on the latest values; proportional current
(target = current + (-site power) / (230 V × phases), truncated to whole amps); pv mode starts after
the surplus covered the minimum power for 1 min and stops after importing at minimum for 3 min;
3p -> 1p when the surplus stays below the 3p minimum for the disable delay, 1p -> 3p when the 1p
target exceeds the maximum and 3p fits for the enable delay; 60 s guard after a start or switch.
"""

from __future__ import annotations

from .config import LoadpointConfig
from .model import ChargerView, PhaseBudget, Phases, Setting, Settings, amps_for
from .strategy import Loadpoint, StaleAction

ENABLE_DELAY_S = 60.0
DISABLE_DELAY_S = 180.0
GUARD_S = 60.0


class EvccLoadpoint(Loadpoint):
    def __init__(self, cfg: LoadpointConfig, settings: Settings, interval_s: float = 30.0) -> None:
        super().__init__(cfg, settings)
        self.interval_s = interval_s
        self.budget = PhaseBudget(1_000_000)  # evcc has no switch budget
        self._next_tick: float | None = None
        self._guard_until = 0.0
        self._enable_timer: float | None = None
        self._disable_timer: float | None = None
        self._phase_timer: float | None = None

    def decide(self, now: float, available_w: float | None, charger: ChargerView,
               stale_action: StaleAction = "stop", stale_reason: str = "", buffered_w: float = 0.0,
               buffer_wh: float = 0.0, import_w: float = 0.0) -> Setting:
        # the buffer and the hard import window are ignored: evcc has neither, its 3 min disable
        # delay is the only ride-through
        if self._next_tick is not None and now < self._next_tick:
            return self.setting  # evcc only looks every interval
        self._next_tick = now + self.interval_s
        if self.settings.mode != "pv" or available_w is None or charger.state in ("idle", "complete"):
            return super().decide(now, available_w, charger, stale_action, stale_reason)
        return self._evcc_pv(now, available_w, charger)

    def _evcc_pv(self, now: float, available_w: float, charger: ChargerView) -> Setting:
        s = self.setting
        ev_w = charger.power_w or 0.0
        site_w = ev_w - available_w  # evcc's site power: + import, EV included
        if now < self._guard_until:
            return self._set(s.enabled, "evcc: guard time after switch")
        min_a, max_a = self.settings.min_current_a, self.settings.max_current_a
        v = self.cfg.voltage_v
        if not s.enabled:
            phases: Phases = s.phases
            if self.cfg.phases == "auto":
                phases = 3 if available_w >= 3 * min_a * v else 1
            if available_w >= phases * min_a * v:
                self._enable_timer = self._enable_timer if self._enable_timer is not None else now
                if now - self._enable_timer >= ENABLE_DELAY_S:
                    s.phases, s.current_a = phases, min_a
                    self._enable_timer, self._guard_until = None, now + GUARD_S
                    return self._set(True, "evcc: enable")
                return self._set(False, "evcc: enable timer running")
            self._enable_timer = None
            return self._set(False, "evcc: surplus below minimum")
        target = amps_for(s.current_a * v * s.phases - site_w, v, s.phases)
        if self.cfg.phases == "auto":
            if s.phases == 3 and available_w < 3 * min_a * v:
                self._phase_timer = self._phase_timer if self._phase_timer is not None else now
                if now - self._phase_timer >= DISABLE_DELAY_S and self.budget.allowed(now):
                    return self._evcc_switch(now, 1, available_w)
            elif s.phases == 1 and target > max_a and available_w >= 3 * min_a * v:
                self._phase_timer = self._phase_timer if self._phase_timer is not None else now
                if now - self._phase_timer >= ENABLE_DELAY_S and self.budget.allowed(now):
                    return self._evcc_switch(now, 3, available_w)
            else:
                self._phase_timer = None
        if target < min_a:
            s.current_a = min_a
            if site_w > 0:
                self._disable_timer = self._disable_timer if self._disable_timer is not None else now
                if now - self._disable_timer >= DISABLE_DELAY_S:
                    self._disable_timer, self._guard_until = None, now + GUARD_S
                    return self._set(False, "evcc: disable")
            return self._set(True, "evcc: at minimum")
        self._disable_timer = None
        s.current_a = min(max_a, target)
        return self._set(True, f"evcc: proportional {s.current_a:g} A")

    def _evcc_switch(self, now: float, phases: Phases, available_w: float) -> Setting:
        self.budget.record(now)
        self.setting.phases = phases
        self.setting.current_a = self._clamp(amps_for(available_w, self.cfg.voltage_v, phases))
        self._phase_timer, self._guard_until = None, now + GUARD_S
        return self._set(True, f"evcc: switch to {phases}p")
