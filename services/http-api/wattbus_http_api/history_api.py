"""History over HTTP: energy per bucket for a day, week, month or year, the day's power curve, and
the charging sessions as JSON and CSV. Open reads like the MeterHub document (no token)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal

from aiohttp import web

from .energy import BUCKET_S, SERIES
from .sessions import to_csv
from .site import Site
from .store import CURVE
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


def history(site: Site, kind: Range, day: date) -> dict[str, Any]:
    first, end, starts = period(kind, day)
    start_s, end_s = _epoch(first), _epoch(end)
    store = site.history.store
    series = {name: [0.0] * len(starts) for name in SERIES}
    if kind == "day":
        # 15-minute buckets from local midnight: 92 or 100 on a DST change day.
        count = round((end_s - start_s) / BUCKET_S)
        labels = [datetime.fromtimestamp(start_s + i * BUCKET_S).strftime("%H:%M") for i in range(count)]
        series = {name: [0.0] * count for name in SERIES}
        for bucket, name, wh in store.energy(start_s, end_s):
            if name in series:
                series[name][min(int((bucket - start_s) // BUCKET_S), count - 1)] += wh
    else:
        labels = [d.isoformat() for d in starts]
        edges = [_epoch(d) for d in starts] + [end_s]
        for i in range(len(starts)):
            for name, wh in store.sums(edges[i], edges[i + 1]):
                if name in series:
                    series[name][i] = wh
    doc: dict[str, Any] = {
        "range": kind, "date": day.isoformat(), "first": first.isoformat(), "end": end.isoformat(),
        "bucket": "15min" if kind == "day" else "month" if kind == "year" else "day", "labels": labels,
        "series": {name: [round(v, 1) for v in values] for name, values in series.items()},
        "totals_wh": {name: round(sum(values), 1) for name, values in series.items()},
        "previous": period(kind, first - timedelta(days=1))[0].isoformat(), "next": end.isoformat(),
        "persistent": site.history.store.problem is None, "problem": site.history.store.problem,
    }
    if kind == "day":
        doc["curve"] = curve(site, start_s, end_s)
    return doc


def curve(site: Site, start_s: float, end_s: float) -> dict[str, Any]:
    step = max(60, int((end_s - start_s) // CURVE_POINTS) // 60 * 60)
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
    return json_response(history(site, kind, day))  # type: ignore[arg-type]  # kind is checked above


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
