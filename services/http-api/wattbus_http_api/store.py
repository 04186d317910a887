"""The local history in one sqlite file: energy per 15 minutes and series, the power curve per
minute, charging sessions. It is what the page shows when no InfluxDB is configured, and it
survives restarts of the http-api (the in-memory "today" it replaces did not).

Times are Unix seconds (UTC); the local day is cut when reading, so a change of time zone or DST
never rewrites stored rows.
"""

from __future__ import annotations

import sqlite3
from dataclasses import astuple, dataclass, fields
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
"""
CURVE = ("pv_w", "grid_w", "battery_w", "ev_w", "home_w")


@dataclass
class Session:
    """One plug-in of a car at a loadpoint. ev_wh and pv_wh are integrated here from the controller's
    charging power and the site's flow at the time; energy_wh is the charger's own session counter."""

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


class Store:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.problem: str | None = None  # why the history is not kept on disk
        self.db = self._open(path)

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
        """Energy per series in [start, end): summed by sqlite on the key's range (a year stays fast)."""
        return self.db.execute("SELECT series, SUM(wh) FROM energy WHERE bucket >= ? AND bucket < ? "
                               "GROUP BY series", (start, end)).fetchall()

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
