"""The local history's retention: a simulated year written day by day into a real sqlite file,
pruned on the store's own schedule; the week/month/year sums stay exact, the file stops growing."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from wattbus_http_api.energy import SERIES
from wattbus_http_api.history_api import _edges, _local_series
from wattbus_http_api.store import PRUNE_INTERVAL_S, Retention, Store

FIRST = date(2025, 12, 1)  # a December start: the year crosses both DST changes of a European zone
DAYS = 365


def _midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day).timestamp()


def simulate(path: Path, retention: Retention) -> tuple[Store, dict[str, float], list[int]]:
    """A year of 15-minute energy (7 series) and per-minute curve rows, one write a day, the
    store pruning when its hour is due; returns the store, each series' total and the size per month."""
    store = Store(path, retention)
    expected = dict.fromkeys(SERIES, 0.0)
    sizes = []
    for n in range(DAYS):
        day = FIRST + timedelta(days=n)
        start, end = _midnight(day), _midnight(day + timedelta(days=1))
        energy: dict[tuple[int, str], float] = {}
        for bucket in range(int(start), int(end), 900):
            for i, series in enumerate(SERIES):
                wh = (i + 1) * 10.0 + (bucket // 900) % 7  # a distinct, varying value per series
                energy[(bucket, series)] = wh
                expected[series] += wh
        curve: list[tuple[int, list[float | None]]] = [
            (minute, [1000.0, -200.0, 50.0, None, 750.0]) for minute in range(int(start), int(end), 60)]
        store.write(energy, curve, [])
        for hour in range(24):  # energy.py flushes every 30 s and prunes when its hour is due
            store.prune_due(start + hour * 3600 + 1)
        if day.day == 1:
            sizes.append(_size(store, path))
    return store, expected, sizes


def _size(store: Store, path: Path) -> int:
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def test_a_year_with_the_default_retention(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    store, expected, sizes = simulate(path, Retention())
    last = FIRST + timedelta(days=DAYS - 1)
    # 62 days of curve kept (the cut-off is a local midnight), all 365 days of 15-minute energy
    minutes = store.db.execute("SELECT COUNT(*), MIN(minute) FROM curve").fetchone()
    assert minutes[1] == _midnight(last - timedelta(days=62)), minutes
    assert store.db.execute("SELECT COUNT(*) FROM energy").fetchone()[0] == sum(
        round((_midnight(FIRST + timedelta(days=n + 1)) - _midnight(FIRST + timedelta(days=n))) / 900)
        for n in range(DAYS)) * len(SERIES)
    totals = dict(store.sums(_midnight(FIRST), _midnight(last + timedelta(days=1))))
    assert {k: round(v, 3) for k, v in totals.items()} == {k: round(v, 3) for k, v in expected.items()}
    size = _size(store, path)
    print(f"default retention, a year: {size / 1e6:.1f} MB ({minutes[0]} curve rows); "
          f"monthly: {[round(s / 1e6, 1) for s in sizes]} MB")
    # the curve is pruned to two months: the file holds that and the 15-minute energy, not a year of minutes
    assert size < 30e6, size
    assert store.pruned_at is not None and PRUNE_INTERVAL_S == 3600.0


def test_day_totals_outlive_the_detail(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    store, expected, sizes = simulate(path, Retention(curve_days=7, detail_days=30, keep_days=0))
    last = FIRST + timedelta(days=DAYS - 1)
    oldest = store.db.execute("SELECT MIN(bucket) FROM energy").fetchone()[0]
    assert oldest == _midnight(last - timedelta(days=30))
    assert store.db.execute("SELECT COUNT(*) FROM days").fetchone()[0] == (DAYS - 31) * len(SERIES)
    # The year, each month and a pruned day still sum to what was written.
    totals = dict(store.sums(_midnight(FIRST), _midnight(last + timedelta(days=1))))
    assert all(abs(totals[k] - expected[k]) < 1e-6 * expected[k] for k in SERIES), (totals, expected)
    _first, _end, labels, edges = _edges("year", date(2026, 6, 15))
    months = _local_series(store, "year", edges)
    assert len(labels) == 12 and months["pv_wh"][5] > 0
    june = dict(store.sums(_midnight(date(2026, 6, 1)), _midnight(date(2026, 7, 1))))
    assert abs(months["pv_wh"][5] - june["pv_wh"]) < 1e-6
    day_total = dict(store.sums(_midnight(date(2026, 3, 29)), _midnight(date(2026, 3, 30))))
    buckets = round((_midnight(date(2026, 3, 30)) - _midnight(date(2026, 3, 29))) / 900)
    assert day_total["pv_wh"] > 10.0 * buckets  # a pruned day (a DST day where the zone has one) keeps its total
    size = _size(store, path)
    print(f"7 days curve, 30 days detail, a year: {size / 1e6:.2f} MB; monthly: {[round(s / 1e6, 2) for s in sizes]}")
    assert sizes[-1] <= sizes[2] * 1.1, sizes  # steady state: the file stops growing
    # forever by default; with keep_days the oldest day totals go too
    store.retention = Retention(curve_days=7, detail_days=30, keep_days=100)
    removed = store.prune(_midnight(last) + 3600)
    assert removed["days"] == (DAYS - 101) * len(SERIES), removed
