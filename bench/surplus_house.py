"""A house for the surplus benchmark, stepped second by second in simulated time.

PV from measured irradiance (surplus_sun.py); household base load 300-600 W (a slow swing plus
noise), a 100 W fridge (10 min on in every 30), a 2 kW kettle 4 times a day for 2-4 minutes at
seeded random times; optionally a 10 kWh / 3.5 kW self-consumption battery (starts at 50 %,
follows the grid balance one second late, lossless); a go-e-like charger that applies each command
2-5 s after it was sent (seeded), pauses 10 s when it switches phases under load, and reports its
power and settings every 5 s (the controller sees readings up to 5 s old); a meter reading every
2 s and a battery reading every 5 s. The car takes whatever it is offered all day.

A controller is anything with `meter(now, grid_w)`, `battery(now, power_w, soc)` and
`charger(now, view)` that returns the setting it wants after each meter reading.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from wattbus_surplus_controller.model import ChargerView, Setting

from bench.surplus_sun import WINDOW_H, Day

V = 230.0


class Driver(Protocol):
    def meter(self, now: float, grid_w: float) -> Setting: ...
    def battery(self, now: float, power_w: float, soc: float) -> None: ...
    def charger(self, now: float, view: ChargerView) -> None: ...


@dataclass
class Household:
    seed: int
    kettles: list[tuple[float, float]] = field(default_factory=list)  # (start s, duration s)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        self.phase = rng.uniform(0, 2 * math.pi)
        self.fridge_offset = rng.uniform(0, 1800)
        self.kettles = [(rng.uniform(600, WINDOW_H * 3600 - 600), rng.uniform(120, 240)) for _ in range(4)]
        self.noise = [rng.uniform(-20, 20) for _ in range(int(WINDOW_H * 3600) + 2)]

    def load_w(self, t: float) -> float:
        base = 450.0 + 150.0 * math.sin(2 * math.pi * t / 5400.0 + self.phase) + self.noise[int(t)]
        fridge = 100.0 if (t + self.fridge_offset) % 1800.0 < 600.0 else 0.0
        kettle = 2000.0 if any(s <= t < s + d for s, d in self.kettles) else 0.0
        return base + fridge + kettle


@dataclass
class Charger:
    """What the charger does (applied) versus what it was told (pending, with arrival times)."""

    rng: random.Random
    enabled: bool = False
    current_a: float = 6.0
    phases: int = 3
    pause_until: float = -1.0
    pending: list[tuple[float, bool, float, int]] = field(default_factory=list)
    last: tuple[bool, float, int] | None = None
    starts_stops: int = 0
    phase_switches: int = 0

    def command(self, now: float, s: Setting) -> None:
        wanted = (s.enabled, s.current_a, int(s.phases))
        if wanted != self.last:
            self.last = wanted
            self.pending.append((now + self.rng.uniform(2.0, 5.0), *wanted))

    def step(self, now: float) -> None:
        while self.pending and self.pending[0][0] <= now:
            _, enabled, current, phases = self.pending.pop(0)
            if enabled != self.enabled:
                self.starts_stops += 1
            if phases != self.phases and self.enabled and enabled:
                self.phase_switches += 1
                self.pause_until = now + 10.0  # contactors open, the car re-negotiates
            self.enabled, self.current_a, self.phases = enabled, current, phases

    def power_w(self, now: float) -> float:
        return self.current_a * V * self.phases if self.enabled and now >= self.pause_until else 0.0


@dataclass
class Result:
    ev_pv_kwh: float = 0.0
    ev_grid_kwh: float = 0.0
    ev_battery_kwh: float = 0.0
    surplus_kwh: float = 0.0
    battery_delta_kwh: float = 0.0
    starts_stops: int = 0
    phase_switches: int = 0
    reactions: list[float] = field(default_factory=list)


def simulate(day: Day, driver: Driver, with_battery: bool, seed: int) -> Result:
    rng = random.Random(seed)
    house = Household(seed)
    charger = Charger(rng)
    soc, cap_wh, max_w = 50.0, 10_000.0, 3500.0
    soc0 = soc
    bat_w = 0.0  # + discharge, - charge (the bus convention)
    res = Result()
    edge_at: float | None = None  # a cloud edge waiting for the controller's reaction
    short_since = -1e9
    last_setting: tuple[bool, float, int] = (False, 0.0, 3)
    end = int(WINDOW_H * 3600)
    for t in range(end):
        now = float(t)
        charger.step(now)
        pv, load = day.pv_w(now), house.load_w(now)
        ev = charger.power_w(now)
        if with_battery:
            want = max(-max_w, min(max_w, load + ev - pv))
            if (want < 0 and soc >= 100.0) or (want > 0 and soc <= 5.0):
                want = 0.0
            bat_w = 0.5 * bat_w + 0.5 * want  # the inverter follows within a second or two
        grid = load + ev - pv - bat_w
        soc -= bat_w / cap_wh * 100.0 / 3600.0
        surplus = max(0.0, pv - load)
        from_pv = min(ev, surplus)
        from_bat = min(ev - from_pv, max(0.0, bat_w))
        res.ev_pv_kwh += from_pv / 3.6e6
        res.ev_battery_kwh += from_bat / 3.6e6
        res.ev_grid_kwh += (ev - from_pv - from_bat) / 3.6e6
        res.surplus_kwh += surplus / 3.6e6
        # a cloud edge: the surplus falls 1 kW or more below what the car draws above its minimum
        # current (at the minimum, only 1p or a stop is left: the ride-through policy, not a cut)
        short = ev > 0 and charger.current_a > 6.0 and pv - load < ev - 1000.0
        if short and edge_at is None and now - short_since > 60.0:
            edge_at = now
        if short:
            short_since = now
        if t % 5 == 0:
            driver.charger(now, ChargerView(ev, "charging" if charger.enabled else "connected",
                                            charger.current_a, charger.phases, charger.enabled, now))
            if with_battery:
                driver.battery(now, bat_w, soc)
        if t % 2 == 0:
            s = driver.meter(now, grid)
            wanted = (s.enabled, s.current_a if s.enabled else 0.0, int(s.phases))
            lower = (not s.enabled and last_setting[0]) or (s.enabled and wanted[1] * wanted[2] <
                                                             last_setting[1] * last_setting[2])
            if edge_at is not None and lower:
                res.reactions.append(now - edge_at)
                edge_at = None
            if edge_at is not None and now - edge_at > 600.0:
                edge_at = None  # never reacted within 10 minutes: counted as 600 s
                res.reactions.append(600.0)
            last_setting = wanted
            charger.command(now, s)
    res.battery_delta_kwh = (soc - soc0) / 100.0 * cap_wh / 1000.0 if with_battery else 0.0
    res.starts_stops, res.phase_switches = charger.starts_stops, charger.phase_switches
    return res


def foresight_kwh(day: Day, seed: int) -> float:
    """Perfect foresight without import: each second the largest whole-amp 6-16 A setting on 1p or
    3p not above the surplus, no ramps, no pauses."""
    house = Household(seed)
    settable = sorted({a * V * p for a in range(6, 17) for p in (1, 3)})
    total = 0.0
    for t in range(int(WINDOW_H * 3600)):
        surplus = day.pv_w(float(t)) - house.load_w(float(t))
        total += max((w for w in settable if w <= surplus), default=0.0)
    return total / 3.6e6


Factory = Callable[[bool], Driver]
