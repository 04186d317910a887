"""The wattbus loadpoint strategy: event-driven, asymmetric, with an import allowance and a phase budget.

Every fresh grid reading is one decision with `available_w`: the power this loadpoint may use,
its own present draw included. Compared with evcc's 30 s proportional loop it
- cuts the current on the very reading that shows import, but raises only after the surplus
  held for `raise_hold_s` (and then to the smallest target seen meanwhile, so no overshoot);
- rides through short clouds at minimum current until an import *energy* allowance is used up,
  instead of a fixed delay: a small dip costs nothing, a deep one stops charging quickly;
- drops 3p to 1p before stopping, and goes back to 3p only after a sustained surplus, never more
  often than the hourly phase-switch budget allows; after a stop it stays off `min_off_s`.
"""

from __future__ import annotations

from typing import Literal

from .config import LoadpointConfig
from .model import ChargerView, PhaseBudget, Phases, Setting, Settings, amps_for

StaleAction = Literal["min_current", "stop"]


class Loadpoint:
    def __init__(self, cfg: LoadpointConfig, settings: Settings) -> None:
        self.cfg = cfg
        self.settings = settings
        first: Phases = 1 if cfg.phases == 1 else 3
        self.setting = Setting(False, settings.min_current_a, first, "starting")
        self.budget = PhaseBudget(cfg.max_phase_switches_per_hour)
        self._last_now: float | None = None
        self._enable_since: float | None = None
        self._raise_since: float | None = None
        self._raise_min_a = 0.0
        self._deficit_wh = 0.0
        self._deficit_since: float | None = None
        self._stopped_at: float | None = None
        self._settle_until = 0.0
        self._up_since: float | None = None
        self._down_since: float | None = None

    # ------------------------------------------------------------------ helpers

    def power_at(self, current_a: float, phases: int) -> float:
        return current_a * self.cfg.voltage_v * phases

    def expected_power_w(self) -> float:
        s = self.setting
        return self.power_at(s.current_a, s.phases) if s.enabled else 0.0

    def _clamp(self, current_a: float) -> float:
        return min(self.settings.max_current_a, max(self.settings.min_current_a, current_a))

    def _switch_phases(self, now: float, phases: Phases, available_w: float, charging: bool) -> None:
        if charging:
            self.budget.record(now)  # a switch while charging opens the contactors: it counts
            self._settle_until = now + self.cfg.settle_s
        self.setting.phases = phases
        self.setting.current_a = self._clamp(amps_for(available_w, self.cfg.voltage_v, phases))
        self._up_since = self._down_since = None
        self._deficit_wh, self._deficit_since, self._raise_since = 0.0, None, None

    def _regulate(self, now: float, target_a: float) -> str:
        """Asymmetric: down at once, up only after the surplus held raise_hold_s."""
        target = self._clamp(target_a)
        current = self.setting.current_a
        if target < current:
            self.setting.current_a, self._raise_since = target, None
            return f"cut to {target:g} A"
        if target > current:
            if self._raise_since is None:
                self._raise_since, self._raise_min_a = now, target
            self._raise_min_a = min(self._raise_min_a, target)
            if now - self._raise_since >= self.cfg.raise_hold_s:
                self.setting.current_a, self._raise_since = self._raise_min_a, None
                return f"raised to {self.setting.current_a:g} A"
            return f"surplus for {target:g} A, holding"
        self._raise_since = None
        return f"steady at {current:g} A"

    def _auto_phases(self, now: float, available_w: float, charging: bool) -> str | None:
        """Automatic 1p <-> 3p with delays and the hourly budget; returns a reason when it switched."""
        if self.cfg.phases != "auto" or now < self._settle_until:
            return None
        three_min = self.power_at(self.settings.min_current_a, 3)
        if self.setting.phases == 1:
            self._down_since = None
            if available_w >= three_min + self.cfg.phase_margin_w:
                self._up_since = self._up_since if self._up_since is not None else now
                # go up only with a switch to spare: on 3p a cloud must find a way back down to 1p
                spare = self.budget.used(now) + 2 <= self.budget.per_hour
                if now - self._up_since >= self.cfg.phase_up_delay_s and spare:
                    self._switch_phases(now, 3, available_w, charging)
                    return f"surplus {available_w:.0f} W held {self.cfg.phase_up_delay_s:g} s: 1p -> 3p"
            else:
                self._up_since = None
            return None
        self._up_since = None
        if available_w < three_min:
            self._down_since = self._down_since if self._down_since is not None else now
            overdrawn = self._deficit_wh >= self.cfg.import_allowance_wh / 2
            # 1p at minimum overdraws far less than 3p at minimum even when the surplus is below it
            # (a deep cloud): switch down rather than stop while there is any surplus at all
            if (now - self._down_since >= self.cfg.phase_down_delay_s or overdrawn) \
                    and available_w > 0 and self.budget.allowed(now):
                self._switch_phases(now, 1, available_w, charging)
                return f"surplus {available_w:.0f} W below 3p minimum: 3p -> 1p"
        else:
            self._down_since = None
        return None

    # ------------------------------------------------------------------ the decision

    def decide(self, now: float, available_w: float | None, charger: ChargerView,
               stale_action: StaleAction = "stop", stale_reason: str = "") -> Setting:
        dt = 0.0 if self._last_now is None else min(60.0, max(0.0, now - self._last_now))
        self._last_now = now
        mode = self.settings.mode
        s = self.setting
        if charger.state in ("idle", "complete"):
            self._enable_since = None
            return self._set(False, "no vehicle connected" if charger.state == "idle" else "vehicle full")
        if mode == "off":
            return self._set(False, "mode off")
        if mode == "now":
            if self.cfg.phases != 1 and s.phases == 1 and self.budget.allowed(now):
                self._switch_phases(now, 3, self.power_at(self.settings.max_current_a, 3), s.enabled)
            s.current_a = self.settings.max_current_a
            return self._set(True, "mode now: maximum current")
        if available_w is None:
            if mode == "minpv" or (stale_action == "min_current" and s.enabled):
                s.current_a = self.settings.min_current_a
                return self._set(True, f"safe state (minimum current): {stale_reason}")
            return self._stop(now, f"safe state (stopped): {stale_reason}")
        if mode == "minpv":
            switched = self._auto_phases(now, available_w, s.enabled)
            target = amps_for(available_w, self.cfg.voltage_v, s.phases)
            why = self._regulate(now, target)
            return self._set(True, switched or f"minpv: {why}, surplus {available_w:.0f} W")
        return self._pv(now, dt, available_w)

    def _pv(self, now: float, dt: float, available_w: float) -> Setting:
        s = self.setting
        cfg = self.cfg
        if not s.enabled:
            return self._pv_start(now, available_w)
        settling = now < self._settle_until
        switched = self._auto_phases(now, available_w, True)
        if switched:
            return self._set(True, switched)
        min_power = self.power_at(self.settings.min_current_a, s.phases)
        target = amps_for(available_w, cfg.voltage_v, s.phases)
        if target < self.settings.min_current_a:
            if not settling:
                self._deficit_wh += (min_power - available_w) * dt / 3600.0
                self._deficit_since = self._deficit_since if self._deficit_since is not None else now
            s.current_a, self._raise_since = self.settings.min_current_a, None
            over = self._deficit_wh > cfg.import_allowance_wh
            too_long = self._deficit_since is not None and now - self._deficit_since >= cfg.disable_delay_s
            if over or too_long:
                why = f"import allowance {cfg.import_allowance_wh:g} Wh used" if over else \
                    f"surplus below minimum for {cfg.disable_delay_s:g} s"
                return self._stop(now, f"pv: {why}")
            return self._set(True, f"pv: at minimum, surplus {available_w:.0f} W, "
                                   f"{self._deficit_wh:.1f}/{cfg.import_allowance_wh:g} Wh allowance used")
        # surplus is back: refill the allowance at the rate the surplus exceeds the minimum
        self._deficit_wh = max(0.0, self._deficit_wh - (available_w - min_power) * dt / 3600.0)
        if self._deficit_wh == 0.0:
            self._deficit_since = None
        return self._set(True, f"pv: {self._regulate(now, target)}, surplus {available_w:.0f} W")

    def _pv_start(self, now: float, available_w: float) -> Setting:
        cfg = self.cfg
        if self._stopped_at is not None and now - self._stopped_at < cfg.min_off_s:
            return self._set(False, f"pv: off, minimum off time {cfg.min_off_s:g} s")
        phases: Phases = self.setting.phases
        if cfg.phases == "auto":
            phases = 3 if available_w >= self.power_at(self.settings.min_current_a, 3) + cfg.phase_margin_w else 1
        need = self.power_at(self.settings.min_current_a, phases) + cfg.enable_threshold_w
        if available_w < need:
            self._enable_since = None
            return self._set(False, f"pv: surplus {available_w:.0f} W below {need:.0f} W to start")
        self._enable_since = self._enable_since if self._enable_since is not None else now
        if now - self._enable_since < cfg.enable_delay_s:
            return self._set(False, f"pv: surplus {available_w:.0f} W, starting after {cfg.enable_delay_s:g} s")
        if phases != self.setting.phases:
            self._switch_phases(now, phases, available_w, charging=False)
        self.setting.current_a = self._clamp(amps_for(available_w, cfg.voltage_v, phases))
        self._settle_until = now + cfg.settle_s
        self._deficit_wh, self._deficit_since, self._enable_since = 0.0, None, None
        return self._set(True, f"pv: start, surplus {available_w:.0f} W on {phases}p")

    def _stop(self, now: float, reason: str) -> Setting:
        if self.setting.enabled:
            self._stopped_at = now
        self._enable_since = None
        self._deficit_wh, self._deficit_since = 0.0, None
        return self._set(False, reason)

    def _set(self, enabled: bool, reason: str) -> Setting:
        s = self.setting
        s.enabled = enabled
        s.current_a = self._clamp(s.current_a)  # limits may have changed by command
        s.reason = reason
        return s
