"""The wattbus loadpoint strategy: event-driven, asymmetric, with an import allowance and a phase budget.

Every fresh grid reading is one decision with `available_w`: the power this loadpoint may use,
its own present draw included. Compared with evcc's 30 s proportional loop it
- cuts the current on the very reading that shows a whole amp or more missing (smaller shortfalls
  follow the 10 s average, so meter noise at an amp step does not ratchet the current down), and
  raises only after the averaged surplus held for `raise_hold_s`, to the smallest target seen;
- rides through clouds at minimum current: first on the site's battery cloud buffer (the battery
  gives back only what the surplus charged into it), then on an import *energy* allowance, instead
  of a fixed delay: a small dip costs nothing, a deep one ends the ride quickly (a dip the
  surplus covers less than half books up to four times its import);
- rounds the current to the nearest amp instead of down while that buffer holds energy;
- chooses phases on a 120 s average with max(200 W, 10 %) hysteresis, a dwell time and the hourly
  budget; drops 3p to 1p before stopping, does not leave 3p while the buffer carries a dip; after a
  stop it stays off `min_off_s` and restarts only after `restart_delay_s` of (averaged) surplus.
"""

from __future__ import annotations

from typing import Literal

from .config import LoadpointConfig
from .model import ChargerView, LoadpointChoices, PhaseBudget, Phases, Setting, amps_for, ema, ride_weight
from .sky import SkyWatch
from .window import ImportWindow

StaleAction = Literal["min_current", "stop"]


class Loadpoint:
    def __init__(self, cfg: LoadpointConfig, settings: LoadpointChoices) -> None:
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
        self._switched_at = float("-inf")
        self._slow_w: float | None = None  # the surplus averaged over phase_tau_s (phase choice)
        self._fast_w: float | None = None  # ... and over raise_tau_s (current steps)
        self._round_w = 0.0  # half an amp step while the battery buffer may cover it, else 0
        self.window = ImportWindow(cfg.allowance_window_s)  # metered import while charging in pv mode
        self._import_w = 0.0
        self._dt = 2.0  # the latest interval between decisions (readings)
        self._draw_w = 0.0  # the charger's metered power (it lags a cut by its response delay)
        self.sky = SkyWatch(cfg.sky_window_s)
        self.battery_room = False  # set by the controller: the home battery can take surplus now
        self._commanded: tuple[bool, float, int] = (False, 0.0, first)  # the setting last decided
        self._commanded_at = float("-inf")  # ... and when it changed
        self._unconfirmed = False  # the charger's reading does not show that setting yet

    # ------------------------------------------------------------------ helpers

    def power_at(self, current_a: float, phases: int) -> float:
        return current_a * self.cfg.voltage_v * phases

    def expected_power_w(self) -> float:
        s = self.setting
        return self.power_at(s.current_a, s.phases) if s.enabled else 0.0

    def _clamp(self, current_a: float) -> float:
        return min(self.settings.max_current_a, max(self.settings.min_current_a, current_a))

    def phase_margin_w(self) -> float:
        three_min = self.power_at(self.settings.min_current_a, 3)
        return max(self.cfg.phase_margin_w, three_min * self.cfg.phase_margin_pct / 100.0)

    def _smooth(self, dt: float, available_w: float | None) -> None:
        """Exponential average of the surplus: one cloud edge must not decide the phases."""
        if available_w is None:
            return
        self._slow_w = ema(self._slow_w, available_w, dt, self.cfg.phase_tau_s)
        self._fast_w = ema(self._fast_w, available_w, dt, self.cfg.raise_tau_s)

    def _switch_phases(self, now: float, phases: Phases, available_w: float, charging: bool) -> None:
        if charging:
            self.budget.record(now)  # a switch while charging opens the contactors: it counts
            self._settle_until = now + self.cfg.settle_s
            self._switched_at = now
        self.setting.phases = phases
        self.setting.current_a = self._clamp(amps_for(available_w, self.cfg.voltage_v, phases))
        self._up_since = self._down_since = None
        self._deficit_wh, self._deficit_since, self._raise_since = 0.0, None, None

    def _regulate(self, now: float, target_a: float) -> str:
        """Asymmetric: down at once when a whole amp or more is missing, down by the smoothed surplus
        when less is (meter noise around an amp step must not ratchet the current down), up only
        after the smoothed surplus held raise_hold_s."""
        smooth_a = amps_for(self._fast_w + self._round_w, self.cfg.voltage_v, self.setting.phases) \
            if self._fast_w is not None else target_a
        current = self.setting.current_a
        cut = self._clamp(target_a) if target_a < current - 1 else self._clamp(min(smooth_a, current))
        if cut < current:
            self.setting.current_a, self._raise_since = cut, None
            return f"cut to {cut:g} A"
        target = self._clamp(min(target_a, smooth_a))
        if target > current and self._unconfirmed:
            self._raise_since = None
            return f"surplus for {target:g} A, waiting for the charger to show {current:g} A"
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

    def _auto_phases(self, now: float, available_w: float, charging: bool, exhausted: bool = False) -> str | None:
        """Automatic 1p <-> 3p on the smoothed surplus, with hysteresis, a dwell time and the hourly
        budget; returns a reason when it switched. `exhausted`: riding a dip at the 3p minimum has
        used the buffer and the allowance, so 1p is the last step before stopping."""
        if self.cfg.phases != "auto" or now < self._settle_until:
            return None
        three_min = self.power_at(self.settings.min_current_a, 3)
        margin = self.phase_margin_w()
        slow = self._slow_w if self._slow_w is not None else available_w
        dwelt = now - self._switched_at >= self.cfg.phase_dwell_s
        broken = self.prefer_1p()
        if self.setting.phases == 1:
            self._down_since = None
            if broken:
                self._up_since = None  # each sunny spell is followed by a shadow: stay on 1p
                return None
            # up only when the average and the present reading both carry 3p with the margin
            if min(slow, available_w) >= three_min + margin:
                self._up_since = self._up_since if self._up_since is not None else now
                # go up only with a switch to spare: on 3p a long cloud must find a way back to 1p
                spare = self.budget.used(now) + 2 <= self.budget.per_hour
                # ... and only when the import window can carry 3p through a shadow: else the hard
                # limit sends it straight back to 1p (two switches for nothing)
                room = self._room_wh(now, self._dt, three_min) > 0.0
                if now - self._up_since >= self.cfg.phase_up_delay_s and spare and dwelt and room:
                    self._switch_phases(now, 3, available_w, charging)
                    return f"surplus {available_w:.0f} W (average {slow:.0f} W) held: 1p -> 3p"
            else:
                self._up_since = None
            return None
        self._up_since = None
        if available_w <= 0 or not self.budget.allowed(now):
            return None
        if exhausted and available_w >= self.power_at(self.settings.min_current_a, 1) / 2.0:
            # 1p at minimum overdraws far less than 3p at minimum: switch down rather than stop,
            # when the surplus still covers half of it (else 1p only rides on at a deep-dip rate)
            self._switch_phases(now, 1, available_w, charging)
            return f"surplus {available_w:.0f} W, dip allowance used on 3p: 3p -> 1p"
        if broken and available_w < three_min and dwelt:
            # a shadow starts in broken weather: ride it and the next ones on 1p
            self._switch_phases(now, 1, available_w, charging)
            return f"broken sky, surplus {available_w:.0f} W below the 3p minimum: 3p -> 1p"
        if slow < three_min - margin:
            self._down_since = self._down_since if self._down_since is not None else now
            if now - self._down_since >= self.cfg.phase_down_delay_s and dwelt:
                self._switch_phases(now, 1, available_w, charging)
                return f"average surplus {slow:.0f} W below 3p minimum: 3p -> 1p"
        else:
            self._down_since = None
        return None

    def prefer_1p(self) -> bool:
        """Broken weather (sky.py) and somewhere for the sun 1p cannot take: charge on 1p."""
        policy = self.cfg.broken_sky_phases
        if self.cfg.phases != "auto" or policy == "auto" or (policy == "1p_with_room" and not self.battery_room):
            return False
        if policy == "1p_when_full" and self.battery_room:
            return False  # the battery can still buffer the shadows of 3p and take what 1p leaves
        return self.sky.broken(self.power_at(self.settings.min_current_a, 3))

    # ------------------------------------------------------------------ the decision

    def decide(self, now: float, available_w: float | None, charger: ChargerView,
               stale_action: StaleAction = "stop", stale_reason: str = "", buffered_w: float = 0.0,
               buffer_wh: float = 0.0, import_w: float = 0.0) -> Setting:
        """One decision. buffered_w: battery discharge the site's cloud buffer covers now;
        buffer_wh: what that buffer holds (it may round the current up); import_w: what the grid
        meter shows imported now (booked against the hard allowance while charging in pv mode)."""
        dt = 0.0 if self._last_now is None else min(60.0, max(0.0, now - self._last_now))
        self._last_now = now
        self._dt = dt if dt > 0 else self._dt
        drawing = self.setting.enabled or (charger.power_w or 0.0) > 0.0
        if self.settings.mode == "pv" and drawing and available_w is not None:
            # the reading stands for the interval since the previous one (the controller sees no more)
            self.window.book(now, self._import_w, dt)
        if available_w is not None:
            self.sky.note(now, available_w)
        self._import_w = max(0.0, import_w)
        self._draw_w = charger.power_w or 0.0
        self._unconfirmed = self._stale_view(now, charger)
        if self._unconfirmed and available_w is not None:
            # the meter already shows the new draw, the reading still the old one: count the draw
            # as commanded (a fresh meter reading minus a stale charger reading once read "66 W"
            # with 7 kW there and cut the current); raises wait until the reading catches up
            available_w += max(0.0, self.expected_power_w() - self._draw_w)
        rounding = 0 < self.cfg.round_from_buffer_wh <= buffer_wh
        self._round_w = self.cfg.voltage_v * self.setting.phases / 2.0 if rounding else 0.0
        self._smooth(dt, available_w)
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
        return self._pv(now, dt, available_w, buffered_w)

    def _window_left_wh(self, now: float, dt: float) -> float:
        """Allowance left in the rolling window once the present import has run until a cut shows
        (the next reading plus stop_lag_s), with all the charger draws as the worst case: a cloud
        edge can take the whole surplus away between two readings."""
        worst_w = max(self._import_w, self.expected_power_w(), self._draw_w)
        return self._room_wh(now, dt, worst_w)

    def _room_wh(self, now: float, dt: float, worst_w: float) -> float:
        """Allowance left after worst_w for the time a cut takes. An empty window has all of it:
        an allowance below the minimum power times that lag could otherwise never start a charge."""
        used = self.window.used_wh(now)
        if used <= 0.0 and self._import_w <= 0.0:
            return self.cfg.window_allowance_wh
        return self.cfg.window_allowance_wh - used - worst_w * self._lag_s(dt) / 3600.0

    def _lag_s(self, dt: float) -> float:
        """Until a cut shows at the meter: the next reading (a gap in readings is not the usual
        interval, so at most 5 s of it) plus the charger's own reaction."""
        return min(max(dt, 1.0), 5.0) + self.cfg.stop_lag_s

    def _pv(self, now: float, dt: float, available_w: float, buffered_w: float = 0.0) -> Setting:
        s = self.setting
        cfg = self.cfg
        if not s.enabled:
            return self._pv_start(now, available_w)
        if self._window_left_wh(now, dt) <= 0.0:
            return self._safe_level(now, dt, available_w)
        settling = now < self._settle_until
        # while the battery's cloud buffer carries a dip on 3p, riding it beats two phase switches
        carried = buffered_w > 0 and s.phases == 3 and self.cfg.buffer_holds_phases and not self.prefer_1p()
        switched = None if carried else self._auto_phases(now, available_w, True)
        if switched:
            return self._set(True, switched)
        min_power = self.power_at(self.settings.min_current_a, s.phases)
        target = amps_for(available_w + self._round_w, cfg.voltage_v, s.phases)
        if target < self.settings.min_current_a:
            # what the battery's cloud buffer covers is not import: only the rest is booked (also
            # while settling: import right after a start or switch is import all the same), and
            # weighted by what the ride buys (model.ride_weight)
            covered_w = available_w + buffered_w
            one_phase = s.phases == 3 and cfg.phases == "auto" \
                and covered_w >= self.power_at(self.settings.min_current_a, 1)
            self._deficit_wh += max(0.0, min_power - covered_w) * dt / 3600.0 \
                * ride_weight(covered_w / min_power, one_phase)
            if not settling:
                self._deficit_since = self._deficit_since if self._deficit_since is not None else now
            s.current_a, self._raise_since = self.settings.min_current_a, None
            over = self._deficit_wh > cfg.import_allowance_wh
            too_long = self._deficit_since is not None and now - self._deficit_since >= cfg.disable_delay_s \
                and buffered_w <= 0.0
            if over or too_long:
                switched = self._auto_phases(now, available_w, True, exhausted=True) if s.phases == 3 else None
                if switched:
                    return self._set(True, switched)
                why = f"import allowance {cfg.import_allowance_wh:g} Wh used" if over else \
                    f"surplus below minimum for {cfg.disable_delay_s:g} s"
                return self._stop(now, f"pv: {why}")
            return self._set(True, f"pv: at minimum, surplus {available_w:.0f} W, "
                                   f"{self._deficit_wh:.1f}/{cfg.import_allowance_wh:g} Wh allowance used")
        # surplus is back: refill the allowance at the rate the surplus exceeds the minimum, but at
        # most a whole allowance per allowance_refill_s: sun flashes inside one long grey spell
        # must not hand out a fresh allowance each time
        refill = min((available_w - min_power) / 3600.0, cfg.import_allowance_wh / max(1.0, cfg.allowance_refill_s))
        self._deficit_wh = max(0.0, self._deficit_wh - refill * dt)
        self._deficit_since = None  # the dip is over; its energy stays booked until refilled
        return self._set(True, f"pv: {self._regulate(now, target)}, surplus {available_w:.0f} W")

    def _safe_level(self, now: float, dt: float, available_w: float) -> Setting:
        """The hard limit is near: no import at all now, and no more draw than a sudden shadow could
        import within the rest of the window before a cut shows; below the minimum, stop."""
        cfg = self.cfg
        used = self.window.used_wh(now)
        why = f"{used:.1f} of {cfg.window_allowance_wh:g} Wh import allowance used in {cfg.allowance_window_s:g} s"
        cap_w = max(0.0, cfg.window_allowance_wh - used) * 3600.0 / self._lag_s(dt)
        limit_w = min(available_w, cap_w) if self._import_w > 0.0 else cap_w
        amps = min(self.setting.current_a, amps_for(limit_w, cfg.voltage_v, self.setting.phases))
        if amps >= self.settings.min_current_a:
            self.setting.current_a, self._raise_since = amps, None
            return self._set(True, f"pv: {why}: at most {amps:g} A")
        if self.setting.phases == 3 and self.cfg.phases == "auto" \
                and amps_for(limit_w, cfg.voltage_v, 1) >= self.settings.min_current_a:
            # 1p fits without import: a stop would open the contactors too, and throw the surplus away
            self._switch_phases(now, 1, limit_w, True)
            return self._set(True, f"pv: {why}: 3p -> 1p at {self.setting.current_a:g} A instead of a stop")
        return self._stop(now, f"pv: {why}: stop")

    def _pv_start(self, now: float, available_w: float) -> Setting:
        cfg = self.cfg
        if self._stopped_at is not None and now - self._stopped_at < cfg.min_off_s:
            return self._set(False, f"pv: off, minimum off time {cfg.min_off_s:g} s")
        # a restart on 3p needs the average too (a sunny minute inside a grey hour is no 3p weather);
        # the start itself needs the reading to carry the phases chosen for the whole restart
        # delay: waiting for the 2-minute average as well held the car off for a minute or more
        # after every kettle and shadow (measured: less car share on every day type, same cycles)
        slow = self._slow_w if self._slow_w is not None and self._stopped_at is not None else available_w
        basis = min(available_w, slow)
        phases: Phases = self.setting.phases
        if cfg.phases == "auto":
            phases = 3 if basis >= self.power_at(self.settings.min_current_a, 3) + self.phase_margin_w() \
                and not self.prefer_1p() else 1
        need = self.power_at(self.settings.min_current_a, phases) + cfg.enable_threshold_w
        if available_w < need:
            self._enable_since = None
            return self._set(False, f"pv: surplus {available_w:.0f} W (average {slow:.0f} W) below "
                                    f"{need:.0f} W to start")
        self._enable_since = self._enable_since if self._enable_since is not None else now
        # a restart after a stop in pv mode waits longer: the sky has already shown it is unsettled
        delay = cfg.enable_delay_s if self._stopped_at is None else max(cfg.enable_delay_s, cfg.restart_delay_s)
        if now - self._enable_since < delay:
            return self._set(False, f"pv: surplus {available_w:.0f} W, starting after {delay:g} s")
        start_a = self._clamp(amps_for(available_w, cfg.voltage_v, phases))
        if self._room_wh(now, self._dt, self.power_at(start_a, phases)) <= 0.0:
            # a shadow right after a start at this power could not be cut in time: start lower, at
            # what the rest of the window can carry through a full shadow (on 1p if 3p cannot),
            # rather than leave the car standing in the sun until the window frees up
            left_wh = max(0.0, cfg.window_allowance_wh - self.window.used_wh(now))
            cap_w = left_wh * 3600.0 / self._lag_s(self._dt)
            if cfg.phases == "auto" and amps_for(cap_w, cfg.voltage_v, phases) < self.settings.min_current_a:
                phases = 1
            start_a = min(start_a, amps_for(min(cap_w, available_w), cfg.voltage_v, phases))
            if start_a < self.settings.min_current_a:
                return self._set(False, f"pv: surplus {available_w:.0f} W, but {self.window.used_wh(now):.1f} of "
                                        f"{cfg.window_allowance_wh:g} Wh import allowance used in "
                                        f"{cfg.allowance_window_s:g} s")
        if phases != self.setting.phases:
            self._switch_phases(now, phases, available_w, charging=False)
        self.setting.current_a = start_a
        self._settle_until = now + cfg.settle_s
        self._deficit_wh, self._deficit_since, self._enable_since = 0.0, None, None
        return self._set(True, f"pv: start, surplus {available_w:.0f} W on {phases}p")

    def _stop(self, now: float, reason: str) -> Setting:
        if self.setting.enabled:
            self._stopped_at = now
        self._up_since = self._down_since = None  # phase timers start afresh with the next start
        self._enable_since = None
        self._deficit_wh, self._deficit_since = 0.0, None
        return self._set(False, reason)

    def _set(self, enabled: bool, reason: str) -> Setting:
        s = self.setting
        s.enabled = enabled
        s.current_a = self._clamp(s.current_a)  # limits may have changed by command
        s.reason = reason
        commanded = (enabled, s.current_a if enabled else 0.0, int(s.phases))
        if commanded != self._commanded:
            self._commanded, self._commanded_at = commanded, self._last_now or 0.0
        return s

    def _stale_view(self, now: float, charger: ChargerView) -> bool:
        """The charger's reading predates the last change of the setting, or does not show it yet
        (commands take seconds; readings come every few): decisions must not mix it with a fresh
        meter reading. After 2 x resync_s the reading is believed (a refused or lost command)."""
        if now - self._commanded_at > 2 * self.cfg.resync_s or charger.at is None:
            return False
        if charger.at < self._commanded_at:
            return True
        enabled, current, phases = self._commanded
        if charger.enabled is not None and charger.enabled != enabled:
            return True
        if enabled and charger.set_current_a is not None and charger.set_current_a != current:
            return True
        if enabled and charger.phases is not None and charger.phases != phases:
            return True
        # shows the setting but not yet its draw: right after a start or a phase switch the car
        # pauses and ramps while the meter may already show it drawing
        return enabled and now < self._settle_until and (charger.power_w or 0.0) < self.power_at(current, phases) / 2

