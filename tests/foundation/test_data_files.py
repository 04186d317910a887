"""Every data file of every package loads through the loader its package uses (which checks it as
a whole), and no data file is left without one: adding a file means naming its loader here."""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from wattbus import registers, shelly
from wattbus_ecu_bridge import decode as ecu_decode
from wattbus_generic_bridge import units
from wattbus_generic_bridge.families.common import parse_data
from wattbus_giv_bridge import givtcp, regmap
from wattbus_goe_shelly_bridge import goe_wire
from wattbus_integrations import catalog
from wattbus_sml_reader.mapping import ObisMap
from wattbus_sunspec_bridge.profile import load_profile

from tests.generic_bridge.test_descriptions import described

ROOT = Path(__file__).resolve().parents[2]


def _giv(path: Path) -> object:
    return givtcp.document() if path.stem == "givtcp" else regmap.parse(path.read_text(), path.name)


def _family(path: Path) -> object:
    module = importlib.import_module(f"wattbus_generic_bridge.families.{path.parent.name}.adapter")
    return parse_data(path.read_text(), path.name, type(module.DATA))


LOADERS: dict[str, Callable[[Path], object]] = {
    "services/giv-bridge/wattbus_giv_bridge/data/*.toml": _giv,
    "services/sunspec-bridge/wattbus_sunspec_bridge/profiles/*.toml": lambda p: load_profile(p.stem, str(p.parent)),
    "services/generic-bridge/wattbus_generic_bridge/data/*.toml": lambda p: described(p.stem),
    "services/generic-bridge/wattbus_generic_bridge/families/*/*.toml": _family,
    "services/goe-shelly-bridge/wattbus_goe_shelly_bridge/data/goe.toml":
        lambda p: goe_wire.parse_table(tomllib.loads(p.read_text())),
    "services/http-api/wattbus_http_api/data/settings_help.toml":
        lambda p: msgspec.convert(tomllib.loads(p.read_text()), dict[str, dict[str, str]]),
    "services/integrations/wattbus_integrations/data/entities.toml": lambda p: catalog.entities(),
    "services/integrations/wattbus_integrations/data/controls.toml": lambda p: catalog.controls(),
    "services/sml-reader/wattbus_sml_reader/obis.toml": lambda p: ObisMap.from_toml(p.read_text(), p.name),
    "services/ecu-bridge/wattbus_ecu_bridge/inverter_types.toml": lambda p: ecu_decode.inverter_types(),
    "shared/wattbus/data/shelly_models.toml": lambda p: shelly.shelly_models(),
}
FILES = sorted({*ROOT.glob("services/*/wattbus_*/**/*.toml"), *ROOT.glob("shared/wattbus/**/*.toml")})


def _loader(path: Path) -> Callable[[Path], object] | None:
    relative = path.relative_to(ROOT)
    return next((load for pattern, load in LOADERS.items() if relative.match(pattern)), None)


def test_every_data_file_has_a_loader() -> None:
    assert len(FILES) >= 20
    assert [str(p.relative_to(ROOT)) for p in FILES if _loader(p) is None] == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT / "services")) if "services" in p.parts
                         else p.name)
def test_every_data_file_loads(path: Path) -> None:
    load = _loader(path)
    assert load is not None and load(path)


def _plain_points(path: Path) -> dict[str, registers.Point]:
    """A register file's points read by the shared loader alone."""
    data = tomllib.loads(path.read_text())
    return registers.points(data["points"], path.name, msgspec.convert(data.get("defaults", {}), registers.Defaults))


PROFILES = sorted(ROOT.glob("services/sunspec-bridge/wattbus_sunspec_bridge/profiles/*.toml"))
REGISTER_DATA = [p for p in FILES if "giv-bridge" in p.parts and p.stem != "givtcp"] + PROFILES


@pytest.mark.parametrize("path", REGISTER_DATA, ids=lambda p: p.stem)
def test_register_data_is_in_the_shared_schema(path: Path) -> None:
    """Register maps and profiles hold wattbus.registers points as they are: the plain shared loader
    reads the same points as the package's own loader (no private shape, no translation)."""
    plain = _plain_points(path)
    loaded = regmap.parse(path.read_text(), path.name).points if "giv-bridge" in path.parts \
        else load_profile(path.stem, str(path.parent)).points
    assert plain == dict(loaded)


@pytest.mark.parametrize("path", REGISTER_DATA, ids=lambda p: p.stem)
def test_register_units_are_known_and_fit_the_names(path: Path) -> None:
    """A point's `unit` is one the project converts (generic-bridge's units, the contract's
    dimensions) and measures what its name says; a profile names the unit of every physical quantity."""
    points = _plain_points(path)
    wrong = {name: why for name, p in points.items() if (why := units.check(name, p.unit))}
    assert wrong == {}
    if path in PROFILES:
        assert [n for n, p in points.items() if units.dimension_of(n) and p.unit is None] == []
        assert any(p.unit for p in points.values())
