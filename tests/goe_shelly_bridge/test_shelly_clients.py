"""The Shelly simulator as real clients see it: Gen1 REST and Gen2 RPC over HTTP with aiohttp,
Gen2 RPC over the WebSocket with Home Assistant's aioshelly, and the output protection limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aioshelly.common import ConnectionOptions, get_info, is_firmware_supported
from aioshelly.exceptions import InvalidAuthError
from aioshelly.rpc_device import RpcDevice
from wattbus_sim.shelly import ShellyState
from wattbus_sim.shelly import build_app as shelly_app

from tests.goe_shelly_bridge.conftest import ServeApp


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, Any]:
    async with http.get(url, params=params) as resp:
        body = await resp.text()
        return resp.status, json.loads(body) if resp.content_type == "application/json" else body


async def test_gen1_settings_and_overpower(serve: ServeApp, http: aiohttp.ClientSession) -> None:
    state = ShellyState("SHSW-PM", mac="E8DB84000101", load_w=3000.0)
    url = (await serve(shelly_app(state))).url
    status, doc = await get(http, f"{url}/settings")
    assert status == 200 and doc["device"] == {"type": "SHSW-PM", "mac": "E8DB84000101", "num_outputs": 1,
                                               "hostname": "shelly1pm-000101", "num_meters": 1}
    assert doc["max_power"] == 3500 and doc["login"]["enabled"] is False and doc["fw"].startswith("2023")
    assert [r["ison"] for r in doc["relays"]] == [False] and doc["name"] is None

    status, doc = await get(http, f"{url}/settings", name="Heater", max_power="2000")
    assert status == 200 and (doc["name"], doc["max_power"], state.power_limit_w) == ("Heater", 2000, [2000.0])
    assert await get(http, f"{url}/settings", max_power="9000") == (400, "max_power: '9000' is out of range (1..3500)")
    assert await get(http, f"{url}/settings", colour="red") == (400, "colour: unknown setting")
    status, doc = await get(http, f"{url}/settings/relay/0", name="Boiler")
    assert status == 200 and doc["name"] == "Boiler" and doc["default_state"] == "off"
    assert (await get(http, f"{url}/settings/relay/1"))[0] == 404

    # 3000 W behind a 2000 W limit: the relay trips at once and says why
    status, doc = await get(http, f"{url}/relay/0", turn="on")
    assert status == 200 and (doc["ison"], doc["overpower"]) == (False, True) and state.relays == [False]
    status, doc = await get(http, f"{url}/status")
    assert doc["relays"][0]["overpower"] is True and doc["meters"][0]["overpower"] == 3000.0
    await get(http, f"{url}/settings", max_power="3500")
    status, doc = await get(http, f"{url}/relay/0", turn="toggle")
    assert (doc["ison"], doc["overpower"], state.relays) == (True, False, [True])


async def test_gen2_rpc_over_http_get_and_post(serve: ServeApp, http: aiohttp.ClientSession) -> None:
    state = ShellyState("Plus2PM", mac="A0A3B3000102", load_w=2000.0)
    url = (await serve(shelly_app(state))).url
    assert await get(http, f"{url}/rpc/Switch.Toggle", id="1") == (200, {"was_on": False})
    assert await get(http, f"{url}/rpc/Switch.Toggle", id="1") == (200, {"was_on": True})
    assert state.relays == [False, False] and state.switches == 2
    status, config = await get(http, f"{url}/rpc/Switch.GetConfig", id="0")
    assert status == 200 and (config["id"], config["power_limit"], config["current_limit"]) == (0, 2800.0, 10.0)
    status, sys = await get(http, f"{url}/rpc/Sys.GetStatus")
    assert status == 200 and sys["mac"] == "A0A3B3000102" and sys["cfg_rev"] == 10 and sys["unixtime"] > 0
    status, full = await get(http, f"{url}/rpc/Shelly.GetConfig")
    assert status == 200 and {"sys", "wifi", "mqtt", "cloud", "switch:0", "switch:1"} <= full.keys()
    assert full["sys"]["device"]["mac"] == "A0A3B3000102" and full["switch:1"]["id"] == 1
    assert (await get(http, f"{url}/rpc/Switch.GetConfig", id="2"))[0] == 404

    # a lower limit through the query-string form: 2000 W now trips switch:0
    status, answer = await get(http, f"{url}/rpc/Switch.SetConfig", id="0", config='{"power_limit": 1500}')
    assert (status, answer, state.cfg_rev) == (200, {"restart_required": False}, 11)
    status, answer = await get(http, f"{url}/rpc/Switch.SetConfig", id="0", config='{"current_limit": 40}')
    assert (status, answer["code"], answer["message"]) == (400, -103, "current_limit: 40 is out of range (0.1..10)")

    async def rpc(method: str, **params: Any) -> dict[str, Any]:
        async with http.post(f"{url}/rpc", json={"id": 7, "method": method, "params": params}) as resp:
            frame: dict[str, Any] = await resp.json()
            assert frame["id"] == 7 and frame["src"] == state.device_id
            return frame
    assert (await rpc("Switch.Toggle", id=0))["result"] == {"was_on": False}
    status_doc = (await rpc("Switch.GetStatus", id=0))["result"]
    assert status_doc["output"] is False and status_doc["errors"] == ["overpower"]
    assert (await rpc("Shelly.GetConfig"))["result"]["switch:0"]["power_limit"] == 1500.0
    assert (await rpc("Sys.SetConfig", config={"device": {"name": "Heat pump"}}))["result"] == {
        "restart_required": False}
    assert (await rpc("Sys.GetConfig"))["result"]["device"]["name"] == "Heat pump"
    assert (await rpc("Switch.SetConfig", id=1, config={"colour": 1}))["error"]["code"] == -103


async def test_gen2_http_digest_auth_with_aiohttp(serve: ServeApp) -> None:
    state = ShellyState("Pro4PM", mac="08F9E0000103")
    url = (await serve(shelly_app(state, "s3cret"))).url
    async with aiohttp.ClientSession() as anonymous:
        assert (await get(anonymous, f"{url}/rpc/Sys.GetStatus"))[0] == 401
        status, info = await get(anonymous, f"{url}/rpc/Shelly.GetDeviceInfo")  # open, as on the device
        assert status == 200 and info["auth_en"] is True and info["auth_domain"] == state.device_id
    digest = aiohttp.DigestAuthMiddleware("admin", "s3cret")
    async with aiohttp.ClientSession(middlewares=(digest,)) as session:
        assert await get(session, f"{url}/rpc/Switch.Toggle", id="3") == (200, {"was_on": False})
        status, config = await get(session, f"{url}/rpc/Shelly.GetConfig")
        assert status == 200 and config["switch:3"]["power_limit"] == 4480.0
    assert state.relays == [False, False, False, True]


@pytest.mark.parametrize("password", [None, "s3cret"])
async def test_aioshelly_rpc_device_over_websocket(serve: ServeApp, http: aiohttp.ClientSession,
                                                   password: str | None) -> None:
    state = ShellyState("Plus1PM", mac="A0A3B3000104", load_w=1200.0)
    served = await serve(shelly_app(state, password))
    info = await get_info(http, "127.0.0.1", port=served.port)
    assert (info["gen"], info["mac"], info["auth_en"]) == (2, "A0A3B3000104", password is not None)
    options = ConnectionOptions("127.0.0.1", port=served.port, device_mac="A0A3B3000104",
                                username="admin" if password else None, password=password)
    device = await RpcDevice.create(http, None, options)
    try:
        await device.initialize()
        assert device.initialized and device.firmware_supported and device.requires_auth is (password is not None)
        assert (device.gen, device.model, device.hostname) == (2, "SNSW-001P16EU", state.device_id)
        assert device.config["switch:0"]["power_limit"] == 4480.0 and device.name == state.device_id
        assert device.status["switch:0"]["output"] is False and device.status["sys"]["mac"] == "A0A3B3000104"

        await device.switch_set(0, True)
        assert state.relays == [True]
        assert (await device.call_rpc("Switch.GetStatus", {"id": 0}))["output"] is True
        await device.call_rpc("Switch.SetConfig", {"id": 0, "config": {"power_limit": 1000}})
        await device.call_rpc("Switch.Toggle", {"id": 0})
        await device.switch_set(0, True)  # 1200 W behind 1000 W: refused by the output itself
        status = await device.call_rpc("Switch.GetStatus", {"id": 0})
        assert (status["output"], status["errors"], state.relays) == (False, ["overpower"], [False])
        assert (await device.call_rpc("Sys.GetStatus"))["cfg_rev"] == 11
    finally:
        await device.shutdown()


async def test_aioshelly_refuses_a_wrong_password_and_reads_gen1_info(serve: ServeApp,
                                                                      http: aiohttp.ClientSession) -> None:
    served = await serve(shelly_app(ShellyState("Pro3EM", mac="08F9E0000105"), "right"))
    options = ConnectionOptions("127.0.0.1", port=served.port, username="admin", password="wrong")
    device = await RpcDevice.create(http, None, options)
    with pytest.raises(InvalidAuthError):
        await device.initialize()
    await device.shutdown()
    assert not device.initialized

    gen1 = await serve(shelly_app(ShellyState("SHSW-25", mac="E8DB84000106"), "pw"))
    info = await get_info(http, "127.0.0.1", port=gen1.port)
    assert (info["type"], info["auth"], info["num_outputs"]) == ("SHSW-25", True, 2)
    assert is_firmware_supported(1, info["type"], info["fw"])
