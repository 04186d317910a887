"""Simulator physics and auth, the bridge's limits, and `wattbus-goe-shelly-bridge read URL`."""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp
import pytest
from aiohttp import web
from wattbus_goe_shelly_bridge.guard import Guard, Limits
from wattbus_sim.goe import GoeFirmware, SimCharger
from wattbus_sim.goe import build_app as goe_app
from wattbus_sim.shelly import ShellyState
from wattbus_sim.shelly import build_app as shelly_app

from tests.goe_shelly_bridge.conftest import ServeApp


class Clock:
    """Simulated time, advanced by the test (the physics and the guard take a clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_charger_physics_ramp_min_current_and_phases() -> None:
    clock = Clock()
    car = SimCharger(ramp_delay_s=5.0, ramp_a_per_s=2.0, clock=clock)
    car.set_current_a(16)
    car.set_enabled(True)
    clock.now += 4.0
    car.step(clock.now)
    assert car.power_w() == 0.0  # still inside the ramp delay
    clock.now += 1.5
    car.step(clock.now)
    assert car.phase_currents_a() == (6.0, 6.0, 6.0)  # the car starts at the 6 A minimum, never below
    clock.now += 10.0
    car.step(clock.now)
    assert car.phase_currents_a() == (16.0, 16.0, 16.0) and car.power_w() == pytest.approx(3 * 16 * 230)
    car.set_current_a(3)  # below the minimum: the charger offers 6 A
    car.set_phases(1)
    clock.now += 20.0
    car.step(clock.now)
    assert car.phase_currents_a() == (6.0, 0.0, 0.0)
    assert car.session_energy_wh() > 0 and car.energy_total_wh() > 1_234_500
    car.set_enabled(False)
    car.step(clock.now + 1)
    assert car.power_w() == 0.0


def test_guard_limits_and_intervals() -> None:
    clock = Clock()
    guard = Guard(Limits(max_current_a=16, min_current_a=6, min_switch_interval_s=60,
                         min_phase_switch_interval_s=300), clock)
    assert guard.current_a(10.9, 32) == (10, "")
    assert guard.current_a(16.5, 32)[0] is None
    amps, why = guard.current_a(14, 13)
    assert amps is None and "device maximum of 13 A" in why
    assert guard.switch_allowed("charging") == ""
    guard.note_switch("charging")
    clock.now += 59
    assert "retry in 1 s" in guard.switch_allowed("charging")
    assert guard.switch_allowed("relay:0") == "" and guard.switch_allowed("phases") == ""
    clock.now += 1
    assert guard.switch_allowed("charging") == ""
    guard.note_switch("phases")
    clock.now += 299
    assert "minimum interval is 300 s" in guard.switch_allowed("phases")


async def test_goe_simulator_speaks_v2_and_v1(serve: ServeApp) -> None:
    fw = GoeFirmware(SimCharger(ramp_delay_s=0.0), serial="303030", max_current_a=16)
    url = (await serve(goe_app(fw, "both"))).url
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/api/status", params={"filter": "amp,sse"}) as resp:
            assert await resp.json() == {"amp": 16, "sse": "303030"}
        async with http.get(f"{url}/api/set", params={"amp": "5"}) as resp:
            assert resp.status == 400 and (await resp.json())["amp"] == "amp: 5 is out of range (6..16)"
        async with http.get(f"{url}/api/set", params={"amp": "8", "psm": "1"}) as resp:
            assert await resp.json() == {"amp": True, "psm": True}
        async with http.get(f"{url}/status") as resp:
            doc = await resp.json()
            assert doc["amp"] == "8" and doc["sse"] == "303030" and isinstance(doc["nrg"], list)
        async with http.get(f"{url}/mqtt", params={"payload": "alw=0"}) as resp:
            assert (await resp.json())["alw"] == "0"
    assert fw.sets == 3


async def test_shelly_simulator_auth(serve: ServeApp) -> None:
    gen1 = (await serve(shelly_app(ShellyState("SHSW-PM"), "secret"))).url
    gen2 = (await serve(shelly_app(ShellyState("Plus1PM"), "secret"))).url
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gen1}/status") as resp:
            assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Basic")
        async with http.get(f"{gen1}/shelly") as resp:
            assert (await resp.json())["auth"] is True
        async with http.get(f"{gen2}/rpc/Switch.GetStatus", params={"id": "0"}) as resp:
            assert resp.status == 401 and "algorithm=SHA-256" in resp.headers["WWW-Authenticate"]
    digest = aiohttp.DigestAuthMiddleware(login="admin", password="secret")
    async with (aiohttp.ClientSession(middlewares=(digest,)) as http,
                http.get(f"{gen2}/rpc/Switch.Set", params={"id": "0", "on": "true"}) as resp):
        assert await resp.json() == {"was_on": False}
    wrong = aiohttp.DigestAuthMiddleware(login="admin", password="guess")
    async with (aiohttp.ClientSession(middlewares=(wrong,)) as http,
                http.get(f"{gen2}/rpc/Switch.GetStatus", params={"id": "0"}) as resp):
        assert resp.status == 401


async def read_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wattbus_goe_shelly_bridge", "read", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_read_cli(serve: ServeApp) -> None:
    goe_v1 = (await serve(goe_app(GoeFirmware(SimCharger(), serial="404040"), "v1"))).url
    pro3em = (await serve(shelly_app(ShellyState("Pro3EM", mac="08F9E0ABCDEF"), "pw"))).url
    code, out, _err = await read_cli(goe_v1)
    doc = json.loads(out)
    assert code == 0 and (doc["device"], doc["api"]) == ("goe", "v1")
    assert doc["meta"][0]["device_id"] == "goe-404040" and doc["readings"][0]["kind"] == "charger"
    code, out, _err = await read_cli(pro3em, "--password", "pw")
    doc = json.loads(out)
    assert code == 0 and (doc["device"], doc["api"]) == ("shelly", "gen2")
    assert doc["readings"][0]["device_id"] == "shelly-08f9e0abcdef-em" and doc["readings"][0]["power_w"] == 500.0

    code, _out, err = await read_cli(pro3em)
    assert code == 1 and "has authentication on" in err
    async def not_a_charger(_request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"})
    other = web.Application()
    other.router.add_get("/status", not_a_charger)
    code, _out, err = await read_cli((await serve(other)).url)
    assert code == 3 and "not a supported device" in err
    code, _out, err = await read_cli("ftp://127.0.0.1")
    assert code == 2 and "not an http:// URL" in err


async def test_simulators_announce_over_mdns_on_loopback() -> None:
    """The go-e announces `_http._tcp` as go-echarger_<serial>, a Gen2 Shelly `_shelly._tcp`."""
    from wattbus_sim.goe import announce_mdns
    from zeroconf import IPVersion
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

    from tests.support.bus_helpers import until

    goe = await announce_mdns("_http._tcp.local.", "go-echarger_515151", 18080, {"devicetype": "go-eCharger"})
    shelly = await announce_mdns("_shelly._tcp.local.", "shellypro3em-08f9e0515151", 18082, {"gen": "2"})
    browser_zc = AsyncZeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    found: set[str] = set()

    def seen(zeroconf: object, service_type: str, name: str, state_change: object) -> None:
        found.add(name)

    browser = AsyncServiceBrowser(browser_zc.zeroconf, ["_http._tcp.local.", "_shelly._tcp.local."],
                                  handlers=[seen])
    try:
        await until(lambda: {"go-echarger_515151._http._tcp.local.",
                             "shellypro3em-08f9e0515151._shelly._tcp.local."} <= found, 20, "mDNS announcements")
    finally:
        await browser.async_cancel()
        for zc in (browser_zc, goe, shelly):
            await zc.async_close()
