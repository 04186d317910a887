"""Devices the generic-bridge reads by description, on loopback: an AI-on-the-edge water meter, a
Tasmota SML reading head and a Shelly-like relay, answering in the shapes their documentation shows.

    wattbus-sim generic_http --device ai-on-the-edge --port 18095   # GET /json
    wattbus-sim generic_http --device tasmota-sml --port 18096      # GET /cm?cmnd=status%2010
    wattbus-sim generic_http --device relay --port 18097            # GET /status, /relay/0?turn=on|off

`POST /sim/firmware?prefix=Strom` renames the Tasmota meter's JSON prefix (what a changed SML script
does) and `?number=wasser` AI-on-the-edge's number sequence, so a selector stops matching at run time.
`--password` (with `--username`, default admin) puts every path behind HTTP basic auth, as a device's
"restrict access" setting does: 401 with a `WWW-Authenticate: Basic` challenge otherwise.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from wattbus_sim.goe import serve_http
from wattbus_sim.lifecycle import run


@dataclass
class WaterMeter:
    """An analog water meter read every few minutes: m³ with 5 decimals, as text (REST-API.md)."""

    total_m3: float = 1130.15400
    flow_l_per_min: float = 4.2
    number: str = "main"
    _last: float = field(default_factory=time.monotonic)

    def document(self) -> dict[str, Any]:
        now = time.monotonic()
        rate_m3 = self.flow_l_per_min / 1000
        self.total_m3 += rate_m3 * (now - self._last) / 60
        self._last = now
        value = f"{self.total_m3:.5f}"
        stamp = datetime.now().astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")
        return {self.number: {"value": value, "raw": value, "pre": value, "error": "no error",
                              "rate": f"{rate_m3:.6f}", "timestamp": stamp}}


@dataclass
class SmlHead:
    """A Tasmota IR head on a two-way meter: kWh totals with 3 decimals, power in W (Power_curr)."""

    import_kwh: float = 3985.744
    export_kwh: float = 18804.181
    power_w: float = 513.0
    prefix: str = "SML"
    _last: float = field(default_factory=time.monotonic)

    def status_sns(self) -> dict[str, Any]:
        now = time.monotonic()
        energy_kwh = self.power_w * (now - self._last) / 3_600_000
        self._last = now
        if energy_kwh >= 0:
            self.import_kwh += energy_kwh
        else:
            self.export_kwh -= energy_kwh
        return {"Time": datetime.now().strftime("%Y-%m-%dT%H:%M:%S"),
                self.prefix: {"Total_in": round(self.import_kwh, 3), "Total_out": round(self.export_kwh, 3),
                              "Power_curr": round(self.power_w), "Meter_id": "0a01454d4800009f4d2e"}}


@dataclass
class PlainRelay:
    """A metered relay with Shelly Gen1's plain HTTP API: /status, /relay/0[?turn=on|off]."""

    on: bool = False
    load_w: float = 1187.4
    total_wmin: float = 2_418_520.0  # Gen1 counts watt-minutes
    switches: int = 0
    _last: float = field(default_factory=time.monotonic)

    def relay(self) -> dict[str, Any]:
        return {"ison": self.on, "has_timer": False, "timer_started": 0, "timer_duration": 0,
                "timer_remaining": 0, "overpower": False, "source": "http"}

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        power = self.load_w if self.on else 0.0
        self.total_wmin += power * (now - self._last) / 60
        self._last = now
        return {"wifi_sta": {"connected": True, "ssid": "wattbus", "ip": "127.0.0.1", "rssi": -58},
                "time": datetime.now().strftime("%H:%M"), "unixtime": int(time.time()), "has_update": False,
                "mac": "E8DB84D2C3B7", "relays": [self.relay()],
                "meters": [{"power": power, "overpower": 0.0, "is_valid": True, "timestamp": int(time.time()),
                            "counters": [power, power, power], "total": round(self.total_wmin)}],
                "temperature": 47.6, "overtemperature": False, "uptime": int(now)}


def basic_auth(username: str, password: str) -> Any:
    """A middleware that answers 401 unless the request carries these credentials."""
    expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()

    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        if not hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected.encode()):
            return web.Response(status=401, text="401 Unauthorized", headers={"WWW-Authenticate": 'Basic realm="sim"'})
        response: web.StreamResponse = await handler(request)
        return response

    return check


def build_app(device: str, username: str = "admin", password: str | None = None) -> web.Application:
    water, head, plain = WaterMeter(), SmlHead(), PlainRelay()
    app = web.Application(middlewares=[basic_auth(username, password)] if password is not None else [])

    async def json_endpoint(_request: web.Request) -> web.Response:
        return web.json_response(water.document())

    async def command(request: web.Request) -> web.Response:
        cmnd = request.query.get("cmnd", "").strip().lower()
        if cmnd == "status 10":
            return web.json_response({"StatusSNS": head.status_sns()})
        return web.json_response({"Command": "Unknown"})  # what Tasmota answers to a command it lacks

    async def firmware(request: web.Request) -> web.Response:
        head.prefix = request.query.get("prefix", head.prefix)
        water.number = request.query.get("number", water.number)
        return web.json_response({"prefix": head.prefix, "number": water.number})

    async def status(_request: web.Request) -> web.Response:
        return web.json_response(plain.status())

    async def relay(request: web.Request) -> web.Response:
        if request.match_info["channel"] != "0":
            return web.Response(status=404, text="Not found")
        turn = request.query.get("turn")
        if turn not in (None, "on", "off", "toggle"):
            return web.Response(status=400, text="Bad turn!")
        if turn is not None:
            wanted = not plain.on if turn == "toggle" else turn == "on"
            plain.status()  # count the energy up to the switch
            plain.switches += plain.on != wanted
            plain.on = wanted
        return web.json_response(plain.relay())

    if device == "ai-on-the-edge":
        app.router.add_get("/json", json_endpoint)
    elif device == "tasmota-sml":
        app.router.add_get("/cm", command)
    else:
        app.router.add_get("/status", status)
        app.router.add_get("/relay/{channel}", relay)
    app.router.add_post("/sim/firmware", firmware)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wattbus-sim generic_http",
                                     description="AI-on-the-edge water meter, Tasmota SML head or plain relay")
    parser.add_argument("--device", choices=["ai-on-the-edge", "tasmota-sml", "relay"], required=True)
    parser.add_argument("--port", type=int, default=18095)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", help="answer only requests with these basic-auth credentials")
    args = parser.parse_args(argv)
    app = build_app(args.device, args.username, args.password)
    run(serve_http(app, args.port, f"{args.device} simulator", host=args.host))
    return 0
