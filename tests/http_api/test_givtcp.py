"""GivTCP face against the real giv-bridge and its dongle simulator: runAll and every control."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from tests.http_api.conftest import HttpApi
from tests.support.bus_helpers import until
from tests.support.servers import Mosquitto, SimulatorProcess

INVERTER = "givenergy-sa2345g678"
TOKEN = "s3cret-token"

# GivTCP's REST table with its own payloads (numbers as text), plus the rate controls.
CONTROLS: list[tuple[str, dict[str, str] | None, str]] = [
    ("enableChargeTarget", None, "set_charge_target_enabled"),
    ("disableChargeTarget", None, "set_charge_target_enabled"),
    ("pauseChargeSchedule", None, "set_schedule"),
    ("resumeChargeSchedule", None, "set_schedule"),
    ("pauseDischargeSchedule", None, "set_schedule"),
    ("resumeDischargeSchedule", None, "set_schedule"),
    ("setChargeTarget", {"chargeToPercent": "50"}, "set_charge_target"),
    ("setBatteryReserve", {"dischargeToPercent": "5"}, "set_battery_reserve"),
    ("setChargeSlot1", {"start": "0100", "finish": "0400", "chargeToPercent": "55"}, "set_charge_slot"),
    ("setChargeSlot2", {"start": "0100", "finish": "0400", "chargeToPercent": "55"}, "set_charge_slot"),
    ("setDischargeSlot1", {"start": "0100", "finish": "0400", "dischargeToPercent": "55"}, "set_discharge_slot"),
    ("setDischargeSlot2", {"start": "0100", "finish": "0400", "dischargeToPercent": "55"}, "set_discharge_slot"),
    ("setBatteryMode", {"mode": "1"}, "set_battery_mode"),
    ("setBatteryMode", {"mode": "Eco"}, "set_battery_mode"),  # current GivTCP: the mode's name
    ("enableChargeSchedule", {"state": "enable"}, "set_schedule"),
    ("enableDischargeSchedule", {"state": "disable"}, "set_schedule"),
    ("enableChargeTarget", {"state": "disable"}, "set_charge_target_enabled"),
    ("setDateTime", {"dateTime": "21/06/2024 10:15:00"}, "set_clock"),
    ("setChargeRate", {"chargeRate": "2600"}, "set_battery_power_limit"),
]


async def test_runall_and_every_control_through_the_bridge(broker: Mosquitto, giv_sim: SimulatorProcess,
                                                            start_service: Any,
                                                            http_api: Callable[..., HttpApi]) -> None:
    start_service("wattbus_giv_bridge", env={
        **broker.env("giv-bridge"), "WATTBUS_GIV_BRIDGE_POLL_INTERVAL_S": "1",
        "WATTBUS_GIV_BRIDGE_INSTANCE": f"h{giv_sim.port}",
        "WATTBUS_GIV_BRIDGE_INVERTERS": f'[{{ host = "127.0.0.1", port = {giv_sim.port}, batteries = 2 }}]'})
    # Port list with a second listener like GivTCP's 6345; writes need the token (no trusted network).
    api = http_api(f'token = "{TOKEN}"\ntrusted_networks = []\ncommand_timeout_s = 30\n')
    await until(lambda: api.call("GET", "/runAll")[0] == 200, 40, "runAll from giv-bridge")
    status, doc, _ = api.call("GET", "/runAll")
    assert {"Power", "Energy", "Invertor_Details", "Timeslots", "Control", "Battery_Details"} <= set(doc)
    assert set(doc["Battery_Details"]) == {"BG2345G001", "DZ2345G002"}
    for alias in ("/getCache", "/readData"):  # GivTCP's other names for the same document, open like runAll
        status, same, _ = api.call("GET", alias)
        assert status == 200 and same["Invertor_Details"] == doc["Invertor_Details"], (alias, same)

    for name, payload, command in CONTROLS:
        status, answer, _ = api.call("POST", f"/{name}", payload, token=TOKEN)
        assert status == 200, (name, answer)
        assert answer["result"] == f"{name} was a success"
        assert answer["wattbus"]["status"] == "ok" and answer["wattbus"]["command"] == command
        assert answer["wattbus"]["target"] == INVERTER and answer["wattbus"]["applied"], answer

    await _givtcp_functions(api)

    # The new values show in runAll (the bridge republishes after a confirmed write).
    await until(lambda: str(api.call("GET", "/runAll")[1]["Control"].get("Target_SOC")) == "55", 20,
                "charge target 55 (setChargeSlot2) in runAll")

    # The same inverter through the own REST API and MeterHub's /command (contract commands).
    status, result, _ = api.call("POST", f"/api/v1/devices/giv-bridge/{INVERTER}/command",
                                 {"command": "set_charge_target", "soc_pct": 60}, token=TOKEN)
    assert status == 200 and result["status"] == "ok" and result["applied"], result
    status, answer, _ = api.call("POST", f"/command/{INVERTER}?command=set_battery_reserve&soc_pct=20", token=TOKEN)
    assert status == 200 and answer["results"][0]["command"] == "set_battery_reserve", answer
    status, answer, _ = api.call("POST", f"/command/giv-bridge/{INVERTER}-battery?command=set_battery_mode&mode=eco",
                                 token=TOKEN)
    assert status == 200 and answer["results"][0]["status"] == "ok", answer  # by source/device_id
    status, result, _ = api.call("POST", f"/api/v1/devices/giv-bridge/{INVERTER}/command",
                                 {"command": "set_charge_current", "current_a": 8}, token=TOKEN)
    # the bridge's own answer: the toolkit's router refuses what the inverter does not handle, naming what it does
    assert status == 409 and result["status"] == "refused" and "accepts: " in result["message"], result

    # Bad requests: 4xx naming the field, nothing sent to the inverter.
    for name, payload, where in (("setChargeTarget", {"chargeToPercent": "fifty"}, "$.chargeToPercent"),
                                 ("setChargeTarget", {}, "$.chargeToPercent"),
                                 ("setBatteryReserve", {"dischargeToPercent": "2"}, "$.dischargeToPercent"),
                                 ("setChargeSlot1", {"start": "0160", "finish": "0400"}, "$.start"),
                                 ("setBatteryMode", {"mode": "5"}, "$.mode"),
                                 ("setDateTime", {"dateTime": "2024-06-21 10:15"}, "$.dateTime")):
        status, err, _ = api.call("POST", f"/{name}", payload, token=TOKEN)
        assert status == 400 and err["where"] == where, (name, err)
    assert api.call("POST", "/setChargeTarget", {"chargeToPercent": "50"})[0] == 401
    assert api.call("POST", "/setChargeTarget", {"chargeToPercent": "50"}, token="wrong")[0] == 401
    status, err, _ = api.call("POST", "/setNothing", {}, token=TOKEN)
    assert status == 404 and "setChargeTarget" in err["error"]
    for name, payload, where in (("forceCharge", {"duration": "0"}, "$.duration"),
                                 ("tempPauseCharge", {}, "$.duration"),
                                 ("enableDischarge", {"state": "on"}, "$.state"),
                                 ("enableChargeSchedule", {}, "$.state")):
        status, err, _ = api.call("POST", f"/{name}", payload, token=TOKEN)
        assert status == 400 and err["where"] == where, (name, err)
    # the same-origin rule of every write: a page of another site may not force a charge
    request = urllib.request.Request(api.url + "/forceCharge", data=json.dumps({"duration": "30"}).encode(),
                                     method="POST", headers={"Content-Type": "application/json",
                                                             "Authorization": f"Bearer {TOKEN}",
                                                             "Origin": "http://evil.example"})
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("a cross-site forceCharge was accepted")
    except urllib.error.HTTPError as exc:
        assert exc.code == 403, exc.read()
    assert api.call("POST", "/forceCharge", {"duration": "30"})[0] == 401


async def _givtcp_functions(api: HttpApi) -> None:
    """GivTCP's functions the bridge runs itself: each confirmed by the registers read back."""
    def post(name: str, payload: dict[str, str]) -> dict[str, Any]:
        status, answer, _ = api.call("POST", f"/{name}", payload, token=TOKEN)
        assert status == 200 and answer["result"].startswith(f"{name} was a success"), (name, answer)
        assert answer["wattbus"]["status"] == "ok", answer
        applied: dict[str, Any] = answer["wattbus"]["applied"]
        return applied

    def control() -> dict[str, Any]:
        found: dict[str, Any] = api.call("GET", "/runAll")[1]["Control"]
        return found

    assert post("setBatteryReserve", {"reservePercent": "12"}) == {"hr_110": 12}  # GivTCP 2+'s key
    assert post("enableDischarge", {"state": "disable"}) == {"hr_110": 100}
    await until(lambda: control()["Enable_Discharge"] == "disable", 20, "discharge disabled in runAll")
    assert post("enableDischarge", {"state": "enable"}) == {"hr_110": 12}  # the reserve it had before

    before = control()["Enable_Charge_Schedule"]
    forced = post("forceCharge", {"duration": "30"})
    assert forced["hr_96"] == 1 and forced["hr_116"] == 100 and forced["hr_111"] == 50, forced
    await until(lambda: control()["Force_Charge"] == "Running" and control()["Force_Charge_Num"] in (29, 30), 20,
                "Force_Charge running in runAll")
    restored = post("forceCharge", {"duration": "Cancel"})
    assert restored["hr_96"] == (1 if before == "enable" else 0), restored
    await until(lambda: control()["Force_Charge"] == "Normal", 20, "Force_Charge over")

    assert post("tempPauseCharge", {"duration": "15"}) == {"hr_111": 0}
    await until(lambda: control()["Battery_Charge_Rate"] == 0 and control()["Temp_Pause_Charge"] == "Running",
                20, "charge paused in runAll")
    assert post("tempPauseCharge", {"duration": "Cancel"}) == {"hr_111": 50}
    assert post("forceExport", {"duration": "10"})["hr_59"] == 1
    assert post("forceExport", {"duration": "Cancel"})["hr_27"] == 1  # back to eco
