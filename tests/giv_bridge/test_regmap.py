"""Register maps are data: every file loads, and real captured blocks decode to sane values."""

from __future__ import annotations

import pytest
from wattbus_giv_bridge import regmap

from tests.giv_bridge.conftest import responses


@pytest.mark.parametrize("name", regmap.available())
def test_every_register_map_loads(name: str) -> None:
    loaded = regmap.load(name)
    assert loaded.blocks and loaded.points
    assert loaded.writable <= set(loaded.points)


def test_a_point_outside_every_block_is_refused() -> None:
    with pytest.raises(regmap.MapError, match="no polled block"):
        regmap.parse('blocks = [{ table = "input", address = 0, count = 60 }]\n[points]\n'
                     'x = { address = 61, table = "input" }', "t.toml")
    with pytest.raises(regmap.MapError, match="type"):
        regmap.parse('blocks = [{ table = "input", address = 0, count = 60 }]\n[points]\n'
                     'x = { address = 1, type = "f" }', "t")
    with pytest.raises(regmap.MapError, match=r"t \[points\] x: GivEnergy registers are 16-bit words"):
        regmap.parse('blocks = [{ table = "input", address = 0, count = 60 }]\n[points]\n'
                     'x = { address = 1, type = "float32" }', "t")


@pytest.mark.parametrize("name", ["hybrid_gen1_arm449_0x11_poll_10min.log", "hybrid_gen2_arm920_60s.log"])
def test_real_battery_blocks_decode_to_plausible_cells(name: str) -> None:
    blocks = [r for r in responses(name) if r.address in (0x32, 0x33) and r.function == 4 and r.base == 60]
    assert blocks
    for block in blocks:
        cache = regmap.RegisterCache()
        cache.update("ir", block.base, block.values)
        values = regmap.load("battery").decode(cache)
        if values["serial_number"] is None:
            continue  # an empty slot
        cells = [values[f"cell_{i:02d}_v"] for i in range(1, 17)]
        assert all(isinstance(c, float) and 2.5 < c < 3.7 for c in cells)
        assert isinstance(values["soc_pct"], int) and 0 <= values["soc_pct"] <= 100


def test_real_inverter_block_decodes() -> None:
    cache = regmap.RegisterCache()
    for r in responses("hybrid_gen1_arm449_0x11_poll_10min.log"):
        if r.address == 0x11:
            cache.update("hr" if r.function == 3 else "ir", r.base, r.values)
    values = regmap.load("inverter").decode(cache)
    assert isinstance(values["serial_number"], str) and values["serial_number"].startswith("SA")
    assert isinstance(values["grid_frequency_hz"], float) and 49 < values["grid_frequency_hz"] < 51
    assert isinstance(values["battery_soc_pct"], int)
    assert values["charge_slot_1_start"] is None or ":" in str(values["charge_slot_1_start"])


def test_writes_are_named_recipes_over_writable_points() -> None:
    inverter = regmap.load("inverter")
    assert inverter.recipe("eco") == {"battery_power_mode": 1, "enable_discharge": 0, "battery_reserve_pct": 4}
    assert all(set(inverter.recipe(name)) <= inverter.writable for name in inverter.recipes)
    assert inverter.point("restart").address == 163
    head = 'blocks = [{ table = "holding", address = 0, count = 60 }, { table = "input", address = 0, count = 60 }]\n'
    points = '[points]\nmode = { address = 27 }\nsoc = { address = 59, table = "input" }\n'
    with pytest.raises(regmap.MapError, match="not a one-register holding point"):
        regmap.parse(head + 'writable = ["soc"]\n' + points, "t.toml")
    with pytest.raises(regmap.MapError, match="which is not writable"):
        regmap.parse(head + 'writable = ["mode"]\n' + points + '[recipes]\nx = { soc = 1 }\n', "t.toml")
    with pytest.raises(regmap.MapError, match="16-bit word"):
        regmap.parse(head + 'writable = ["mode"]\n' + points + '[recipes]\nx = { mode = 70000 }\n', "t.toml")
    with pytest.raises(regmap.MapError, match="no recipe 'boost'"):
        inverter.recipe("boost")
