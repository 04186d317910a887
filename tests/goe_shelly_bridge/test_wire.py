"""Decoding recorded device answers (tests/goe_shelly_bridge/data) and the adapters' data files."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from wattbus import codec
from wattbus.goe import GoeIdentityError, identity
from wattbus.shelly import ShellyIdentityError, ShellyInfo, parse_info, parse_models, shelly_models
from wattbus_goe_shelly_bridge.goe_wire import decode_status, goe_table, parse_table
from wattbus_goe_shelly_bridge.shelly_wire import decode_gen1, decode_gen2
from wattbus_goe_shelly_bridge.transport import ResponseRejected

DATA = Path(__file__).parent / "data"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def recordings(prefix: str) -> list[Path]:
    return sorted(DATA.glob(f"{prefix}*.json"))


def field(reading: Any, name: str) -> Any:
    """`phase2_power_w` -> the phase 2 entry's power_w; `phase_count` -> number of phase entries."""
    if name == "kind":
        return reading.__struct_config__.tag
    if name == "phase_count":
        return len(reading.phases)
    if name.startswith("phase") and name[5:6].isdigit():
        phase = next(p for p in reading.phases if p.phase == int(name[5]))
        return getattr(phase, name[7:])
    return getattr(reading, name)


def test_every_data_file_loads() -> None:
    """Each data file the adapters use parses and validates (the Shelly models ship with wattbus.shelly)."""
    files = [f for f in resources.files("wattbus_goe_shelly_bridge").joinpath("data").iterdir()
             if f.name.endswith(".toml")]
    assert {f.name for f in files} == {"goe.toml"}
    table = parse_table(tomllib.loads(next(f for f in files if f.name == "goe.toml").read_text()))
    assert table == goe_table()
    assert {s.quantity for s in table.nrg} == {"voltage_v", "current_a", "power_w", "power_factor"}
    assert table.car[2] == "charging" and table.force[2] == "on" and table.phase_mode == {1: 1, 2: 3}
    models = parse_models(tomllib.loads(resources.files("wattbus").joinpath("data/shelly_models.toml").read_text()))
    assert models == shelly_models()
    assert models["gen1"]["SHEM-3"].emeters == 3 and models["gen2"]["Pro3EM"].relays == 0
    assert all(model.relays >= 0 and model.name.startswith("Shelly") for gen in models.values()
               for model in gen.values())


def test_broken_goe_table_is_refused() -> None:
    raw = tomllib.loads(resources.files("wattbus_goe_shelly_bridge").joinpath("data/goe.toml").read_text())
    raw["car"]["2"] = "driving"
    with pytest.raises(ValueError, match="unknown states"):
        parse_table(raw)


@pytest.mark.parametrize("path", recordings("goe_"), ids=lambda p: p.stem)
def test_goe_recordings(path: Path) -> None:
    rec = json.loads(path.read_text())
    ident = identity(rec["response"], rec["api"], path.name)
    reading = decode_status(rec["response"], rec["api"], f"goe-{ident.serial}", NOW, path.name)
    for name, expected in rec["expect"].items():
        assert field(reading, name) == pytest.approx(expected), name
    # Every decoded reading goes over the bus: it must encode and decode as the contract says.
    assert codec.decode_reading(codec.encode(reading)) == reading


@pytest.mark.parametrize("path", recordings("shelly_"), ids=lambda p: p.stem)
def test_shelly_recordings(path: Path) -> None:
    rec = json.loads(path.read_text())
    info = parse_info(rec["info"], path.name)
    decode = decode_gen1 if rec["gen"] == 1 else decode_gen2
    readings = decode(rec["response"], info, NOW, path.name)
    assert len(readings) == len(rec["expect"])
    for reading, expected in zip(readings, rec["expect"], strict=True):
        assert reading.device_id == expected["device_id"]
        assert codec.decode_reading(codec.encode(reading)) == reading
        for name, value in expected.items():
            if name not in ("device_id",):
                assert field(reading, name) == (pytest.approx(value) if value is not None else None), name


GARBAGE = json.loads((DATA / "garbage.json").read_text())["cases"]


@pytest.mark.parametrize("case", GARBAGE, ids=lambda c: c["name"])
def test_garbage_is_rejected_with_the_key_named(case: dict[str, Any]) -> None:
    with pytest.raises(ResponseRejected) as err:
        if case["kind"] == "goe":
            decode_status(case["response"], case["api"], "goe-1", NOW, "http://dev/status")
        else:
            model = "SHSW-PM" if case["gen"] == 1 else "Plus1PM"
            info = ShellyInfo(case["gen"], model, "AABBCCDDEEFF", None, False, None)
            (decode_gen1 if case["gen"] == 1 else decode_gen2)(case["response"], info, NOW, "http://dev/status")
    assert case["error"] in str(err.value)
    assert "http://dev/status" in str(err.value)


@pytest.mark.parametrize("doc, why", [
    ({"mac": "AA"}, "neither gen >= 2 nor a Gen1 type"),
    ({"type": "SHSW-1"}, "no mac"),
])
def test_shelly_info_rejects_other_devices(doc: dict[str, Any], why: str) -> None:
    with pytest.raises(ShellyIdentityError, match=why):
        parse_info(doc, "http://dev/shelly")


def test_goe_without_serial_is_rejected() -> None:
    with pytest.raises(GoeIdentityError, match="no serial number"):
        identity({"car": 1, "sse": ""}, "v2", "http://dev/api/status")
