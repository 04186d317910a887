"""`[site]` (wattbus.site): one table read alike by http-api, the surplus-controller and the
influx-writer; the old places still read with one warning, refused when they contradict [site]."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import pytest
from wattbus import cli
from wattbus.config import ConfigError, LoadedConfig, load
from wattbus.runner import RELOAD_EXIT_CODE
from wattbus.site import SiteConfig, load_site, site_config
from wattbus_http_api import config as http_config
from wattbus_influx_writer.roles import RoleTags
from wattbus_surplus_controller import config as controller_config
from wattbus_surplus_controller.__main__ import SERVICE as CONTROLLER

from tests.support.servers import Mosquitto

NEW = """
[site]
chargers = ["goe/other"]  # shown in the power flow, driven by nobody
grid = "shelly/em"
battery = ["giv/bat"]
pv = ["sunspec/inv:power_ac_w"]  # this inverter's AC power field
[[site.loadpoints]]
id = "garage"
charger = "goe/wb"
max_current_a = 16
breaker_a = 16
priority = 2
[[site.relays]]
id = "heater"
device = "shelly/relay"
power_w = 2000
min_on_s = 600
[surplus-controller]
state_file = "/tmp/state.json"
[surplus-controller.tuning.garage]
enable_delay_s = 12
[http-api]
stale_after_s = 30
"""

OLD = """
[surplus-controller]
grid_meter = "shelly/em"
battery = "giv/bat"
state_file = "/tmp/state.json"
[[surplus-controller.loadpoints]]
id = "garage"
charger = "goe/wb"
max_current_a = 16
priority = 2
enable_delay_s = 12
[[surplus-controller.relays]]
id = "heater"
device = "shelly/relay"
power_w = 2000
min_on_s = 600
[http-api]
stale_after_s = 30
[http-api.site]
grid = "shelly/em"
pv = ["sunspec/inv:power_ac_w"]
battery = ["giv/bat"]
chargers = ["goe/wb", "goe/other"]
[http-api.setup]
breakers = { garage = 16 }
"""


def loaded(text: str, environ: dict[str, str] | None = None) -> LoadedConfig:
    return LoadedConfig(tomllib.loads(text), Path("wattbus.toml"), environ or {})


def views(config: LoadedConfig) -> tuple[SiteConfig, controller_config.Config, SiteConfig, RoleTags]:
    """The site as each service resolves it from the same file."""
    http = http_config.resolve(config, config.section("http-api", http_config.Config)).site
    controller = CONTROLLER.config_of(config)
    return site_config(config), controller, http, RoleTags(site_config(config))


def test_the_new_layout_is_read_identically_by_all_three_services() -> None:
    site, controller, http, tags = views(loaded(NEW))
    assert load_site(loaded(NEW)).warnings == []
    assert http == site and tags.site == site
    assert (controller.grid_meter, controller.battery) == ("shelly/em", "giv/bat")
    [lp] = controller.loadpoints
    assert (lp.id, lp.charger, lp.priority, lp.breaker_a, lp.enable_delay_s) == ("garage", "goe/wb", 2, 16.0, 12.0)
    assert lp.settle_s == controller_config.LoadpointConfig(id="x", charger="a/b").settle_s  # untuned: default
    assert controller.relays == site.relays and controller.relays[0].min_on_s == 600
    # the power flow's chargers: the listed one and the loadpoint's; role tags and fields follow [site]
    assert site.charger_refs() == ["goe/other", "goe/wb"]
    assert tags.role(None, "goe/wb", "charger") == "charger" and tags.role(None, "shelly/em", "meter") == "grid"
    assert tags.power_field("sunspec/inv") == "power_ac_w"


def test_the_old_layout_still_works_with_one_warning_naming_the_new_place() -> None:
    old, new = loaded(OLD), loaded(NEW)
    found = load_site(old)
    assert len(found.warnings) == 1
    warning = found.warnings[0]
    assert "[site]" in warning and "[surplus-controller] grid_meter" not in warning  # http-api's grid came first
    for place in ("[http-api.site] grid", "[[surplus-controller.loadpoints]]", "[[surplus-controller.relays]]"):
        assert place in warning, warning
    assert found.site == site_config(new)  # the breaker from [http-api.setup.breakers], the charger kept once
    old_views, new_views = views(old), views(new)
    assert old_views[0] == new_views[0] and old_views[2] == new_views[2] and old_views[3].site == new_views[3].site
    for key in ("grid_meter", "battery", "loadpoints", "relays"):
        assert getattr(old_views[1], key) == getattr(new_views[1], key), key


def test_old_keys_that_repeat_site_are_read_and_those_that_contradict_it_refused() -> None:
    both = loaded(NEW.replace("[surplus-controller]\n", '[surplus-controller]\ngrid_meter = "shelly/em"\n'))
    assert [w for w in load_site(both).warnings if "repeats what [site] says" in w]
    clash = loaded(NEW.replace("[surplus-controller]\n", '[surplus-controller]\ngrid_meter = "shelly/other"\n'))
    with pytest.raises(ConfigError, match=r"\[site\] grid = 'shelly/em' disagrees with the old place "
                                          r"\[surplus-controller\] grid_meter = 'shelly/other'"):
        load_site(clash)
    with pytest.raises(ConfigError, match=r"refused|different grid meters"):
        load_site(loaded('[surplus-controller]\ngrid_meter = "a/one"\n[http-api.site]\ngrid = "a/two"\n'))
    tuned_twice = loaded(OLD + "[surplus-controller.tuning.garage]\nsettle_s = 3\n")
    with pytest.raises(ConfigError, match="both tune loadpoint garage"):
        CONTROLLER.config_of(tuned_twice)


@pytest.mark.parametrize(("text", "named"), [
    ('[site]\ngrid = "no-slash"\n', "[site] grid = 'no-slash'"),
    ('[[site.loadpoints]]\nid = "g"\ncharger = "goe wb"\n', "[site] loadpoints.0.charger = 'goe wb'"),
    ('[[site.relays]]\nid = "r"\ndevice = "a/"\npower_w = 5\n', "[site] relays.0.device = 'a/'"),
    ('[[site.loadpoints]]\nid = "g"\ncharger = "a/b"\nvehicle = "car"\n', "[site] loadpoints.0.vehicle"),
    ('[surplus-controller]\ngrid_meter = "meter"\n', "[surplus-controller] grid_meter = 'meter'"),
    ('[http-api.site]\npv = ["x"]\n', "[http-api] site.pv"),
    ('[[surplus-controller.loadpoints]]\nid = "g"\ncharger = "/wb"\n', "[surplus-controller] loadpoints.0.charger"),
    ('[site]\nbattery = ["a/b"]\ngird = "a/c"\n', "known keys: grid, pv"),
])
def test_a_bad_ref_or_key_is_refused_naming_it(text: str, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_site(loaded(text))
    assert named in str(err.value), str(err.value)


def test_the_loadpoints_own_rules() -> None:
    base = '[[site.loadpoints]]\nid = "g"\ncharger = "a/b"\n'
    with pytest.raises(ConfigError, match="max_current_a 20 A is above its circuit breaker"):
        load_site(loaded(base + "max_current_a = 20\nbreaker_a = 16\n"))
    with pytest.raises(ConfigError, match="min_current_a 12 A is above max_current_a 10 A"):
        load_site(loaded(base + "min_current_a = 12\nmax_current_a = 10\n"))
    with pytest.raises(ConfigError, match="loadpoint id 'g' is used twice"):
        load_site(loaded(base + base))
    # the controller's tuning table takes tuning only, checked with the loadpoint's own rules
    with pytest.raises(ConfigError, match=r"tuning.g.charger is a \[\[site.loadpoints\]\] key"):
        loaded(base + '[surplus-controller.tuning.g]\ncharger = "a/c"\n').section(
            "surplus-controller", controller_config.Config)
    with pytest.raises(ConfigError, match=r"at `tuning.g.enable_delay_s`"):
        loaded(base + "[surplus-controller.tuning.g]\nenable_delay_s = -1\n").section(
            "surplus-controller", controller_config.Config)


def test_config_check_names_a_contradiction_and_warns_of_old_places(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "wattbus.toml"
    path.write_text(OLD)
    assert cli.main(["config", "--config", str(path), "check"]) == 0
    assert "they belong in [site]" in capsys.readouterr().err
    path.write_text(NEW.replace("[surplus-controller]\n", '[surplus-controller]\nbattery = "giv/other"\n'))
    assert cli.main(["config", "--config", str(path), "check"]) == 2
    assert "[site] battery = ['giv/bat'] disagrees with the old place [surplus-controller] battery" in \
        capsys.readouterr().err


def test_the_environment_sets_site_keys_as_any_other(tmp_path: Path) -> None:
    path = tmp_path / "wattbus.toml"
    path.write_text(NEW)
    site = site_config(load(path, environ={"WATTBUS_SITE_GRID": "shelly/other-em"}))
    assert site.grid == "shelly/other-em" and site.loadpoints[0].id == "garage"
    assert CONTROLLER.config_of(load(path, environ={"WATTBUS_SITE_GRID": "x/y"})).grid_meter == "x/y"


def test_the_setup_files_json_schema_describes_every_site_key() -> None:
    """Meta descriptions feed the setup page and docs: every key a person writes says what it is."""
    schema = msgspec.json.schema(SiteConfig)["$defs"]
    for name in ("SiteConfig", "Loadpoint", "Relay"):
        undescribed = [key for key, prop in schema[name]["properties"].items()
                       if "description" not in msgspec.json.encode(prop).decode() and "$ref" not in str(prop)]
        assert undescribed == [], (name, undescribed)


def test_config_set_and_apply_site_reach_the_services_that_run_on_it(broker: Mosquitto, start_service: Any,
                                                                    tmp_path: Path) -> None:
    """`wattbus config set site grid ...` then `apply site`: the idle controller (a first run) restarts
    with its grid meter; http-api, not running here, is named as not answering."""
    path = tmp_path / "wattbus.toml"
    path.write_text(f'[surplus-controller]\nstate_file = "{tmp_path}/state.json"\n')
    controller = start_service("wattbus_surplus_controller", "--config", str(path),
                               env=broker.env("surplus-controller"))
    env = {**os.environ, **broker.env("test-admin")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "wattbus.cli", "config", "--config", str(path), *args],
                              env=env, capture_output=True, text=True, timeout=60)

    assert run("set", "site", "grid", "no-slash").returncode == 2  # refused naming the key, not written
    assert run("set", "site", "grid", "house-sim/house-meter").returncode == 0
    deadline = time.monotonic() + 30
    while "surplus-controller/main: ok" not in (done := run("apply", "site", "--timeout", "3")).stdout:
        assert time.monotonic() < deadline, done.stderr  # the controller may still be connecting
    assert "[surplus-controller] changed: restarting" in done.stdout, done.stdout
    assert done.returncode == 1 and "http-api/main" in done.stderr  # no http-api in this test
    assert controller.proc.wait(30) == RELOAD_EXIT_CODE
