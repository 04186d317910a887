"""The local history in one sqlite file: energy per 15 minutes and series, the power curve per
minute, charging sessions. It is what the page shows when no InfluxDB is configured, and it
survives restarts of the http-api (the in-memory "today" it replaces did not).

Times are Unix seconds (UTC); the local day is cut when reading, so a change of time zone or DST
never rewrites stored rows.

Pruning (`prune`, hourly from energy.py's flush): the per-minute curve is kept `curve_days`, the
15-minute energy `detail_days`, then summed into one row per local day and series (`days`), which
is kept `keep_days` (0: forever). Cut-offs fall on local midnights, so a day is summed whole and
the week/month/year sums read both tables alike. A new file vacuums incrementally after a prune;
in an older one sqlite reuses the freed pages, so the file stops growing either way.
"""

from __future__ import annotations

import sqlite3
from dataclasses import astuple, dataclass, fields
from datetime import date, datetime, timedelta
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS energy (
    bucket INTEGER NOT NULL, series TEXT NOT NULL, wh REAL NOT NULL, PRIMARY KEY (bucket, series));
CREATE TABLE IF NOT EXISTS curve (
    minute INTEGER PRIMARY KEY, pv_w REAL, grid_w REAL, battery_w REAL, ev_w REAL, home_w REAL);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY, loadpoint_id TEXT NOT NULL, charger_id TEXT, start REAL NOT NULL, end REAL,
    last REAL NOT NULL, energy_wh REAL, ev_wh REAL NOT NULL, pv_wh REAL NOT NULL, max_power_w REAL NOT NULL);
CREATE TABLE IF NOT EXISTS counters (series TEXT PRIMARY KEY, value REAL NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS days (
    day INTEGER NOT NULL, series TEXT NOT NULL, wh REAL NOT NULL, PRIMARY KEY (day, series));
"""
PRUNE_INTERVAL_S = 3600.0
CURVE = ("pv_w", "grid_w", "battery_w", "ev_w", "home_w")


@dataclass
class Session:
    """One plug-in of a car at a loadpoint. ev_wh and pv_wh are the charger's steps between its readings
    and the site's mix at each (sessions.py); energy_wh is the charger's own session counter."""

    id: int | None
    loadpoint_id: str
    charger_id: str | None
    start: float
    end: float | None  # None while the car is plugged in
    last: float  # the last time this session was seen (its end if the http-api stops meanwhile)
    energy_wh: float | None
    ev_wh: float = 0.0
    pv_wh: float = 0.0
    max_power_w: float = 0.0


@dataclass(frozen=True)
class Retention:
    curve_days: int = 62
    detail_days: int = 400
    keep_days: int = 0  # day totals; 0: forever


def _midnight(day: date) -> int:
    return int(datetime(day.year, day.month, day.day).timestamp())  # naive: local time


class Store:
    def __init__(self, path: Path | None, retention: Retention = Retention()) -> None:
        self.path = path
        self.retention = retention
        self.problem: str | None = None  # why the history is not kept on disk
        self.db = self._open(path)
        self.pruned_at: float | None = None

    def _open(self, path: Path | None) -> sqlite3.Connection:
        if path is None:
            self.problem = "no history_file configured: history is kept in memory until the http-api stops"
            return self._schema(sqlite3.connect(":memory:"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return self._schema(sqlite3.connect(path))
        except (OSError, sqlite3.Error) as exc:
            # The live view must not die with its history: keep it in memory and say why.
            self.problem = (f"[http-api] history_file = {str(path)!r} cannot be used ({exc}): history is kept "
                            "in memory until the http-api stops")
            return self._schema(sqlite3.connect(":memory:"))

    @staticmethod
    def _schema(db: sqlite3.Connection) -> sqlite3.Connection:
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect in a new file only
        db.execute("PRAGMA journal_mode=WAL")  # readers (the API) never wait for the writer
        db.executescript(SCHEMA)
        db.commit()
        return db

    def write(self, energy: dict[tuple[int, str], float], curve: list[tuple[int, list[float | None]]],
              sessions: list[Session], counters: dict[str, tuple[float, float]] | None = None) -> None:
        """One transaction: energy adds to what the bucket holds, curve rows, sessions and the last
        lifetime counter readings (value, when) replace."""
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO counters VALUES (?, ?, ?)",
                                [(series, value, at) for series, (value, at) in (counters or {}).items()])
            self.db.executemany(
                "INSERT INTO energy (bucket, series, wh) VALUES (?, ?, ?) "
                "ON CONFLICT (bucket, series) DO UPDATE SET wh = wh + excluded.wh",
                [(bucket, series, wh) for (bucket, series), wh in energy.items()])
            self.db.executemany("INSERT OR REPLACE INTO curve VALUES (?, ?, ?, ?, ?, ?)",
                                [(minute, *values) for minute, values in curve])
            for session in sessions:
                self._save(session)

    def _save(self, session: Session) -> None:
        names = [f.name for f in fields(Session)]
        if session.id is None:
            cursor = self.db.execute(f"INSERT INTO sessions ({', '.join(names[1:])}) VALUES "
                                     f"({', '.join('?' * (len(names) - 1))})", astuple(session)[1:])
            session.id = cursor.lastrowid
        else:
            self.db.execute(f"INSERT OR REPLACE INTO sessions VALUES ({', '.join('?' * len(names))})",
                            astuple(session))

    def energy(self, start: float, end: float) -> list[tuple[int, str, float]]:
        return self.db.execute("SELECT bucket, series, wh FROM energy WHERE bucket >= ? AND bucket < ? "
                               "ORDER BY bucket", (start, end)).fetchall()

    def sums(self, start: float, end: float) -> list[tuple[str, float]]:
        """Energy per series in [start, end), the pruned day totals included: summed by sqlite on
        the keys' ranges (a year stays fast)."""
        return self.db.execute(
            "SELECT series, SUM(wh) FROM (SELECT series, wh FROM energy WHERE bucket >= ? AND bucket < ? "
            "UNION ALL SELECT series, wh FROM days WHERE day >= ? AND day < ?) GROUP BY series",
            (start, end, start, end)).fetchall()

    def prune_due(self, now: float) -> bool:
        """Prune when it has not been done for an hour; True when it ran."""
        if self.pruned_at is not None and now - self.pruned_at < PRUNE_INTERVAL_S:
            return False
        self.prune(now)
        return True

    def prune(self, now: float) -> dict[str, int]:
        """Apply the retention as of `now`; the rows removed per table."""
        keep = self.retention
        today = datetime.fromtimestamp(now).date()
        detail_cut = _midnight(today - timedelta(days=keep.detail_days))
        removed: dict[str, int] = {}
        with self.db:
            rows = self.db.execute("SELECT bucket, series, wh FROM energy WHERE bucket < ?", (detail_cut,)).fetchall()
            totals: dict[tuple[int, str], float] = {}
            for bucket, series, wh in rows:
                key = (_midnight(datetime.fromtimestamp(bucket).date()), series)
                totals[key] = totals.get(key, 0.0) + wh
            self.db.executemany("INSERT INTO days (day, series, wh) VALUES (?, ?, ?) ON CONFLICT (day, series) "
                                "DO UPDATE SET wh = wh + excluded.wh",
                                [(day, series, wh) for (day, series), wh in totals.items()])
            removed["energy"] = self.db.execute("DELETE FROM energy WHERE bucket < ?", (detail_cut,)).rowcount
            removed["curve"] = self.db.execute(
                "DELETE FROM curve WHERE minute < ?", (_midnight(today - timedelta(days=keep.curve_days)),)).rowcount
            removed["days"] = 0
            if keep.keep_days:
                removed["days"] = self.db.execute(
                    "DELETE FROM days WHERE day < ?", (_midnight(today - timedelta(days=keep.keep_days)),)).rowcount
        if any(removed.values()):
            self.db.execute("PRAGMA incremental_vacuum")
        self.pruned_at = now
        return removed

    def curve(self, start: float, end: float) -> list[tuple[int, list[float | None]]]:
        rows = self.db.execute(f"SELECT minute, {', '.join(CURVE)} FROM curve WHERE minute >= ? AND minute < ? "
                               "ORDER BY minute", (start, end)).fetchall()
        return [(row[0], list(row[1:])) for row in rows]

    def sessions(self, limit: int) -> list[Session]:
        rows = self.db.execute("SELECT * FROM sessions ORDER BY start DESC LIMIT ?", (limit,)).fetchall()
        return [Session(*row) for row in rows]

    def counters(self) -> dict[str, tuple[float, float]]:
        return {series: (value, at) for series, value, at in self.db.execute("SELECT * FROM counters")}

    def open_sessions(self) -> list[Session]:
        return [Session(*row) for row in self.db.execute("SELECT * FROM sessions WHERE end IS NULL")]

    def close(self) -> None:
        self.db.close()
