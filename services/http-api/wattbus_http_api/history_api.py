"""History over HTTP: energy per bucket for a day, week, month or year, the day's power curve, and
the charging sessions as JSON and CSV. Open reads like the MeterHub document (no token).

With `[http-api.influx]` set, energy and curve come from InfluxDB (influx_history.py); when it
cannot answer, from the local store, with the reason in `influx_problem`. `source` says which."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal

from aiohttp import web
from wattbus.config import ConfigError

from .config import HistoryInflux
from .energy import BUCKET_S, SERIES
from .influx_history import InfluxHistory, InfluxUnavailable
from .sessions import to_csv
from .site import Site
from .store import CURVE, Store
from .web import json_response, reject, site_of

BASE = "/api/v1"
Range = Literal["day", "week", "month", "year"]
RANGES: tuple[Range, ...] = ("day", "week", "month", "year")
CURVE_POINTS = 288  # a day's curve in 5-minute means: enough for a phone-wide chart
MAX_SESSIONS = 1000


def _epoch(day: date) -> float:
    """Local midnight of a day as Unix seconds (naive datetimes are local time)."""
    return datetime(day.year, day.month, day.day).timestamp()


def _month_start(day: date, months: int = 0) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def period(kind: Range, day: date) -> tuple[date, date, list[date]]:
    """[first, end) of the range holding `day`, and the start of each bucket for week/month/year."""
    if kind == "day":
        return day, day + timedelta(days=1), [day]
    if kind == "week":  # ISO weeks start on Monday
        first = day - timedelta(days=day.weekday())
        return first, first + timedelta(days=7), [first + timedelta(days=i) for i in range(7)]
    if kind == "month":
        first, end = _month_start(day), _month_start(day, 1)
        return first, end, [first + timedelta(days=i) for i in range((end - first).days)]
    first = date(day.year, 1, 1)
    return first, date(day.year + 1, 1, 1), [date(day.year, month, 1) for month in range(1, 13)]


def _edges(kind: Range, day: date) -> tuple[date, date, list[str], list[float]]:
    """The range's first day and end, the bucket labels and the bucket edges (Unix s; len + 1)."""
    first, end, starts = period(kind, day)
    start_s, end_s = _epoch(first), _epoch(end)
    if kind == "day":
        # 15-minute buckets from local midnight: 92 or 100 on a DST change day.
        count = round((end_s - start_s) / BUCKET_S)
        labels = [datetime.fromtimestamp(start_s + i * BUCKET_S).strftime("%H:%M") for i in range(count)]
        return first, end, labels, [start_s + i * BUCKET_S for i in range(count)] + [end_s]
    return first, end, [d.isoformat() for d in starts], [_epoch(d) for d in starts] + [end_s]


def _local_series(store: Store, kind: Range, edges: list[float]) -> dict[str, list[float]]:
    series = {name: [0.0] * (len(edges) - 1) for name in SERIES}
    if kind == "day":
        for bucket, name, wh in store.energy(edges[0], edges[-1]):
            if name in series:
                series[name][min(int((bucket - edges[0]) // BUCKET_S), len(edges) - 2)] += wh
    else:
        for i in range(len(edges) - 1):
            for name, wh in store.sums(edges[i], edges[i + 1]):
                if name in series:
                    series[name][i] = wh
    return series


def _document(kind: Range, day: date, first: date, end: date, labels: list[str],
              series: dict[str, list[float]], totals: dict[str, float]) -> dict[str, Any]:
    return {
        "range": kind, "date": day.isoformat(), "first": first.isoformat(), "end": end.isoformat(),
        "bucket": "15min" if kind == "day" else "month" if kind == "year" else "day", "labels": labels,
        "series": {name: [round(v, 1) for v in values] for name, values in series.items()},
        "totals_wh": {name: round(totals.get(name, 0.0), 1) for name in series},
        "previous": period(kind, first - timedelta(days=1))[0].isoformat(), "next": end.isoformat(),
    }


def history(site: Site, kind: Range, day: date) -> dict[str, Any]:
    """From the local store. A day older than history_detail_days has its day total only."""
    first, end, labels, edges = _edges(kind, day)
    store = site.history.store
    series = _local_series(store, kind, edges)
    totals = dict(store.sums(edges[0], edges[-1])) if kind == "day" else {n: sum(v) for n, v in series.items()}
    doc = _document(kind, day, first, end, labels, series, totals)
    doc.update(source="local", persistent=store.problem is None, problem=store.problem)
    if kind == "day":
        doc["curve"] = curve(site, edges[0], edges[-1])
    return doc


async def influx_history(site: Site, cfg: HistoryInflux, kind: Range, day: date) -> dict[str, Any]:
    """From InfluxDB; InfluxUnavailable when it cannot answer."""
    first, end, labels, edges = _edges(kind, day)
    reader = InfluxHistory(cfg)
    series = await reader.energy(edges)
    doc = _document(kind, day, first, end, labels, series, {n: sum(v) for n, v in series.items()})
    doc.update(source="influxdb", influx=cfg.target, persistent=True, problem=None)
    if kind == "day":
        doc["curve"] = await reader.curve(edges[0], edges[-1], _step(edges[0], edges[-1]))
    return doc


def _step(start_s: float, end_s: float) -> int:
    return max(60, int((end_s - start_s) // CURVE_POINTS) // 60 * 60)


def curve(site: Site, start_s: float, end_s: float) -> dict[str, Any]:
    step = _step(start_s, end_s)
    groups: dict[int, list[list[float]]] = {}
    for minute, values in site.history.store.curve(start_s, end_s):
        slot = int(start_s + (minute - start_s) // step * step)
        acc = groups.setdefault(slot, [[] for _ in CURVE])
        for i, value in enumerate(values):
            if value is not None:
                acc[i].append(value)
    times = sorted(groups)
    out: dict[str, Any] = {"step_s": step, "t": times}
    for i, name in enumerate(CURVE):
        out[name] = [round(sum(v) / len(v)) if (v := groups[t][i]) else None for t in times]
    return out


async def get_history(request: web.Request) -> web.Response:
    kind = request.query.get("range", "day")
    if kind not in RANGES:
        raise reject(request, 400, f"range {kind[:20]!r} is not one of {', '.join(RANGES)}", "query.range")
    text = request.query.get("date", "")
    try:
        day = date.fromisoformat(text) if text else date.today()  # local day
    except ValueError:
        raise reject(request, 400, f"date {text[:30]!r} is not a date like 2026-12-06", "query.date") from None
    site = site_of(request)
    site.history.sample()
    site.history.flush()  # what was recorded since the last write is in the answer
    checked: Range = kind  # type: ignore[assignment]  # checked against RANGES above
    cfg = site.config.influx
    if cfg is not None:
        try:
            return json_response(await influx_history(site, cfg, checked, day))
        except (InfluxUnavailable, ConfigError) as exc:
            # The page still gets the local store's history, and says why it is not InfluxDB's.
            site.limiter.warning("influx history", "history from the local store", reason=str(exc))
            doc = history(site, checked, day)
            doc["influx_problem"] = str(exc)
            # `problem` is what the page shows under the chart
            doc["problem"] = "; ".join(p for p in (f"not from InfluxDB: {exc}", doc["problem"]) if p)
            return json_response(doc)
    return json_response(history(site, checked, day))


def _limit(request: web.Request) -> int:
    text = request.query.get("limit", "100")
    if not text.isdigit() or not 1 <= int(text) <= MAX_SESSIONS:
        raise reject(request, 400, f"limit {text[:20]!r} is not a number from 1 to {MAX_SESSIONS}", "query.limit")
    return int(text)


def _sessions(request: web.Request) -> list[dict[str, Any]]:
    limit = _limit(request)
    site = site_of(request)
    site.history.sample()
    site.history.flush()
    docs: list[dict[str, Any]] = site.history.sessions.documents(limit)
    return docs


async def get_sessions(request: web.Request) -> web.Response:
    return json_response(_sessions(request))


async def get_sessions_csv(request: web.Request) -> web.Response:
    return web.Response(text=to_csv(_sessions(request)), content_type="text/csv", headers={
        "Content-Disposition": 'attachment; filename="wattbus-charging-sessions.csv"'})


def routes() -> list[web.RouteDef]:
    return [web.get(f"{BASE}/history", get_history), web.get(f"{BASE}/sessions", get_sessions),
            web.get(f"{BASE}/sessions.csv", get_sessions_csv)]
