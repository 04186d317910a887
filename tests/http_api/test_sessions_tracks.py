"""A charging session takes its energy and PV share from the same per-device tracks as the history
(sessions.py, energy.py, tracks.py): the charger's steps by its readings' own timestamps, so a stall,
a repeated or a late reading changes neither, and the session's energy is the history's EV energy.
Real SiteState, History and sqlite Store (test_history_tracks.Site), fed bus messages."""

from __future__ import annotations

import itertools
from pathlib import Path

from wattbus import messages as m
from wattbus import topics
from wattbus.delivery import Message

from tests.http_api.test_history_tracks import T0, Site, house


def test_a_session_agrees_with_the_history_on_the_same_readings(tmp_path: Path) -> None:
    # 20 s of readings each second; at 10 s PV drops, the car draws more, grid and battery supply it.
    rows = [(T0 + i, *((5000.0, -2000.0, -1000.0, 2000.0) if i < 10 else (1500.0, 1200.0, 800.0, 3000.0)))
            for i in range(21)]
    site = Site(tmp_path / "h.sqlite3")
    car = m.LoadpointState(loadpoint_id="garage", mode="pv", charger_id="ev", charging=True, power_w=0.0,
                           session_duration_s=60.0, status="charging_from_surplus")
    site.state.on_loadpoint(Message(topics.loadpoint_state("garage"), car))  # type: ignore[arg-type]
    late: list[m.ReadingBase] = []
    for t, pv, grid, bat, ev in rows:
        readings = house(t, pv, grid, bat, ev)
        for name, reading in readings.items():
            if name == "ev" and T0 + 10 <= t <= T0 + 15:
                late.append(reading)  # the charger's readings of 10-15 s arrive after the others' (a stall)
            else:
                site.send(reading)
        if t == T0 + 15:
            for reading in [*late, late[2]]:  # and one of them twice: nothing more
                site.send(reading)
        if t == T0 + 17:
            site.send(house(T0 + 4, 0, 0, 0, 9999.0)["ev"])  # a late one: dropped
    history = site.totals()
    (session,) = site.history.sessions.open.values()
    # each charger step by the trapezoid rule, at the site's mix of its later reading
    ev_wh = pv_wh = 0.0
    for (t0, *_, ev0), (t1, pv, grid, bat, ev1) in itertools.pairwise(rows):
        wh = (ev0 + ev1) / 2 * (t1 - t0) / 3600
        ev_wh += wh
        pv_wh += wh * pv / (pv + max(grid, 0.0) + max(bat, 0.0))
    assert round(session.ev_wh, 6) == history["ev_wh"] == round(ev_wh, 6), (session, history)
    assert abs(session.pv_wh - pv_wh) < 1e-9 and session.max_power_w == 3000.0, (session, pv_wh)
    doc = site.history.sessions.doc(session)
    assert doc["energy_source"] == "integrated" and doc["pv_share"] == round(pv_wh / ev_wh, 4), doc
