"""Every official model definition and every register profile loads and decodes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from wattbus import registers
from wattbus_sim.sunspec_image import encode_model
from wattbus_sunspec_bridge.decode import decode_model, raw_point
from wattbus_sunspec_bridge.models import PointDef, known_model_ids, model_def
from wattbus_sunspec_bridge.profile import SHIPPED, ProfileError, load_profile

MODEL_IDS = known_model_ids()


def test_the_official_definitions_are_there() -> None:
    assert {1, 101, 103, 113, 123, 124, 160, 201, 203, 213, 802} <= set(MODEL_IDS)


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_every_model_decodes_as_not_implemented(model_id: int) -> None:
    """A model whose points all carry the not-implemented sentinel decodes to None everywhere."""
    mdef = model_def(model_id)
    regs = encode_model(model_id, {})
    assert regs[0] == model_id and regs[1] == len(regs) - 2
    assert regs[1] >= mdef.fixed_length
    decoded = decode_model(mdef, 40002, regs)
    assert decoded.errors == []
    scalars = {k: v for k, v in decoded.values.items() if not isinstance(v, (dict, list))}
    counts = {p.name for p in mdef.group.points if p.type == "count"}  # a count of 0 is a real value
    assert all(v is None for k, v in scalars.items() if k not in counts), scalars


@pytest.mark.parametrize(("ptype", "regs"), [
    ("int16", [0x8000]), ("uint16", [0xFFFF]), ("acc32", [0, 0]), ("uint32", [0xFFFF, 0xFFFF]),
    ("int32", [0x8000, 0]), ("float32", [0x7FC0, 0]), ("enum16", [0xFFFF]), ("sunssf", [0x8000]),
    ("acc64", [0, 0, 0, 0]), ("string", [0, 0, 0]),
])
def test_sentinels_are_missing(ptype: str, regs: list[int]) -> None:
    assert raw_point(PointDef("x", ptype, len(regs)), regs) is None


def test_scaling_signs_and_garbage_scale_factor() -> None:
    values = {"A_SF": -2, "A": 12.34, "AphA": 4.11, "V_SF": -1, "PhVphA": 230.1, "W_SF": 0, "W": 2950,
              "Hz_SF": -2, "Hz": 50.01, "WH_SF": 3, "WH": 1_234_000, "St": 4, "Evt1": 0b1001}
    regs = encode_model(101, values)
    model = decode_model(model_def(101), 40070, regs).values
    assert (model["A"], model["AphA"], model["PhVphA"], model["W"], model["Hz"], model["WH"]) == (
        12.34, 4.11, 230.1, 2950, 50.01, 1_234_000)
    assert model["St"] == "MPPT"
    assert model["Evt1"] == ["GROUND_FAULT", "DC_DISCONNECT"]  # bits 0 and 3 of model 101 Evt1
    # A scale factor of 0x7FFF is garbage on the wire: the value is missing and the error named.
    sf_at = next(i for i, p in enumerate(model_def(101).group.points) if p.name == "W_SF")
    regs[sf_at] = 0x7FFF
    bad = decode_model(model_def(101), 40070, regs)
    assert bad.values["W"] is None
    assert any("W_SF" in e for e in bad.errors)


def test_short_model_is_reported_not_raised() -> None:
    regs = encode_model(103, {"W_SF": 0, "W": 10})[:20]
    decoded = decode_model(model_def(103), 40070, regs)
    assert any("length" in e or "ends before" in e for e in decoded.errors)


def test_float_model_values() -> None:
    decoded = decode_model(model_def(113), 40070, encode_model(113, {"W": 1234.5, "Hz": 49.98, "WH": None}))
    assert decoded.values["W"] == 1234.5
    assert decoded.values["Hz"] == 49.98
    assert decoded.values["WH"] is None and not math.isnan(decoded.values["W"])


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.toml")), ids=lambda p: p.stem)
def test_every_register_profile_loads(path: object) -> None:
    profile = load_profile(path.stem)  # type: ignore[attr-defined]
    assert profile.points and {p.table for p in profile.points.values()} == {"input"}
    assert all(block.count <= 125 for block in profile.ranges())
    assert profile.serial is not None and profile.serial.table == "holding"


def test_bad_profile_names_file_and_key(tmp_path: object) -> None:
    from pathlib import Path
    folder = Path(str(tmp_path))
    (folder / "broken.toml").write_text('function = 4\n[points]\nwatts = { address = 12 }\n')
    with pytest.raises(ProfileError, match=r"broken\.toml.*'watts'"):
        load_profile("broken", str(folder))
    with pytest.raises(ProfileError, match="no file"):
        load_profile("nonexistent", str(folder))


def test_float_word_order() -> None:
    big = registers.Point(address=0, type="float32")
    little = registers.Point(address=0, type="float32", word_order="little")
    assert registers.decode(big, [0x4496, 0x8000]) == 1204.0
    assert registers.decode(little, [0x8000, 0x4496]) == 1204.0
    assert registers.decode(big, [0x7FC0, 0x0000]) is None


def test_an_older_profile_still_loads(tmp_path: Path) -> None:
    """function = 3 | 4, a top-level word order and points without a type (float32): as before."""
    (tmp_path / "old.toml").write_text('function = 4\nword_order = "little"\n[serial]\naddress = 0xFC00\n'
                                       '[points]\npower_w = { address = 12 }\n'
                                       'energy_import_wh = { address = 0x48, type = "uint32", scale = 0.1 }\n')
    profile = load_profile("old", str(tmp_path))
    power = profile.points["power_w"]
    assert (power.table, power.type, power.word_order) == ("input", "float32", "little")
    assert registers.decode(profile.points["energy_import_wh"], [0x0001, 0x0000]) == 0.1  # low word first
    assert profile.serial == registers.Point(address=0xFC00, table="holding", type="uint32")
    (tmp_path / "clash.toml").write_text('function = 3\ndefaults = { table = "input" }\n[points]\n'
                                         'power_w = { address = 12 }\n')
    with pytest.raises(ProfileError, match=r"clash\.toml: function = 3 and table = 'input' disagree"):
        load_profile("clash", str(tmp_path))
    (tmp_path / "typo.toml").write_text('fuction = 4\n[points]\npower_w = { address = 12 }\n')
    with pytest.raises(ProfileError, match=r"typo\.toml: unknown keys \['fuction'\]"):
        load_profile("typo", str(tmp_path))
