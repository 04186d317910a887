"""The site's energy and power over time, recorded into the local store (store.py).

Energy per 15-minute bucket and series comes from each device of a role by its readings' own
timestamps (tracks.py): the difference of its lifetime counter where it sends one (PV total, grid
import/export, battery charge/discharge, charger total), else its power integrated (trapezoid,
as InfluxDB's integral()); a stall of this process between two devices' readings changes nothing.
Home (no meter measures it) is the roles' energies' flow in each bucket, pv + grid + battery - ev,
where the grid and every role with devices sent readings, as influx_history.py computes it.
Gaps longer than max_gap_s (service or bus down) are not guessed: that part of the day stays
empty. The power curve keeps each minute's mean of the readings (tracks.Minutes), as InfluxDB's
curve is read. Charging sessions take each charger step and the site's mix from the same tracks
(sessions.py). Writes are batched (flush_interval_s) and flushed on shutdown, so a restart loses
nothing that was recorded; the last counter readings are stored too, so what a counter counted
while the http-api was not running (a restart, an update) is credited when it is back, spread evenly over the gap.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .flows import Flow, Member, Roles, aggregate
from .sessions import SessionTracker
from .state import SiteState
from .store import Store
from .tracks import MAX_SITE_W as MAX_SITE_W  # influx_history.py applies the same rule
from .tracks import Minutes, Step, Track, role_w

BUCKET_S = 900
SERIES = ("pv_wh", "home_wh", "ev_wh", "grid_import_wh", "grid_export_wh", "battery_charge_wh",
          "battery_discharge_wh")
# series -> (role, lifetime counter field)
COUNTERS = {"pv_wh": ("pv", "energy_total_wh"), "grid_import_wh": ("grid", "energy_import_wh"),
            "grid_export_wh": ("grid", "energy_export_wh"), "battery_charge_wh": ("battery", "energy_charge_wh"),
            "battery_discharge_wh": ("battery", "energy_discharge_wh"), "ev_wh": ("ev", "energy_total_wh")}
# role -> (the series of its positive power, of its negative power); pv and ev have no negative part
ROLE_SERIES = {"pv": ("pv_wh", None), "grid": ("grid_import_wh", "grid_export_wh"),
               "battery": ("battery_discharge_wh", "battery_charge_wh"), "ev": ("ev_wh", None)}
# home = pv + grid + battery - ev (flows.py) in the series' Wh
HOME_SUM = (("pv_wh", 1), ("grid_import_wh", 1), ("grid_export_wh", -1), ("battery_discharge_wh", 1),
            ("battery_charge_wh", -1), ("ev_wh", -1))
BRIDGE_MAX_S = 31 * 86400  # a longer downtime is not bridged (the device may have been replaced)
BRIDGE_WINDOW_S = 120.0  # after start, counters have this long to appear before the gap stays empty


def parts(f: Flow) -> dict[str, float | None]:
    """The flow as the power behind each energy series (W)."""
    grid, battery = f.grid_w, f.battery_w
    return {
        "pv_wh": f.pv_w, "home_wh": f.home_w, "ev_wh": f.ev_w,
        "grid_import_wh": None if grid is None else max(grid, 0.0),
        "grid_export_wh": None if grid is None else max(-grid, 0.0),
        "battery_charge_wh": None if battery is None else max(-battery, 0.0),
        "battery_discharge_wh": None if battery is None else max(battery, 0.0),
    }


class History:
    def __init__(self, state: SiteState, roles: Roles, compute: Callable[[float], Flow], store: Store,
                 sessions: SessionTracker, stale_s: float, min_step_s: float = 0.25, max_gap_s: float = 120.0,
                 flush_interval_s: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        self.state, self.roles, self.compute, self.store = state, roles, compute, store
        self.sessions = sessions
        self.stale_s, self.min_step_s, self.max_gap_s = stale_s, min_step_s, max_gap_s
        self.flush_interval_s = flush_interval_s
        self.clock = clock  # wall clock (Unix s): where a bucket starts
        self._last: tuple[float, Flow] | None = None
        self._tracks: dict[str, Track] = {}  # "source/device:field" -> its last reading
        self._roles: dict[int, dict[str, float]] = {}  # recent bucket -> role (present) and series -> Wh
        self._home_written: dict[int, float] = {}  # recent bucket -> home Wh written so far
        self._energy: dict[tuple[int, str], float] = {}  # not yet written
        self._minutes = Minutes()
        self._flushed = self._started = time.monotonic()
        self._seen: dict[str, tuple[float, float]] = {}  # series -> the last counter value, when (Unix s)
        self._bridge = store.counters()  # the last values the previous run saw

    def _members(self, role: str) -> list[Member]:
        return {"pv": self.roles.pv, "grid": self.roles.grid, "battery": self.roles.battery,
                "ev": self.roles.chargers}[role]()

    def _counters(self, now: float) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for series, (role, name) in COUNTERS.items():
            members = self._members(role)
            value = aggregate(self.state, members, name, now, self.stale_s) if members else None
            out[series] = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        return out

    def sample(self, mono: float | None = None) -> None:
        mono = time.monotonic() if mono is None else mono
        wall = self.clock()
        self._readings(wall)  # every reading counts, also those between two samples
        if self._last is not None and mono - self._last[0] < self.min_step_s:
            self.sessions.update(wall)  # every loadpoint state counts: the last one before a car leaves
            return
        current, counters = self.compute(mono), self._counters(mono)
        self._seen.update({series: (value, wall) for series, value in counters.items() if value is not None})
        if self._bridge:
            self._bridge_gap(mono, wall, counters)
        self.sessions.update(wall)
        self._last = (mono, current)
        if mono - self._flushed >= self.flush_interval_s:
            self.flush()

    def _readings(self, wall: float) -> None:
        """Integrate each role's devices by their readings' own timestamps (readings.py)."""
        for role in ROLE_SERIES:
            for member in self._members(role):
                reading = member.record.reading
                if reading is None:
                    continue
                key = f"{member.record.ref}:{member.field}"
                counters = {series: name for series, (r, name) in COUNTERS.items() if r == role}
                track = self._tracks.setdefault(key, Track())
                before = track.at
                step = track.step(reading, member.field, counters, self.max_gap_s)
                if track.at != before and track.at is not None and track.power is not None:  # a new reading
                    self._minutes.add(self._placed(track.at, wall), role, key, track.power)
                if step is not None:
                    self._credit(role, step, wall)
                    if role == "ev":  # the session's share: the same step, the site's mix at its reading
                        mix = [role_w([self._tracks.get(f"{mb.record.ref}:{mb.field}") for mb in self._members(r)],
                                      step.at, self.max_gap_s) for r in ("pv", "grid", "battery")]
                        self.sessions.credit(member.record.device_id, step, track.power, *mix)

    def _placed(self, at: float, wall: float) -> float:
        """Where a reading goes: its own time, as InfluxDB's grains hold it (influx_history.py); a
        device clock far off ours falls back to our clock."""
        return at if abs(at - wall) <= self.max_gap_s else wall

    def _credit(self, role: str, step: Step, wall: float) -> None:
        bucket = int(self._placed(step.at, wall) // BUCKET_S) * BUCKET_S  # that of its later reading
        plus, minus = ROLE_SERIES[role]
        got: dict[str, float] = {}
        if step.net_wh is not None:
            got[plus] = step.pos_wh if minus else step.net_wh
            if minus:
                got[minus] = step.pos_wh - step.net_wh
        got.update(step.counted)  # the device's own count beats the integration of its power
        roles = self._roles.setdefault(bucket, {})
        roles[role] = roles.get(role, 0.0)
        for series, wh in got.items():
            roles[series] = roles.get(series, 0.0) + wh
            if wh:
                self._energy[(bucket, series)] = self._energy.get((bucket, series), 0.0) + wh

    def _home(self) -> None:
        """Home per bucket from the roles' energies (flows.py's sum, as influx_history.py does),
        where the grid and every role with devices sent readings; written as the change since the
        last flush, so the store's sum is the bucket's value."""
        needed = {role for role in ROLE_SERIES if self._members(role)}
        for bucket, got in self._roles.items():
            if "grid" not in got or not needed <= got.keys():
                continue
            home = max(0.0, sum(sign * got.get(series, 0.0) for series, sign in HOME_SUM))
            change = home - self._home_written.get(bucket, 0.0)
            if change:
                self._energy[(bucket, "home_wh")] = self._energy.get((bucket, "home_wh"), 0.0) + change
                self._home_written[bucket] = home
        latest = max(self._roles, default=0)
        for bucket in [b for b in self._roles if b < latest - BUCKET_S]:  # closed buckets get no readings
            self._roles.pop(bucket)
            self._home_written.pop(bucket, None)

    def _bridge_gap(self, mono: float, wall: float, counters: dict[str, float | None]) -> None:
        """Credit what each counter counted since the last run saw it, spread over the gap."""
        if mono - self._started > BRIDGE_WINDOW_S:
            self._bridge = {}
            return
        for series, value in counters.items():
            if value is None or series not in self._bridge:
                continue
            old, at = self._bridge.pop(series)
            gap = wall - at
            if not 0 < gap <= BRIDGE_MAX_S or not 0 <= value - old <= MAX_SITE_W * gap / 3600.0:
                continue  # a reset, a replaced device or a clock jump: not energy we can place
            edge = at
            while edge < wall:
                bucket = int(edge // BUCKET_S) * BUCKET_S
                upto = min(bucket + BUCKET_S, wall)
                key = (bucket, series)
                self._energy[key] = self._energy.get(key, 0.0) + (value - old) * (upto - edge) / gap
                edge = upto

    def flush(self) -> None:
        """Write what was recorded. The recent minutes are written as they stand and kept open
        (a late reading may still come); the store replaces them."""
        self._home()
        curve = self._minutes.rows({role for role in ROLE_SERIES if self._members(role)})
        self.store.write(self._energy, curve, self.sessions.dirty(), self._seen)
        self._energy = {}
        if curve:
            self._minutes.prune(curve[-1][0] - 120)
        self.store.prune_due(self.clock())  # hourly: the retention of history_*_days
        self._flushed = time.monotonic()

    def close(self) -> None:
        self.flush()
        self.store.close()
