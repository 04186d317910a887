"""Charging sessions from the surplus controller's loadpoint states and the site's flow at the time.

A session runs while the controller reports a car at the loadpoint (`session_duration_s` set, status
not `no_vehicle`); it starts when the car was plugged in (now - session_duration_s). Its energy is
the charger's session counter (`session_energy_wh`), else what the history credits the charger's
device with between its readings (tracks.py, by the readings' own timestamps: its lifetime counter's
difference, else its power by the trapezoid rule), so a session and the history's EV energy agree
on the same readings. The share from PV: each such step is taken to draw the same mix as the whole
site at the step's reading, PV / (PV + grid import + battery discharge) of the roles' devices' last
readings; a step without a current reading of each role (a device gone quiet) is left out, as is one
while the controller's word is old. Cost, with a tariff set, prices the grid part at
`grid_price_per_kwh` and the PV part at `feed_in_per_kwh` (the export it replaced).
"""

from __future__ import annotations

import csv
import io
import time
from datetime import datetime
from typing import Any

from .live import loadpoint_problem
from .state import SiteState
from .store import Session, Store
from .tracks import Step

RESUME_S = 120.0  # a stored open session this close to the reported plug-in time is the same one


def pv_fraction(pv_w: float | None, grid_w: float | None, battery_w: float | None) -> float | None:
    """The share of PV in what the site draws; None when a role's power is not known."""
    if pv_w is None or grid_w is None or battery_w is None:
        return None
    sources = max(pv_w, 0.0) + max(grid_w, 0.0) + max(battery_w, 0.0)
    return max(pv_w, 0.0) / sources if sources > 0 else None


class SessionTracker:
    def __init__(self, state: SiteState, store: Store, grid_price_per_kwh: float | None = None,
                 feed_in_per_kwh: float = 0.0, currency: str = "EUR") -> None:
        self.state, self.store = state, store
        self.price, self.feed_in, self.currency = grid_price_per_kwh, feed_in_per_kwh, currency
        self.open: dict[str, Session] = {}
        # Sessions left open by the last run: resumed when the controller still reports the same car.
        self.stored: dict[str, Session] = {s.loadpoint_id: s for s in store.open_sessions()}
        self._dirty: dict[int, Session] = {}

    def _touch(self, session: Session) -> None:
        self._dirty[id(session)] = session

    def dirty(self) -> list[Session]:
        out = list(self._dirty.values())
        self._dirty = {}
        return out

    def update(self, wall: float) -> None:
        mono = time.monotonic()
        for lp_id, (lp, at) in self.state.loadpoints.items():
            # when this state arrived: a controller that stopped leaves its last (retained) state
            # behind, and a session must not grow on it
            seen = wall - (mono - at)
            plugged = lp.session_duration_s is not None and lp.status != "no_vehicle"
            stored = self.stored.pop(lp_id, None)
            if stored is not None and not (plugged and abs(stored.start - (seen - (lp.session_duration_s or 0)))
                                           < RESUME_S):
                stored.end = stored.last  # the car left while the http-api was not watching
                self._touch(stored)
                stored = None
            session = self.open.get(lp_id)
            if plugged:
                if session is None:
                    session = stored or Session(None, lp_id, lp.charger_id, seen - (lp.session_duration_s or 0.0),
                                                None, seen, None)
                    self.open[lp_id] = session
                session.last = max(session.last, seen)
                if lp.session_energy_wh is not None:
                    session.energy_wh = lp.session_energy_wh
                self._touch(session)
            elif session is not None:
                session.end = session.last
                self._touch(self.open.pop(lp_id))

    def credit(self, charger_id: str, step: Step, power_w: float | None, pv_w: float | None,
               grid_w: float | None, battery_w: float | None) -> None:
        """A charger's step between two of its readings (energy.py's, tracks.py), with the site's
        powers at its later reading, credited to the open session at that charger."""
        wh = step.counted.get("ev_wh", step.net_wh)  # its lifetime counter beats the integration
        fraction = pv_fraction(pv_w, grid_w, battery_w)
        if wh is None or fraction is None or loadpoint_problem(self.state, time.monotonic()) is not None:
            return  # no current mix, or the controller's word on who is plugged in is old
        for session in self.open.values():
            if session.charger_id == charger_id:
                session.ev_wh += wh
                session.pv_wh += wh * fraction
                session.max_power_w = max(session.max_power_w, power_w or 0.0)

    # ------------------------------------------------------------------ documents

    def doc(self, session: Session) -> dict[str, Any]:
        energy = session.energy_wh if session.energy_wh is not None else session.ev_wh
        share = session.pv_wh / session.ev_wh if session.ev_wh > 0 else None
        cost = None
        if self.price is not None and share is not None:
            kwh = energy / 1000.0
            cost = round(kwh * (1 - share) * self.price + kwh * share * self.feed_in, 4)
        end = session.end if session.end is not None else session.last
        return {"id": session.id, "loadpoint_id": session.loadpoint_id, "charger_id": session.charger_id,
                "start": _iso(session.start), "end": None if session.end is None else _iso(session.end),
                "active": session.end is None, "duration_s": round(end - session.start),
                "energy_wh": round(energy, 1), "energy_source": "charger" if session.energy_wh is not None
                else "integrated", "pv_share": None if share is None else round(share, 4),
                "pv_wh": None if share is None else round(energy * share, 1),
                "max_power_w": round(session.max_power_w), "cost": cost,
                "currency": self.currency if cost is not None else None}

    def documents(self, limit: int) -> list[dict[str, Any]]:
        return [self.doc(s) for s in self.store.sessions(limit)]


CSV_FIELDS = ("id", "loadpoint_id", "charger_id", "start", "end", "duration_s", "energy_wh", "energy_source",
              "pv_share", "pv_wh", "max_power_w", "cost", "currency")


def to_csv(docs: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_FIELDS, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for doc in docs:
        writer.writerow({k: _cell(doc.get(k)) for k in CSV_FIELDS})
    return out.getvalue()


def _cell(value: Any) -> Any:
    """A spreadsheet must not run a name from the bus as a formula (CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")
