"""wattbus.sunspec: the one home of SunSpec identification, shared by sunspec-bridge and discovery.

The kinds are checked against the SunSpec Alliance's own model definitions (the JSON files
pysunspec2 ships), so the bridge and discovery cannot drift apart again: discovery counted models
713 and 803 as batteries while the bridge published them as inverters.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import pytest
from wattbus import sunspec

MODELS = Path(str(resources.files("sunspec2"))) / "models" / "json"


def definition(model_id: int) -> dict[str, str]:
    group = json.loads((MODELS / f"model_{model_id}.json").read_text())["group"]
    return {"name": str(group["name"]), "label": str(group.get("label", ""))}


def defined() -> list[int]:
    return sorted(int(p.stem.split("_", 1)[1]) for p in MODELS.glob("model_*.json"))


def test_7xx_are_parts_of_the_der_and_8xx_are_storage_by_the_definitions() -> None:
    ders = [mid for mid in defined() if 700 <= mid < 800]
    storage = [mid for mid in defined() if 800 <= mid < 900]
    assert 713 in ders and 714 in ders and 803 in storage and 802 in storage
    # The 7xx models (IEEE 1547) describe one DER: its AC and DC sides, capacity, controls, trips.
    assert all(definition(mid)["name"].startswith("DER") for mid in ders), [definition(d) for d in ders]
    assert definition(713)["label"] == "DER Storage Capacity" and definition(714)["label"] == "DER DC Measurement"
    # The 8xx models describe storage itself: the battery, its banks, strings and modules.
    names = " ".join(definition(mid)["label"].lower() for mid in storage)
    assert all(word in names for word in ("battery", "lithium-ion", "flow battery"))
    assert definition(124)["label"] == "Storage"


@pytest.mark.parametrize(("models", "kind"), [
    ([1, 103, 120, 123, 160], "inverter"),
    ([1, 701, 713, 714], "inverter"),  # a DER with storage capacity is the inverter, not its battery
    ([1, 713], "inverter"),
    ([1, 803], "battery"),
    ([1, 802, 803, 804], "battery"),
    ([1, 124], "battery"),
    ([1, 113, 802], "inverter"),  # a hybrid inverter: its battery is a child device
    ([1, 203], "meter"),
    ([1, 64001], None),
])
def test_kind_of(models: list[int], kind: str | None) -> None:
    assert sunspec.kind_of(models) == kind


def test_every_defined_kind_model_is_in_one_set() -> None:
    sets = (sunspec.INVERTER_MODELS, sunspec.METER_MODELS, sunspec.BATTERY_MODELS)
    assert all(len([s for s in sets if mid in s]) <= 1 for mid in defined())
    assert all(mid in sunspec.BATTERY_MODELS for mid in defined() if 801 <= mid < 900)
    assert all(mid in sunspec.INVERTER_MODELS for mid in defined() if 701 <= mid < 800)


def test_common_model_strings_and_short_body() -> None:
    assert sunspec.text([0x4142, 0x4300, 0x4445]) == "ABC"
    assert sunspec.text([0, 0]) is None
    assert sunspec.is_marker((0x5375, 0x6E53, 1)) and not sunspec.is_marker((0x5375,))
    with pytest.raises(sunspec.WireError, match="at least 64"):
        sunspec.decode_common([0] * 10)
    body = [0x4652, 0x4F4E, 0x4955, 0x5300] + [0] * 44 + [0x3334, 0x3131] + [0] * 14 + [7]
    common = sunspec.decode_common(body)
    assert (common.manufacturer, common.serial, common.device_address) == ("FRONIUS", "3411", 7)


async def test_model_chain_walks_headers_to_the_end_marker_or_the_map_end() -> None:
    image = {40002: 1, 40003: 66, 40070: 103, 40071: 50, 40122: 160, 40123: 48, 40172: 0xFFFF, 40173: 0}

    async def read(address: int, count: int) -> Sequence[int] | None:
        if address not in image:
            return None  # an exception answer past the map
        return [image[a] for a in range(address, address + count)]

    blocks = await sunspec.model_chain(read, 40002)
    assert [(b.model_id, b.address, b.length, b.end) for b in blocks] == [
        (1, 40002, 66, 40070), (103, 40070, 50, 40122), (160, 40122, 48, 40172)]
    del image[40172], image[40173]  # a device that ends its map without 0xFFFF
    assert [b.model_id for b in await sunspec.model_chain(read, 40002)] == [1, 103, 160]
    assert [b.model_id for b in await sunspec.model_chain(read, 40002, limit=2)] == [1, 103]
    dmap = sunspec.DeviceMap(1, 40000, tuple(blocks))
    assert dmap.model_ids == [1, 103, 160] and dmap.first(160, 103) == blocks[1]
