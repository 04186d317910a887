"""The local store integrates each device by its readings' own timestamps (energy.py, tracks.py).

Real SiteState, Roles, History and sqlite Store, fed bus messages as the service receives them;
only the arrival order is staged: a stall between two devices' readings at a power change, a
reading twice, a late one, a device gone quiet, a clock that jumps back, a counter reset.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from wattbus import messages as m
from wattbus import topics
from wattbus.counters import Counters
from wattbus.delivery import Message
from wattbus.log import get_logger
from wattbus.site import SiteConfig
from wattbus_http_api.energy import History
from wattbus_http_api.flows import Roles, flow
from wattbus_http_api.sessions import SessionTracker
from wattbus_http_api.state import SiteState
from wattbus_http_api.store import Store

T0 = 1_800_000_000.0 + 100  # inside one 15-minute bucket (1_800_000_000 is a bucket edge)
SITE = SiteConfig(grid="s/meter", pv=["s/pv"], battery=["s/bat"], chargers=["s/ev"])


class Site:
    def __init__(self, path: Path) -> None:
        self.state = SiteState(Counters(), get_logger("test"))
        roles = Roles(self.state, SITE)
        self.store = Store(path)
        self.wall = T0
        self.history = History(self.state, roles, lambda now: flow(self.state, roles, now, 60.0), self.store,
                               SessionTracker(self.state, self.store), 60.0, clock=lambda: self.wall)
        self.state.listeners.append(self.history.sample)

    def send(self, reading: m.ReadingBase) -> None:
        self.wall = max(self.wall, reading.timestamp.timestamp())
        self.state.on_reading(Message(topics.device_reading("s", reading.device_id), reading))  # type: ignore[arg-type]

    def totals(self) -> dict[str, float]:
        self.history.flush()
        return {series: round(wh, 6) for series, wh in self.store.sums(T0 - 3600, T0 + 7200)}


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def house(t: float, pv: float, grid: float, bat: float, ev: float) -> dict[str, m.ReadingBase]:
    return {"pv": m.InverterReading(device_id="pv", timestamp=at(t), power_w=pv),
            "meter": m.MeterReading(device_id="meter", timestamp=at(t), power_w=grid),
            "bat": m.BatteryReading(device_id="bat", timestamp=at(t), power_w=bat),
            "ev": m.ChargerReading(device_id="ev", timestamp=at(t), power_w=ev)}


def trapezoid(points: Iterable[tuple[float, float]]) -> float:
    """Wh between consecutive (t, W) points."""
    pts = list(points)
    return sum((p0 + p1) / 2 * (t1 - t0) for (t0, p0), (t1, p1) in itertools.pairwise(pts)) / 3600


def test_a_stall_between_two_devices_readings_changes_nothing(tmp_path: Path) -> None:
    # 20 s of readings each second; at 10 s PV drops and the grid takes over. The meter's readings
    # from 10 s on arrive only after PV's of 10-15 s (the process stalled on them).
    rows = [(T0 + i, *((5000.0, -2000.0, -1000.0, 0.0) if i < 10 else (1500.0, 1200.0, 800.0, 3000.0)))
            for i in range(21)]
    late: list[m.ReadingBase] = []
    site = Site(tmp_path / "h.sqlite3")
    for t, pv, grid, bat, ev in rows:
        readings = house(t, pv, grid, bat, ev)
        for name, reading in readings.items():
            if name == "meter" and T0 + 10 <= t <= T0 + 15:
                late.append(reading)
            else:
                site.send(reading)
        if t == T0 + 15:
            for reading in late:
                site.send(reading)
    got = site.totals()
    columns = {"pv": 1, "grid": 2, "bat": 3, "ev": 4}
    net = {role: trapezoid((r[0], r[col]) for r in rows) for role, col in columns.items()}
    pos = {role: trapezoid((r[0], max(r[col], 0.0)) for r in rows) for role, col in (("grid", 2), ("bat", 3))}
    expected = {"pv_wh": net["pv"], "ev_wh": net["ev"], "grid_import_wh": pos["grid"],
                "grid_export_wh": pos["grid"] - net["grid"], "battery_discharge_wh": pos["bat"],
                "battery_charge_wh": pos["bat"] - net["bat"],
                "home_wh": net["pv"] + net["grid"] + net["bat"] - net["ev"]}
    assert got == {k: round(v, 6) for k, v in expected.items()}, (got, expected)
    # The curve: each minute's mean of the readings by their own time, home from the means' flow.
    minutes: dict[int, list[tuple[float, ...]]] = {}
    for row in rows:
        minutes.setdefault(int(row[0] // 60) * 60, []).append(row)
    means = {t: [sum(r[c] for r in got_rows) / len(got_rows) for c in (1, 2, 3, 4)] for t, got_rows in minutes.items()}
    curve = [(t, [round(v, 1) for v in (*w, w[0] + w[1] + w[2] - w[3])]) for t, w in sorted(means.items())]
    assert [(t, list(v)) for t, v in site.store.curve(T0 - 3600, T0 + 3600)] == curve


def test_repeats_late_readings_gaps_clock_jumps_and_counter_resets(tmp_path: Path) -> None:
    site = Site(tmp_path / "h.sqlite3")

    def pv(t: float, watts: float, total: float | None = None) -> m.InverterReading:
        return m.InverterReading(device_id="pv", timestamp=at(t), power_w=watts, energy_total_wh=total)

    site.send(pv(T0, 3600.0))
    site.send(pv(T0 + 10, 3600.0))  # 10 s at 3.6 kW: 10 Wh
    site.send(pv(T0 + 10, 3600.0))  # the same reading again: nothing
    site.send(pv(T0 + 5, 3600.0))  # a late one: dropped, not integrated backwards
    site.send(pv(T0 + 20, 3600.0))  # +10 Wh
    site.send(pv(T0 + 500, 3600.0))  # 480 s without readings (> max_gap_s 120 s): not guessed
    site.send(pv(T0 + 510, 3600.0))  # +10 Wh
    site.send(pv(T0 + 100, 3600.0))  # the device's clock jumps back 410 s: starts afresh
    site.send(pv(T0 + 110, 3600.0))  # +10 Wh
    assert site.totals()["pv_wh"] == 40.0
    # With its lifetime counter the counter's difference counts, a reset is no energy (never negative).
    site.send(pv(T0 + 120, 3600.0, 1000.0))  # +10 Wh by its power: no counter in the reading before
    site.send(pv(T0 + 130, 3600.0, 1012.0))  # +12 Wh counted (the power would say 10)
    site.send(pv(T0 + 140, 3600.0, 3.0))  # the counter was reset: nothing
    site.send(pv(T0 + 150, 3600.0, 5.0))  # +2 Wh
    assert site.totals()["pv_wh"] == 64.0
