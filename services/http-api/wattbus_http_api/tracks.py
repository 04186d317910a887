"""One device's energy between its readings, by the readings' own timestamps (energy.py).

Power is integrated by the trapezoid rule between consecutive readings, as InfluxQL's integral()
computes it on the influx-writer's points (influx_history.py), so the two stores agree on the same
readings; a process that stalls between two devices' readings no longer matters. The positive part
((|p| + p) / 2 per reading: grid import, battery discharge) is integrated alike, the negative
part is the rest. Where the reading carries a lifetime counter, its difference is the energy.

Rules for readings that are not simply the next one: the same timestamp again (a reading seen
twice, a repeated publish) adds nothing; an older one within max_gap_s (late, out of order) is
dropped; a gap longer than max_gap_s in either direction (the device or the bus was down, or its
clock jumped) is not integrated, the reading after it starts afresh.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wattbus import messages as m

from .flows import field_value

MAX_SITE_W = 200_000.0  # a counter step above this mean power is a counter reset or a swap, not energy


def _num(value: m.ExtraValue) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _pos(watts: float) -> float:
    return (abs(watts) + watts) / 2


@dataclass(frozen=True)
class Step:
    at: float  # the later reading's timestamp (Unix s)
    net_wh: float | None  # None: one of the two readings had no power
    pos_wh: float
    counted: dict[str, float]  # series -> Wh its counter counted over the step


@dataclass
class Track:
    at: float | None = None
    power: float | None = None
    counts: dict[str, float] = field(default_factory=dict)  # series -> the counter's last value

    def step(self, reading: m.ReadingBase, power_field: str, counters: dict[str, str],
             max_gap_s: float) -> Step | None:
        """The energy since the previous reading; None when there is nothing to credit."""
        at = reading.timestamp.timestamp()
        if self.at is not None and self.at - max_gap_s <= at <= self.at:
            return None  # seen already, or late
        before, before_power, before_counts = self.at, self.power, self.counts
        self.at, self.power = at, _num(field_value(reading, power_field))
        self.counts = {series: v for series, name in counters.items()
                       if (v := _num(field_value(reading, name))) is not None}
        if before is None or not 0 < at - before <= max_gap_s:
            return None
        dt_h = (at - before) / 3600.0
        counted = {}
        for series, new in self.counts.items():
            old = before_counts.get(series)
            if old is not None:  # a step beyond the site's maximum (a reset, a swap) is not energy
                counted[series] = new - old if 0 <= new - old <= MAX_SITE_W * dt_h else 0.0
        if before_power is None or self.power is None:
            return Step(at, None, 0.0, counted) if counted else None
        return Step(at, (before_power + self.power) / 2 * dt_h, (_pos(before_power) + _pos(self.power)) / 2 * dt_h,
                    counted)


def role_w(tracks: list[Track | None], at: float, max_gap_s: float) -> float | None:
    """A role's power at `at`: the sum of its devices' last readings; None when one of them has no
    reading with power within max_gap_s of it (the site's mix for a charging session, sessions.py)."""
    total = 0.0
    for track in tracks:
        if track is None or track.at is None or track.power is None or abs(track.at - at) > max_gap_s:
            return None
        total += track.power
    return total


CURVE_ROLES = ("pv", "grid", "battery", "ev")  # store.CURVE's order; home_w follows


class Minutes:
    """The power curve: per minute (of the readings' own timestamps) each role's power as the sum of
    its devices' mean readings, home from their flow, as influx_history.py reads InfluxDB's."""

    def __init__(self) -> None:
        self.open: dict[int, dict[str, dict[str, list[float]]]] = {}  # minute -> role -> device -> [sum W, n]

    def add(self, at: float, role: str, device: str, watts: float) -> None:
        acc = self.open.setdefault(int(at // 60) * 60, {}).setdefault(role, {}).setdefault(device, [0.0, 0.0])
        acc[0] += watts
        acc[1] += 1

    def rows(self, roles_with_devices: set[str]) -> list[tuple[int, list[float | None]]]:
        """Every open minute as it stands; a role without devices is 0 W in home's sum, one whose
        devices sent nothing in the minute leaves home missing (flows.py)."""
        out = []
        for minute, roles in sorted(self.open.items()):
            power = {role: sum(s / n for s, n in devices.values()) for role, devices in roles.items()}
            got = {r: power.get(r, None if r in roles_with_devices else 0.0) for r in CURVE_ROLES}
            home = None
            if "grid" in power and all(v is not None for v in got.values()):
                home = max(0.0, sum((got[r] or 0.0) * (-1 if r == "ev" else 1) for r in CURVE_ROLES))
            values = [power.get(r) for r in CURVE_ROLES] + [home]
            out.append((minute, [None if v is None else round(v, 1) for v in values]))
        return out

    def prune(self, before: int) -> None:
        for minute in [t for t in self.open if t < before]:
            del self.open[minute]
