"""Own REST face with the simulated house and the real surplus controller on the bus."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.http_api.conftest import HttpApi
from tests.support.bus_helpers import until
from tests.support.servers import Mosquitto

TOKEN = "t0ken"


async def first_event(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        async for raw in resp.content:
            line = raw.decode().strip()
            if line.startswith("data: "):
                event: dict[str, Any] = json.loads(line[6:])
                return event
    raise AssertionError("the event stream ended without an event")


async def test_rest_loadpoint_and_commands(broker: Mosquitto, house: Any, http_api: Callable[..., HttpApi]) -> None:
    api = http_api(f'token = "{TOKEN}"\ntrusted_networks = []\n')
    await until(lambda: api.call("GET", "/api/v1/loadpoints/garage")[0] == 200, 30, "loadpoint from the controller")
    await until(lambda: api.call("GET", "/api/v1/site")[1]["flow"]["home_w"] is not None, 30, "the house's flow")

    devices = {d["ref"]: d for d in api.call("GET", "/api/v1/devices")[1]}
    meter = devices["house-sim/house-meter"]
    assert meter["online"] is True and meter["meta"]["kind"] == "meter" and meter["reading"]["kind"] == "meter"
    status, one, _ = api.call("GET", "/api/v1/devices/house-sim/house-wallbox")
    assert status == 200 and one["meta"]["capabilities"] == ["set_charge_current", "set_charging", "set_phases"]

    # Mode switch: the answer is the controller's real result, and its retained state follows.
    status, result, _ = api.call("PUT", "/api/v1/loadpoints/garage/mode", {"mode": "now"}, token=TOKEN)
    assert status == 200 and result["status"] == "ok" and result["command"] == "set_loadpoint_mode", result
    await until(lambda: api.call("GET", "/api/v1/loadpoints/garage")[1]["mode"] == "now", 20, "mode now on the bus")
    status, result, _ = api.call("PUT", "/api/v1/loadpoints/garage/limits", {"min_current_a": 7, "max_current_a": 10},
                                 token=TOKEN)
    assert status == 200 and result["status"] == "ok"
    await until(lambda: api.call("GET", "/api/v1/loadpoints/garage")[1]["max_current_a"] == 10, 20, "new limits")
    # A charge plan: taken, but this loadpoint names no vehicle, so the plan says it cannot work.
    status, result, _ = api.call("PUT", "/api/v1/loadpoints/garage/plan", {"soc_pct": 80, "time": "0700"},
                                 token=TOKEN)
    assert status == 200 and result["status"] == "ok" and result["command"] == "set_loadpoint_plan", result
    await until(lambda: api.call("GET", "/api/v1/loadpoints/garage")[1]["plan_status"]
                == "no vehicle configured for this loadpoint", 20, "the plan's status on the bus")
    assert api.call("PUT", "/api/v1/loadpoints/garage/plan", {})[0] == 401  # no token: as every write

    # Validation: clear 4xx naming the field; the bus never sees these.
    for method, path, body, code, where in (
            ("PUT", "/api/v1/loadpoints/garage/mode", {"mode": "turbo"}, 400, "$.mode"),
            ("PUT", "/api/v1/loadpoints/garage/mode", {"mode": "pv", "x": 1}, 400, "body"),
            ("PUT", "/api/v1/loadpoints/garage/mode", [1], 400, "body"),
            ("PUT", "/api/v1/loadpoints/garage/limits", {"min_current_a": 12, "max_current_a": 8}, 400,
             "$.min_current_a"),
            ("PUT", "/api/v1/loadpoints/garage/limits", {"max_current_a": 40}, 400, "$.max_current_a"),
            ("PUT", "/api/v1/loadpoints/shed/mode", {"mode": "pv"}, 404, "path"),
            ("POST", "/api/v1/devices/house-sim/house-heater/command", {"command": "fly"}, 400, "$"),
            ("POST", "/api/v1/devices/house-sim/nope/command", {"command": "restart"}, 404, "path")):
        status, err, _ = api.call(method, path, body, token=TOKEN)
        assert status == code, (path, body, err)
        assert err["where"].startswith(where) and err["error"], err
    assert api.call("PUT", "/api/v1/loadpoints/garage/mode", {"mode": "pv"})[0] == 401
    assert api.call("DELETE", "/api/v1/site")[0] == 405
    assert api.call("GET", "/api/v1/nothing")[1]["where"] == "path"

    # MeterHub's /command to a loadpoint, answered by the controller (device commands: test_givtcp).
    status, answer, _ = api.call("POST", "/command/garage?mode=minpv", token=TOKEN)
    assert status == 200 and answer["topic"].endswith("/loadpoint/garage/command"), answer
    assert answer["results"][0]["status"] == "ok" and answer["results"][0]["target"] == "garage"
    await until(lambda: api.call("GET", "/api/v1/loadpoints/garage")[1]["mode"] == "minpv", 20, "mode minpv")
    for query, code in (("house-wallbox?amp=40", 400), ("house-wallbox?zap=1", 400), ("garage?amp=8", 400),
                        ("nowhere?amp=8", 404)):
        assert api.call("POST", f"/command/{query}", token=TOKEN)[0] == code, query
    assert api.call("GET", "/command/garage?mode=now", token=TOKEN)[0] == 405  # a GET changes nothing

    event = await asyncio.wait_for(first_event(api.url + "/api/v1/events"), 20)
    assert set(event["flow"]) >= {"pv_w", "grid_w", "home_w", "battery_w", "ev_w"}
    assert any(lp["loadpoint_id"] == "garage" for lp in event["loadpoints"])
    openapi = api.call("GET", "/api/v1/openapi.json")[1]
    assert openapi["openapi"].startswith("3.1") and "/setChargeSlot1" in openapi["paths"]
    assert {"/api/v1/loadpoints/{loadpoint_id}/mode", "/api/v1/loadpoints/{loadpoint_id}/plan"} <= set(openapi["paths"])
    energy = api.call("GET", "/api/v1/energy/today")[1]
    assert len(energy["series"]["pv_wh"]) == 96 and energy["totals_wh"]["pv_wh"] >= 0
