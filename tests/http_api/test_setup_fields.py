"""The field descriptions the setup wizard builds its inputs from, taken from the real Structs."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import get_type_hints

import msgspec
from wattbus.site import Loadpoint
from wattbus_http_api.setup_fields import describe, label
from wattbus_http_api.setup_roles import CHARGER_KEYS, RoleBody
from wattbus_surplus_controller.config import Config

HELP = tomllib.loads((Path(__file__).resolve().parents[2] / "services" / "http-api" / "wattbus_http_api" / "data"
                      / "settings_help.toml").read_text())


def test_labels_are_words_with_units() -> None:
    assert label("min_current_a") == "Minimum current (A)"
    assert label("max_phase_switches_per_hour") == "Maximum phase switches per hour"
    assert label("battery_priority_soc_pct") == "Battery priority charge (%)"
    assert label("breaker_a") == "Circuit breaker (A)"
    assert label("mode") == "Mode"


def test_controller_fields_are_typed_from_its_struct() -> None:
    fields = {f["key"]: f for f in describe(Config, HELP["surplus-controller"])}
    assert fields["stale_action"]["input"] == "select"
    assert sorted(fields["stale_action"]["choices"]) == ["min_current", "stop"]
    assert fields["stale_action"]["help"] == HELP["surplus-controller"]["stale_action"]
    soc = fields["battery_priority_soc_pct"]
    assert (soc["input"], soc["min"], soc["max"], soc["default"]) == ("number", 0, 100, 0.0)
    assert (fields["stale_after_s"]["above"], fields["stale_after_s"]["step"]) == (0, "any")
    assert fields["grid_meter"]["optional"] is True and fields["grid_meter"]["input"] == "text"
    assert fields["loadpoints"]["input"] == "none"  # a list: edited through the roles


def test_loadpoint_fields_follow_the_role_body() -> None:
    fields = describe(RoleBody, HELP["loadpoint"], CHARGER_KEYS)
    assert [f["key"] for f in fields] == list(CHARGER_KEYS)
    by_key = {f["key"]: f for f in fields}
    assert set(by_key["phases"]["choices"]) == {1, 3, "auto"}
    current = by_key["min_current_a"]
    assert (current["min"], current["max"], current["help"]) == (6, 32, HELP["loadpoint"]["min_current_a"])
    assert by_key["breaker_a"]["optional"] is True and by_key["breaker_a"]["max"] == 125
    assert by_key["max_phase_switches_per_hour"]["step"] == 1
    # no help line in the table: the field's own Meta(description=...) is used, the one [site] declares
    assert describe(RoleBody, {}, ["max_current_a"])[0]["help"] == "per phase, A (6-32: what chargers accept)"


def test_the_wizards_loadpoint_fields_are_the_sites() -> None:
    """One definition (issue 25): the role body's loadpoint fields have [[site.loadpoints]]' types,
    bounds, descriptions and defaults, so a change in wattbus.site reaches the wizard."""
    keys = ("mode", "min_current_a", "max_current_a", "phases", "breaker_a")
    body, site = get_type_hints(RoleBody, include_extras=True), get_type_hints(Loadpoint, include_extras=True)
    assert {k: body[k] for k in keys} == {k: site[k] for k in keys}
    defaults = [{f.name: f.default for f in msgspec.structs.fields(t) if f.name in keys} for t in (RoleBody, Loadpoint)]
    assert defaults[0] == defaults[1] and len(defaults[0]) == len(keys)
    assert describe(RoleBody, {}, keys) == describe(Loadpoint, {}, keys)
