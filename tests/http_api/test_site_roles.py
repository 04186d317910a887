"""The role endpoint's writing (setup_roles.write_role) on a real file: it writes only `[site]`, and
moves an old layout there on its first change (old keys removed, loadpoint tuning to the controller)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from wattbus.config import ConfigError, load
from wattbus.settings import ConfigFile
from wattbus.site import load_site, site_config
from wattbus_http_api.setup_roles import RoleBody, RoleError, write_role

from tests.foundation.test_site import OLD  # the old layout: every old place in use


def test_the_first_role_change_moves_the_old_layout_into_site(tmp_path: Path) -> None:
    path = tmp_path / "wattbus.toml"
    path.write_text(OLD)
    before = site_config(load(path, environ={}))
    settings = ConfigFile(path)
    changed = write_role(settings, "sunspec/inv2", "inverter", RoleBody(role="pv"))
    settings.save()
    data = tomllib.loads(path.read_text())
    assert list(changed) == ["site", "surplus-controller", "http-api"]
    assert data["surplus-controller"] == {"state_file": "/tmp/state.json", "tuning": {"garage": {"enable_delay_s": 12}}}
    assert data["http-api"] == {"stale_after_s": 30}  # the old site table and breakers are gone
    after = site_config(load(path, environ={}))
    assert after.pv == ["sunspec/inv:power_ac_w", "sunspec/inv2"] and after.loadpoints == before.loadpoints
    assert after.chargers == ["goe/other"]  # the loadpoint's charger is not listed twice
    assert (after.grid, after.battery, after.relays) == (before.grid, before.battery, before.relays)
    assert after.loadpoints[0].breaker_a == 16  # from [http-api.setup.breakers]
    # nothing warns any more: the file has the new layout only
    assert load_site(load(path, environ={})).warnings == []


def test_a_charger_role_writes_the_loadpoint_and_only_given_tuning(tmp_path: Path) -> None:
    path = tmp_path / "wattbus.toml"
    path.write_text('[site]\ngrid = "shelly/em"\n')
    settings = ConfigFile(path)
    changed = write_role(settings, "goe/wb", "charger", RoleBody(role="charger", loadpoint_id="garage",
                                                                   max_current_a=20, breaker_a=16))
    assert list(changed) == ["site"]  # no tuning given: the controller's section stays untouched
    changed = write_role(settings, "goe/wb", "charger", RoleBody(role="charger", loadpoint_id="garage",
                                                                   enable_delay_s=5))
    settings.save()
    data = tomllib.loads(path.read_text())
    assert data["site"]["loadpoints"] == [{"id": "garage", "charger": "goe/wb", "mode": "pv", "min_current_a": 6.0,
                                           "max_current_a": 16.0, "phases": "auto", "breaker_a": 16.0}]
    assert data["surplus-controller"] == {"tuning": {"garage": {"enable_delay_s": 5.0}}}
    # the charger taken out of its role: its loadpoint and tuning go
    write_role(settings, "goe/wb", "charger", RoleBody(role="none"))
    settings.save()
    data = tomllib.loads(path.read_text())
    assert "loadpoints" not in data["site"] and data["surplus-controller"] == {}


def test_a_bad_file_or_role_is_refused_and_nothing_written(tmp_path: Path) -> None:
    path = tmp_path / "wattbus.toml"
    path.write_text('[site]\ngrid = "shelly/em"\n[surplus-controller]\ngrid_meter = "shelly/other"\n')
    with pytest.raises(ConfigError, match="disagrees with the old place"):
        write_role(ConfigFile(path), "goe/wb", "charger", RoleBody(role="charger"))
    path.write_text("[site]\n")
    with pytest.raises(RoleError, match="choose the grid meter first"):
        write_role(ConfigFile(path), "goe/wb", "charger", RoleBody(role="charger"))
    assert path.read_text() == "[site]\n"
