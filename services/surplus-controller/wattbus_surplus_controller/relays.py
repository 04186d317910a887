"""Shelly relays as surplus loads (iotic's relay and thermal strategies).

Relays share what the loadpoints leave, highest priority first. A relay switches on when the
surplus covers its power plus `on_threshold_w`, off when keeping it on would import more than
`off_threshold_w`; minimum on and off times protect the load and the relay. With
`max_temperature_c`, a reported temperature at or above it switches the relay off at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import RelayConfig


@dataclass
class RelayView:
    on: bool | None = None
    power_w: float | None = None
    temperature_c: float | None = None


class SurplusRelay:
    def __init__(self, cfg: RelayConfig) -> None:
        self.cfg = cfg
        self.on = False
        self.changed_at: float | None = None
        self.reason = "starting"

    def draw_w(self, view: RelayView) -> float:
        """What the relay takes now: metered if it reports power, else its rating when on."""
        if not self.on:
            return 0.0
        return view.power_w if view.power_w is not None else self.cfg.power_w

    def committed_w(self, now: float, view: RelayView) -> float:
        """What the relay draws and may not be switched off for yet (minimum on time): power the
        loadpoints must not count on, or raising the car imports until the relay may go off."""
        if not self.on or self.changed_at is None or now - self.changed_at >= self.cfg.min_on_s:
            return 0.0
        return self.draw_w(view)

    def decide(self, now: float, remaining_w: float | None, view: RelayView) -> bool:
        """remaining_w: surplus left for this relay, its own present draw included (None: stale)."""
        cfg = self.cfg
        held = self.changed_at is None or now - self.changed_at >= (cfg.min_on_s if self.on else cfg.min_off_s)
        if cfg.max_temperature_c is not None and view.temperature_c is not None \
                and view.temperature_c >= cfg.max_temperature_c:
            return self._switch(now, False, f"temperature {view.temperature_c:g} °C reached {cfg.max_temperature_c:g}")
        if remaining_w is None:
            return self._switch(now, False, "grid data stale: safe state off")
        if self.on:
            if remaining_w - self.cfg.power_w < -cfg.off_threshold_w and held:
                return self._switch(now, False, f"surplus {remaining_w:.0f} W no longer covers it")
            self.reason = f"on, surplus {remaining_w:.0f} W"
            return True
        if remaining_w >= cfg.power_w + cfg.on_threshold_w and held:
            return self._switch(now, True, f"surplus {remaining_w:.0f} W covers {cfg.power_w:g} W")
        self.reason = f"off, surplus {remaining_w:.0f} W"
        return False

    def _switch(self, now: float, on: bool, reason: str) -> bool:
        if on != self.on:
            self.on, self.changed_at = on, now
        self.reason = reason
        return on
