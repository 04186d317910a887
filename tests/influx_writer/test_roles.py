"""The role and parent tags: http-api's rules, the `site_role` points, re-tagging of new points only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from wattbus import messages as m
from wattbus.bus import Bus
from wattbus.config import BusConfig, load
from wattbus.log import get_logger
from wattbus.site import SiteConfig
from wattbus_influx_writer import role_feed
from wattbus_influx_writer.lineproto import LineEncoder
from wattbus_influx_writer.role_feed import RoleFeed, initial_roles, meta_filters
from wattbus_influx_writer.roles import RoleTags

AT = datetime(2026, 6, 1, 12, tzinfo=UTC)


def meta(device: str, kind: str, parent: str | None = None) -> m.DeviceMeta:
    return m.DeviceMeta(device_id=device, kind=kind, source="sim", protocol="simulated",  # type: ignore[arg-type]
                        parent_id=parent)


def known(roles: RoleTags, *metas: m.DeviceMeta, site: str | None = None) -> RoleTags:
    for item in metas:
        roles.on_meta(site, "sim", item.device_id, item)
    return roles


def test_roles_by_kind_follow_http_api() -> None:
    roles = known(RoleTags(SiteConfig()), meta("grid", "meter"), meta("inv-meter", "meter", "hybrid"),
                  meta("fronius", "inverter"), meta("ecu", "gateway"), meta("mi1", "inverter", "ecu"),
                  meta("bat", "battery"), meta("wb", "charger"), meta("plug", "relay"))
    got = {d: roles.role(None, f"sim/{d}", k) for d, k in [
        ("grid", "meter"), ("inv-meter", "meter"), ("fronius", "inverter"), ("ecu", "gateway"), ("mi1", "inverter"),
        ("bat", "battery"), ("wb", "charger"), ("plug", "relay"), ("no-meta", "inverter"), ("no-meta-m", "meter")]}
    assert got == {"grid": "grid", "inv-meter": "submeter", "fronius": "pv", "ecu": "pv", "mi1": "none",
                   "bat": "battery", "wb": "charger", "plug": "none", "no-meta": "none", "no-meta-m": "submeter"}
    assert roles.tags(None, "sim", "mi1", "inverter") == [("role", "none"), ("parent", "ecu")]
    # a second top-level meter: no grid meter by kind any more (http-api shows none either)
    known(roles, meta("heatpump", "meter"))
    assert roles.role(None, "sim/grid", "meter") == "submeter"


def test_named_roles_win_and_limit_the_kind_rule() -> None:
    site = SiteConfig(grid="sim/grid", pv=["sim/mi1", "sim/mi2:dc_power_w"], chargers=["sim/wb"])
    roles = known(RoleTags(site), meta("grid", "meter"), meta("sub", "meter"), meta("fronius", "inverter"),
                  meta("mi1", "inverter", "ecu"), meta("wb2", "charger"), meta("bat", "battery"))
    assert roles.role(None, "sim/sub", "meter") == "submeter"
    assert roles.role(None, "sim/fronius", "inverter") == "none"  # pv is named: no PV by kind
    assert roles.role(None, "sim/mi1", "inverter") == "pv"  # named, though a sub-device
    assert roles.role(None, "sim/wb2", "charger") == "none"
    assert roles.role(None, "sim/bat", "battery") == "battery"  # battery is not named: by kind
    encoder = LineEncoder(roles=roles)
    lines = encoder.encode(m.InverterReading(device_id="mi2", timestamp=AT, power_w=5.0, dc_power_w=6.0,
                                             energy_total_wh=10.0), "sim")
    assert lines[1].startswith("site_role,device_id=mi2,kind=inverter,role=pv,source=sim ")
    assert " power_w=6.0,energy_total_wh=10.0 " in lines[1]  # the named field is the power counted


def test_default_grid_is_per_site() -> None:
    roles = known(RoleTags(SiteConfig()), meta("m1", "meter"), site="a")
    known(roles, meta("m1", "meter"), meta("m2", "meter"), site="b")
    assert roles.role("a", "sim/m1", "meter") == "grid"
    assert roles.role("b", "sim/m1", "meter") == "submeter"
    assert meta_filters(["sites/+/wattbus/v1/device/+/+/reading", "wattbus/v1/device/+/+/reading",
                         "wattbus/v1/device/sim/+/reading"]) == ["sites/+/wattbus/v1/device/+/+/meta",
                                                                 "wattbus/v1/device/+/+/meta"]


def test_a_role_change_retags_new_points_only() -> None:
    roles = known(RoleTags(SiteConfig(grid="sim/a")), meta("a", "meter"), meta("b", "meter"))
    encoder = LineEncoder(roles=roles)
    reading = m.MeterReading(device_id="b", timestamp=AT, power_w=650.0)
    before = encoder.encode(reading, "sim")
    assert before == [f"meter,device_id=b,kind=meter,role=submeter,source=sim power_w=650.0 {int(AT.timestamp())}"
                      "000000000\n"]
    assert roles.set_site(SiteConfig(grid="sim/b")) and not roles.set_site(SiteConfig(grid="sim/b"))
    after = encoder.encode(reading, "sim")  # the cached tag set is dropped with the change
    assert [line.split(" ", 1)[0] for line in after] == ["meter,device_id=b,kind=meter,role=grid,source=sim",
                                                         "site_role,device_id=b,kind=meter,role=grid,source=sim"]
    roles.on_meta(None, "sim", "b", meta("b", "meter", parent="a"))
    assert ",parent=a," in encoder.encode(reading, "sim")[0]
    roles.on_meta(None, "sim", "b", None)  # meta cleared: the parent goes with it
    assert "parent=" not in encoder.encode(reading, "sim")[0]


async def test_the_config_file_is_watched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(role_feed, "FILE_POLL_S", 0.05)
    conf = tmp_path / "wattbus.toml"
    conf.write_text('[site]\ngrid = "sim/a"\n')
    loaded = load(conf, environ={})
    roles = initial_roles(loaded, get_logger("test"))
    feed = RoleFeed(roles, Bus(BusConfig(), "influx-writer"), loaded, get_logger("test"))
    watcher = asyncio.create_task(feed.watch_file())
    await asyncio.sleep(0.1)  # the watcher has taken the file's first mtime
    try:
        conf.write_text('[site]\ngrid = "not a ref"\n')  # a bad edit keeps the roles in use
        await asyncio.sleep(0.3)
        assert roles.site.grid == "sim/a"
        conf.write_text('[http-api]\nstale_after_s = 60\n[site]\ngrid = "sim/b"\npv = ["sim/c"]\n')
        for _ in range(100):
            if roles.site.grid == "sim/b":
                break
            await asyncio.sleep(0.05)
        assert roles.site == SiteConfig(grid="sim/b", pv=["sim/c"])
    finally:
        watcher.cancel()
    bad = tmp_path / "bad.toml"
    bad.write_text('[site]\ngird = "sim/a"\n')
    assert initial_roles(load(bad, environ={}), get_logger("test")).site == SiteConfig()  # by kind, logged
