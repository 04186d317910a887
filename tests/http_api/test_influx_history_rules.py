"""influx_history's rules on the rows InfluxDB answers (the queries themselves run against the real
influxd in test_history_influx.py): counter resets, roles with and without counters, home from
the roles' energies, and grains that nest in local days in a zone with half-hour offsets."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import date, datetime

import pytest
from wattbus_http_api.history_api import _edges
from wattbus_http_api.influx_history import _buckets, _counted, _Device, grain_for

T0 = 1_800_000_000 // 900 * 900  # a grain start


def device(role: str, grains: dict[int, dict[str, float]], before: dict[str, float] | None = None) -> _Device:
    return _Device(role, grains, before or {})


def test_a_counter_reset_is_not_energy() -> None:
    pv = device("pv", {T0: {"energy_total_wh": 1200.0, "wh": 190.0}, T0 + 900: {"energy_total_wh": 40.0, "wh": 40.0},
                       T0 + 1800: {"energy_total_wh": 140.0, "wh": 95.0}}, {"energy_total_wh": 1000.0})
    devices = {("pv", "s", "pv", ""): pv}
    out = _buckets(devices, _counted(devices), [T0, T0 + 3600], 900)
    # 200 before the swap, 100 after it; the drop to 40 (a replaced inverter) counts nothing
    assert out["pv_wh"] == [300.0]


def test_a_role_counts_by_counters_only_where_every_device_has_them() -> None:
    a = device("pv", {T0: {"energy_total_wh": 600.0, "wh": 90.0}}, {"energy_total_wh": 500.0})
    b = device("pv", {T0: {"wh": 60.0}})  # an inverter without a lifetime total
    grid = device("grid", {T0: {"energy_import_wh": 30.0, "energy_export_wh": 10.0, "wh": 25.0}},
                  {"energy_import_wh": 0.0, "energy_export_wh": 0.0})
    devices = {("pv", "s", "a", ""): a, ("pv", "s", "b", ""): b, ("grid", "s", "m", ""): grid}
    counted = _counted(devices)
    assert counted == {"grid_import_wh", "grid_export_wh"}
    out = _buckets(devices, counted, [T0, T0 + 900], 900)
    assert out["pv_wh"] == [150.0]  # both inverters' power integrated, not one counter and one power
    assert out["grid_import_wh"] == [30.0] and out["grid_export_wh"] == [10.0]
    # home: pv 150 + grid (30 - 10) + no battery - no charger
    assert out["home_wh"] == [170.0]


def test_battery_split_by_the_sign_of_each_reading() -> None:
    grid = device("grid", {T0: {"wh": 100.0, "pos_wh": 100.0}})
    battery = device("battery", {T0: {"wh": -20.0, "pos_wh": 30.0}})  # 30 Wh out, 50 Wh in
    devices = {("grid", "s", "m", ""): grid, ("battery", "s", "b", ""): battery}
    out = _buckets(devices, _counted(devices), [T0, T0 + 900], 900)
    assert out["battery_discharge_wh"] == [30.0] and out["battery_charge_wh"] == [50.0]
    assert out["home_wh"] == [80.0]


def test_no_home_without_the_grid() -> None:
    pv = device("pv", {T0: {"wh": 100.0}})
    out = _buckets({("pv", "s", "p", ""): pv}, set(), [T0, T0 + 900], 900)
    assert out["pv_wh"] == [100.0] and out["home_wh"] == [0.0]


@pytest.fixture
def kolkata() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Kolkata"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_grains_nest_in_local_days_at_half_hour_offsets(kolkata: None) -> None:
    _first, _end, labels, edges = _edges("year", date(2026, 6, 1))
    assert len(labels) == 12 and edges[0] == datetime(2026, 1, 1).timestamp()
    grain, offset = grain_for(edges[-1] - edges[0], edges[0])
    assert (grain, offset) == (3600, 1800)  # +05:30: hours start at :30 UTC
    assert all((edge - offset) % grain == 0 for edge in edges)  # every local month starts on a grain
    month = _edges("month", date(2026, 2, 10))[3]
    assert grain_for(month[-1] - month[0], month[0]) == (900, 0) and all(edge % 900 == 0 for edge in month)
