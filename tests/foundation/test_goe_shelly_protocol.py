"""wattbus.goe and wattbus.shelly: one home for go-e and Shelly identification, shared by the
goe-shelly-bridge (detect) and discovery (mDNS confirmation), over the bridge's recorded answers.

Discovery's copy had drifted: it named a go-e `typ` only (the bridge adds the variant, `11 kW`,
and marks API v1), a Gen2+ Shelly by its SKU (`SPEM-003CEBEU`, the bridge by its model table,
`Shelly Pro 3EM`) with the build id `fw_id` as firmware (the bridge: `ver`), the maker as
`Shelly` (the bridge: `Allterco (Shelly)`), and took any JSON value as a go-e serial.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from wattbus import goe, shelly

DATA = Path(__file__).parents[1] / "goe_shelly_bridge" / "data"


def recorded(name: str, key: str) -> dict[str, Any]:
    doc = json.loads((DATA / name).read_text())[key]
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize(("name", "api", "serial", "model", "firmware"), [
    ("goe_v2_charging_3p.json", "v2", "203456", "go-eCharger 11 kW", "56.8"),
    ("goe_v2_forced_off_1p.json", "v2", "310077", "go-eCharger 22 kW", "55.4"),
    ("goe_v2_error_nrg_null.json", "v2", "014001", "go-eCharger", "054.7"),
    ("goe_v1_charging.json", "v1", "004321", "go-eCharger (API v1)", "040.0"),
])
def test_goe_identity_from_recorded_status(name: str, api: goe.Api, serial: str, model: str, firmware: str) -> None:
    doc = recorded(name, "response")
    assert goe.is_v2_status(doc) and goe.is_v1_status(doc)  # a full v2 status has the v1 keys: v2 is asked first
    assert goe.identity(doc, api, name) == goe.GoeIdentity(serial, firmware, model, api)
    assert goe.device_id(serial) == f"goe-{serial}"


@pytest.mark.parametrize("sse", ["", "   ", None, True, ["203456"], {"n": 1}])
def test_goe_status_without_a_usable_serial_is_refused(sse: object) -> None:
    doc = {**recorded("goe_v2_charging_3p.json", "response"), "sse": sse}
    with pytest.raises(goe.GoeIdentityError, match=r"http://dev/api/status: no serial number \(sse\)"):
        goe.identity(doc, "v2", "http://dev/api/status")


def test_goe_numeric_serial_is_taken_as_text() -> None:
    assert goe.identity({"sse": 203456}, "v2", "x").serial == "203456"


@pytest.mark.parametrize(("name", "gen", "model", "kind", "firmware", "auth"), [
    ("shelly_gen1_1pm.json", 1, "Shelly 1PM", "relay", "20230913-112003/v1.14.0-gcb84623", False),
    ("shelly_gen1_3em.json", 1, "Shelly 3EM", "meter", "20230913-114244/v1.14.0-gcb84623", True),
    ("shelly_gen2_plus1_unmetered.json", 2, "Shelly Plus 1", "relay", "1.3.3", False),
    ("shelly_gen2_plus1pm.json", 2, "Shelly Plus 1PM", "relay", "1.4.4", True),
    ("shelly_gen2_pro3em.json", 2, "Shelly Pro 3EM", "meter", "1.4.4", True),
])
def test_shelly_identity_from_recorded_info(name: str, gen: int, model: str, kind: str, firmware: str,
                                            auth: bool) -> None:
    doc = recorded(name, "info")
    assert shelly.is_info(doc)
    info = shelly.parse_info(doc, name)
    assert (info.gen, info.model_name, info.kind, info.firmware, info.auth) == (gen, model, kind, firmware, auth)
    assert info.mac == doc["mac"].upper() and info.relay_id() == shelly.device_id(info.mac)


@pytest.mark.parametrize(("doc", "model", "kind"), [
    ({"mac": "aabbccddeeff", "gen": 3, "app": "EMMiniG3"}, "Shelly EMMiniG3", "meter"),
    ({"mac": "aabbccddeeff", "gen": 3, "app": "Mini1PMG3"}, "Shelly Mini1PMG3", "relay"),
    ({"mac": "aabbccddeeff", "type": "SHPLG-U1"}, "Shelly SHPLG-U1", "relay"),
])
def test_unlisted_shelly_models_keep_their_key_and_a_kind(doc: dict[str, Any], model: str, kind: str) -> None:
    info = shelly.parse_info(doc, "x")
    assert (info.model, info.model_name, info.kind, info.mac) == (None, model, kind, "AABBCCDDEEFF")


@pytest.mark.parametrize(("doc", "why"), [
    ({"mac": "AA", "gen": 1}, "neither gen >= 2 nor a Gen1 type"),
    ({"mac": 7, "type": "SHSW-1"}, "no mac"),
    ({"mac": "", "gen": 2}, "no mac"),
])
def test_shelly_info_without_identity_is_refused(doc: dict[str, Any], why: str) -> None:
    assert shelly.is_info(doc)
    with pytest.raises(shelly.ShellyIdentityError, match=f"^http://dev/shelly: .*{why}"):
        shelly.parse_info(doc, "http://dev/shelly")


@pytest.mark.parametrize(("label", "goe_name", "shelly_name"), [
    ("go-echarger_777001", True, False), ("go-eCharger-203456", True, False), ("goecharger203456", True, False),
    ("shellypro3em-08f9e0e50002", False, True), ("shelly1pm-A8032AB10001", False, True),
    ("go-echarger", False, False), ("shellyplug", False, False), ("printer-a8032ab1", False, False),
])
def test_mdns_names(label: str, goe_name: bool, shelly_name: bool) -> None:
    assert (bool(goe.MDNS_NAME.match(label)), bool(shelly.MDNS_NAME.match(label))) == (goe_name, shelly_name)
