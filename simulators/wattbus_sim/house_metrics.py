"""What a surplus controller achieved on a simulated day, and what a perfect one could have.

Per simulated second: the PV surplus (PV minus household load, before battery, EV and relays),
the EV's power, the grid. A cloud event is a surplus drop of at least 1 kW within a minute that
leaves the EV (above its minimum current) drawing more than the surplus; its reaction time is the
seconds until the charger was told less (lower offer, stop or phase switch). Events the sun ends
by itself are not counted. The worst window is the most grid energy imported while the car
charged in any `window_s` (600 s) stretch: what a controller's import allowance must bound.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

from .house import House
from .house_ev import MIN_CURRENT_A, VOLTAGE_V


@dataclass
class DayMetrics:
    surplus_wh: float = 0.0
    ev_wh: float = 0.0
    ev_from_surplus_wh: float = 0.0
    import_while_charging_wh: float = 0.0
    reactions_s: list[float] = field(default_factory=list)
    window_s: int = 600
    worst_window_wh: float = 0.0
    _window: deque[float] = field(default_factory=deque)  # Wh per second of the last window_s seconds
    _window_wh: float = 0.0
    _history: deque[float] = field(default_factory=lambda: deque(maxlen=61))
    _event: tuple[float, tuple[float, bool, int]] | None = None  # start, charger setting then

    def record(self, house: House) -> None:
        surplus = house.surplus_w()
        ev = house.charger.power_w()
        dt = 1.0 / 3600.0
        self.surplus_wh += max(0.0, surplus) * dt
        self.ev_wh += ev * dt
        self.ev_from_surplus_wh += min(ev, max(0.0, surplus)) * dt
        imported = max(0.0, house.grid_power_w()) * dt if ev > 0 else 0.0
        self.import_while_charging_wh += imported
        self._window.append(imported)
        self._window_wh += imported
        if len(self._window) > self.window_s:
            self._window_wh -= self._window.popleft()
        self.worst_window_wh = max(self.worst_window_wh, self._window_wh)
        self._track_cloud(house, surplus, ev)
        self._history.append(surplus)

    def _track_cloud(self, house: House, surplus: float, ev: float) -> None:
        c = house.charger
        setting = (c.offered_a, c.enabled, c.phases)
        if self._event is not None:
            start, before = self._event
            if setting != before and (setting[0] < before[0] or not setting[1] or setting[2] != before[2]):
                self.reactions_s.append(house.time_s - start)
                self._event = None
            elif surplus >= ev or ev == 0:
                self._event = None  # the sun came back first (or the car stopped by itself)
            return
        dropped = bool(self._history) and max(self._history) - surplus >= 1000
        if ev > 0 and c.offered_a > MIN_CURRENT_A and surplus < ev - 300 and dropped:
            self._event = (house.time_s, setting)

    def table_row(self) -> dict[str, float]:
        share = 100.0 * self.ev_from_surplus_wh / self.surplus_wh if self.surplus_wh else 0.0
        return {"surplus_kwh": self.surplus_wh / 1000, "ev_kwh": self.ev_wh / 1000, "share_pct": share,
                "import_wh": self.import_while_charging_wh, "worst_window_wh": self.worst_window_wh,
                "reaction_s": statistics.median(self.reactions_s) if self.reactions_s else float("nan"),
                "cloud_events": float(len(self.reactions_s))}


def levels_w(min_a: float = MIN_CURRENT_A, max_a: float = 16.0) -> list[float]:
    """Every power a charger can be set to: whole amps on one or three phases."""
    amps = range(int(min_a), int(max_a) + 1)
    return sorted({a * VOLTAGE_V * p for a in amps for p in (1, 3)})


def foresight_bound(profile: str, start: str, end_s: float, max_a: float = 16.0) -> tuple[float, float, float]:
    """(surplus Wh, EV Wh an ideal controller absorbs without any import, EV Wh absorbed when it
    may import to bridge the surplus up to the minimum power). Perfect foresight, no ramps or
    pauses, until the car is full: without import each second the largest settable power (whole
    amps, 1p or 3p) not above the surplus; with import all of the surplus up to the maximum."""
    house = House.from_profile(profile, start, with_heater=False)
    levels = levels_w(MIN_CURRENT_A, max_a)
    ev = house.profile.ev
    room_wh = ev.capacity_wh * (100.0 - ev.soc_pct) / 100.0 / 0.92 if ev else 0.0
    surplus_wh = strict_wh = bridged_wh = 0.0
    while house.time_s < end_s:
        house.step(1.0)
        surplus = max(0.0, house.surplus_w())
        surplus_wh += surplus / 3600.0
        if house.charger.ev is None:
            continue
        best = max((lv for lv in levels if lv <= surplus), default=0.0)
        strict_wh += min(best / 3600.0, max(0.0, room_wh - strict_wh))
        bridged_wh += min(min(surplus, levels[-1]) / 3600.0, max(0.0, room_wh - bridged_wh))
    return surplus_wh, strict_wh, bridged_wh
