"""A Fronius site on loopback answering the Solar API v1 (Fronius, 42,0410,2012): a Datamanager
with one or more inverters, a Smart Meter at the grid point and a battery, by day or by night.

    wattbus-sim fronius --port 18098 [--inverters 2] [--no-meter] [--no-battery] [--night]

By night the power flow sends null for P_PV and each inverter's P, and an inverter answers only its
energy counters and DeviceStatus (standby): the shape a sleeping Fronius inverter has.
`POST /sim/phase?night=1|0` switches at run time.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from wattbus_sim.goe import serve_http
from wattbus_sim.lifecycle import run

API = "/solar_api/v1"


@dataclass
class Site:
    inverters: int = 1
    meter: bool = True
    battery: bool = True
    night: bool = False
    pv_w: float = 3200.0  # by day, shared by the inverters
    load_w: float = 900.0
    soc_pct: float = 62.5
    imported_wh: float = 4_203_311.0
    exported_wh: float = 9_877_102.0
    produced_wh: float = 26_213_502.0
    _last: float = field(default_factory=time.monotonic)

    def flows(self) -> tuple[float | None, float | None, float]:
        """(P_PV, P_Akku, P_Grid) with Fronius's signs: PV +, battery + discharge, grid + import."""
        pv = None if self.night else self.pv_w
        akku = None if not self.battery else 400.0 if self.night else -1000.0
        return pv, akku, self.load_w - (pv or 0.0) - (akku or 0.0)

    def advance(self) -> None:
        now = time.monotonic()
        hours, self._last = (now - self._last) / 3600, now
        pv, _akku, grid = self.flows()
        self.produced_wh += (pv or 0.0) * hours
        if grid >= 0:
            self.imported_wh += grid * hours
        else:
            self.exported_wh -= grid * hours


def answer(data: dict[str, Any], code: int = 0, reason: str = "", **args: str) -> web.Response:
    stamp = datetime.now().astimezone().isoformat(timespec="seconds")
    return web.json_response({"Head": {"RequestArguments": args, "Status": {"Code": code, "Reason": reason,
                                                                            "UserMessage": ""},
                                       "Timestamp": stamp}, "Body": {"Data": data}})


def build_app(site: Site) -> web.Application:
    app = web.Application()

    def per_inverter(value: float | None) -> float | None:
        return None if value is None else round(value / site.inverters, 1)

    async def version(_request: web.Request) -> web.Response:
        return web.json_response({"APIVersion": 1, "BaseURL": f"{API}/", "CompatibilityRange": "1.8-4"})

    async def active(_request: web.Request) -> web.Response:
        inverters = {str(n): {"DT": 123, "Serial": f"3041{n:04d}"} for n in range(1, site.inverters + 1)}
        return answer({"Inverter": inverters, "Meter": {"0": {"DT": -1, "Serial": "18471234"}} if site.meter else {},
                       "Storage": {"0": {"DT": -1, "Serial": "P0311"}} if site.battery else {},
                       "Ohmpilot": {}, "SensorCard": {}, "StringControl": {}}, DeviceClass="System")

    async def flow(_request: web.Request) -> web.Response:
        site.advance()
        pv, akku, grid = site.flows()
        inverters = {str(n): {"DT": 123, "P": per_inverter(pv), "E_Day": 8029.0, "E_Total": site.produced_wh}
                     | ({"SOC": site.soc_pct, "Battery_Mode": "normal"} if site.battery and n == 1 else {})
                     for n in range(1, site.inverters + 1)}
        return answer({"Site": {"Mode": "meter" if site.meter else "produce-only", "Meter_Location": "grid",
                                "P_Grid": grid if site.meter else None, "P_Load": -site.load_w if site.meter else None,
                                "P_Akku": akku, "P_PV": pv, "E_Day": 8029.0, "E_Year": 1_331_188.8,
                                "E_Total": site.produced_wh, "rel_Autonomy": 100.0 if grid <= 0 else 61.5,
                                "rel_SelfConsumption": None if pv is None else 59.4},
                       "Inverters": inverters, "Version": "12"})

    async def inverter(request: web.Request) -> web.Response:
        n = request.query.get("DeviceId", "")
        if not n.isdigit() or not 1 <= int(n) <= site.inverters:
            return answer({}, 12, f"DeviceId {n!r} not available", DeviceId=n, Scope="Device")
        pac = per_inverter(site.flows()[0])
        data: dict[str, Any] = {"DAY_ENERGY": {"Value": 8029.0, "Unit": "Wh"},
                                "TOTAL_ENERGY": {"Value": round(site.produced_wh / site.inverters), "Unit": "Wh"},
                                "YEAR_ENERGY": {"Value": 1_331_188.8, "Unit": "Wh"},
                                "DeviceStatus": {"StatusCode": 8 if pac is None else 7, "ErrorCode": 0,
                                                 "LEDColor": 2, "LEDState": 0, "MgmtTimerRemainingTime": -1,
                                                 "StateToReset": False}}
        if pac is not None:  # a sleeping inverter leaves its AC and DC values out; DC split on two trackers
            dc_w = pac / 0.97 / 2
            data |= {"PAC": {"Value": pac, "Unit": "W"}, "FAC": {"Value": 50.01, "Unit": "Hz"},
                     "UAC": {"Value": 231.4, "Unit": "V"}, "IAC": {"Value": round(pac / 231.4, 2), "Unit": "A"},
                     "UDC": {"Value": 412.0, "Unit": "V"}, "IDC": {"Value": round(dc_w / 412.0, 3), "Unit": "A"},
                     "UDC_2": {"Value": 398.0, "Unit": "V"}, "IDC_2": {"Value": round(dc_w / 398.0, 3), "Unit": "A"}}
        return answer(data, DataCollection="CommonInverterData", DeviceId=n, Scope="Device")

    async def meter(_request: web.Request) -> web.Response:
        if not site.meter:
            return answer({}, DeviceClass="Meter", Scope="System")
        site.advance()
        grid = site.flows()[2]
        phases = {f"{key}_{n}": value for n in (1, 2, 3) for key, value in (
            ("Voltage_AC_Phase", 230.0 + n), ("Current_AC_Phase", round(abs(grid) / 3 / 230, 3)),
            ("PowerReal_P_Phase", round(grid / 3, 2)), ("PowerFactor_Phase", 0.98 if grid >= 0 else -0.98))}
        return answer({"0": {"Details": {"Manufacturer": "Fronius", "Model": "Smart Meter TS 65A-3",
                                         "Serial": "18471234"},
                             "Enable": 1, "Visible": 1, "Meter_Location_Current": 0, "TimeStamp": int(time.time()),
                             "PowerReal_P_Sum": grid, "Frequency_Phase_Average": 50.0,
                             "EnergyReal_WAC_Sum_Consumed": round(site.imported_wh),
                             "EnergyReal_WAC_Sum_Produced": round(site.exported_wh)} | phases},
                      DeviceClass="Meter", Scope="System")

    async def storage(_request: web.Request) -> web.Response:
        if not site.battery:
            return answer({}, DeviceClass="Storage", Scope="System")
        akku = site.flows()[1] or 0.0
        return answer({"0": {"Controller": {"Details": {"Manufacturer": "BYD", "Model": "BYD Battery-Box Premium HV",
                                                        "Serial": "P0311"},
                                            "Capacity_Maximum": 11520, "DesignedCapacity": 11520, "Enable": 1,
                                            "StateOfCharge_Relative": site.soc_pct, "Status_BatteryCell": 3,
                                            "Temperature_Cell": 21.5, "TimeStamp": int(time.time()),
                                            "Voltage_DC": 409.6, "Current_DC": round(akku / 409.6, 2)},
                             "Modules": []}}, DeviceClass="Storage", Scope="System")

    async def phase(request: web.Request) -> web.Response:
        site.advance()
        site.night = request.query.get("night", "0") in ("1", "true")
        return web.json_response({"night": site.night})

    app.router.add_get("/solar_api/GetAPIVersion.cgi", version)
    app.router.add_get(f"{API}/GetActiveDeviceInfo.cgi", active)
    app.router.add_get(f"{API}/GetPowerFlowRealtimeData.fcgi", flow)
    app.router.add_get(f"{API}/GetInverterRealtimeData.cgi", inverter)
    app.router.add_get(f"{API}/GetMeterRealtimeData.cgi", meter)
    app.router.add_get(f"{API}/GetStorageRealtimeData.cgi", storage)
    app.router.add_post("/sim/phase", phase)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wattbus-sim fronius", description="a Fronius site on the Solar API v1")
    parser.add_argument("--port", type=int, default=18098)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--inverters", type=int, default=1, choices=range(1, 11), metavar="1..10")
    parser.add_argument("--no-meter", action="store_true", help="a site without a Smart Meter")
    parser.add_argument("--no-battery", action="store_true", help="a site without a battery")
    parser.add_argument("--night", action="store_true", help="start by night (POST /sim/phase?night=0 for day)")
    args = parser.parse_args(argv)
    site = Site(inverters=args.inverters, meter=not args.no_meter, battery=not args.no_battery, night=args.night)
    run(serve_http(build_app(site), args.port, "Fronius Solar API simulator", host=args.host))
    return 0
