"""Shelly relays and meters on loopback: Gen1 REST (`/status`, `/relay/N`, `/settings`, `/settings/relay/N`)
and Gen2+ RPC (`GET /rpc/<Method>`, `POST /rpc`, and the WebSocket on `/rpc`; methods in gen2_call and
shelly_config.config_call).

Gen1 protects everything but `/shelly` with HTTP basic auth when a password is set; Gen2+ uses
digest auth (SHA-256, realm = device id, user `admin`) on HTTP and in each WebSocket frame, as the
real firmware does. Metered outputs trip on their power/current limits (shelly_state).

    wattbus-sim shelly --port 18081 --model SHSW-PM          # Gen1 Shelly 1PM
    wattbus-sim shelly --port 18082 --model Pro3EM --password secret
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from wattbus_sim.goe import serve_http
from wattbus_sim.lifecycle import run
from wattbus_sim.shelly_config import Refused, config_call, gen1_relay_settings, gen1_settings, sys_status
from wattbus_sim.shelly_state import GEN2_MODEL_IDS, MODELS, ShellyState
from wattbus_sim.shelly_ws import rpc_websocket

__all__ = ["GEN2_MODEL_IDS", "MODELS", "ShellyState", "build_app", "main"]

# --------------------------------------------------------------------------- Gen1

def gen1_relay(state: ShellyState, ch: int) -> dict[str, Any]:
    return {"ison": state.relays[ch], "has_timer": False, "timer_started": 0, "timer_duration": 0,
            "timer_remaining": 0, "overpower": state.overpower[ch], "source": "http"}


def gen1_status(state: ShellyState) -> dict[str, Any]:
    state.step()
    _gen, relays, _metered, em_phases, _prefix = MODELS[state.model]
    now = int(time.time())
    doc: dict[str, Any] = {
        "wifi_sta": {"connected": True, "ssid": "wattbus", "ip": "127.0.0.1", "rssi": -58},
        "cloud": {"enabled": False, "connected": False}, "mqtt": {"connected": False},
        "time": time.strftime("%H:%M"), "unixtime": now, "serial": 1, "has_update": False, "mac": state.mac,
        "cfg_changed_cnt": 0, "actions_stats": {"skipped": 0},
        "relays": [gen1_relay(state, ch) for ch in range(relays)],
        "update": {"status": "idle", "has_update": False, "new_version": "", "old_version": "20230913-112003/v1.14.0"},
        "ram_total": 51688, "ram_free": 39600, "fs_size": 233681, "fs_free": 150851, "uptime": 3600,
    }
    if em_phases:
        doc["emeters"] = [{"power": w, "pf": 0.95 if w else 0.0, "current": round(abs(w) / 230 / 0.95, 2),
                           "voltage": 231.2 + p, "is_valid": True,
                           "total": round(state.grid_import_wh / 3, 1),
                           "total_returned": round(state.grid_export_wh / 3, 1)}
                          for p, w in enumerate(state.grid_w)]
        doc["total_power"] = round(sum(state.grid_w), 2)
    else:
        # Shelly 1 (no metering) still reports a meters array with power 0.
        doc["meters"] = [{"power": state.power_w(ch), "overpower": state.load_w if state.overpower[ch] else 0.0,
                          "is_valid": True, "timestamp": now,
                          "counters": [0.0, 0.0, 0.0], "total": round(state.energy_wh[ch] * 60)}
                         for ch in range(relays)]
        doc["temperature"] = 41.3
        doc["overtemperature"] = False
        doc["tmp"] = {"tC": 41.3, "tF": 106.34, "is_valid": True}
    return doc


# --------------------------------------------------------------------------- Gen2+

def gen2_switch(state: ShellyState, ch: int) -> dict[str, Any]:
    state.step()
    doc: dict[str, Any] = {"id": ch, "source": "HTTP_in", "output": state.relays[ch]}
    if MODELS[state.model][2]:
        doc.update({"apower": state.power_w(ch), "voltage": 231.4, "freq": 50.0,
                    "current": round(state.power_w(ch) / 231.4, 3), "pf": 1.0 if state.relays[ch] else 0.0,
                    "aenergy": {"total": round(state.energy_wh[ch], 3), "by_minute": [0.0, 0.0, 0.0],
                                "minute_ts": int(time.time())}})
    doc["temperature"] = {"tC": 44.2, "tF": 111.6}
    if state.overpower[ch]:
        doc["errors"] = ["overpower"]
    return doc


def gen2_em(state: ShellyState) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": 0}
    for letter, w in zip("abc", state.grid_w, strict=True):
        doc.update({f"{letter}_current": round(abs(w) / 230 / 0.95, 3), f"{letter}_voltage": 230.9,
                    f"{letter}_act_power": w, f"{letter}_aprt_power": round(abs(w) / 0.95, 1),
                    f"{letter}_pf": 0.95, f"{letter}_freq": 50.0})
    doc.update({"n_current": None, "total_current": round(sum(abs(w) for w in state.grid_w) / 230, 3),
                "total_act_power": round(sum(state.grid_w), 3),
                "total_aprt_power": round(sum(abs(w) for w in state.grid_w) / 0.95, 3), "user_calibrated_phase": []})
    return doc


def gen2_emdata(state: ShellyState) -> dict[str, Any]:
    state.step()
    third_in, third_out = state.grid_import_wh / 3, state.grid_export_wh / 3
    doc: dict[str, Any] = {"id": 0}
    for letter in "abc":
        doc[f"{letter}_total_act_energy"] = round(third_in, 2)
        doc[f"{letter}_total_act_ret_energy"] = round(third_out, 2)
    doc.update({"total_act": round(state.grid_import_wh, 2), "total_act_ret": round(state.grid_export_wh, 2)})
    return doc


def gen2_info(state: ShellyState) -> dict[str, Any]:
    return {"name": None, "id": state.device_id, "mac": state.mac, "slot": 0,
            "model": GEN2_MODEL_IDS.get(state.model, state.model), "gen": state.gen,
            "fw_id": "20241011-114455/1.4.4-g6d2a586", "ver": "1.4.4", "app": state.model,
            "auth_en": False, "auth_domain": None}


def gen2_status(state: ShellyState) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ble": {}, "cloud": {"connected": False}, "mqtt": {"connected": False},
        "sys": sys_status(state),
        "wifi": {"sta_ip": "127.0.0.1", "status": "got ip", "ssid": "wattbus", "rssi": -57},
    }
    for ch in range(len(state.relays)):
        doc[f"switch:{ch}"] = gen2_switch(state, ch)
    if MODELS[state.model][3]:
        doc["em:0"] = gen2_em(state)
        doc["emdata:0"] = gen2_emdata(state)
    return doc


def _truthy(raw: str | None) -> bool | None:
    return {"true": True, "false": False, "1": True, "0": False}.get((raw or "").lower())


def gen2_call(state: ShellyState, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """One RPC: (HTTP status, result or error object)."""
    ident = params.get("id", 0)
    try:
        ident = int(ident)
    except (TypeError, ValueError):
        return 400, {"code": -103, "message": f"Invalid argument 'id': {ident!r}"}
    has_switch = 0 <= ident < len(state.relays)
    if method == "Shelly.GetStatus":
        return 200, gen2_status(state)
    if method == "Shelly.GetDeviceInfo":
        return 200, gen2_info(state)
    if method == "Switch.GetStatus" and has_switch:
        return 200, gen2_switch(state, ident)
    if method == "Switch.Set" and has_switch:
        on = params.get("on")
        on = _truthy(on) if isinstance(on, str) else on
        if not isinstance(on, bool):
            return 400, {"code": -103, "message": "Missing required argument 'on'!"}
        return 200, {"was_on": state.switch(ident, on)}
    if method == "EM.GetStatus" and ident == 0 and MODELS[state.model][3]:
        state.step()
        return 200, gen2_em(state)
    if method == "EMData.GetStatus" and ident == 0 and MODELS[state.model][3]:
        return 200, gen2_emdata(state)
    if method == "Switch.Toggle" and has_switch:
        return 200, {"was_on": state.switch(ident, not state.relays[ident])}
    return config_call(state, method, params, ident)


# --------------------------------------------------------------------------- auth

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _digest_fields(header: str) -> dict[str, str]:
    return {k: v1 or v2 for k, v1, v2 in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]*))', header)}


def auth_middleware(state: ShellyState, password: str | None) -> Any:
    nonces: set[str] = set()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Open on a real device too: identification, and the WebSocket upgrade (its frames carry auth).
        if password is None or request.path in ("/shelly", "/rpc/Shelly.GetDeviceInfo") or \
                (state.gen >= 2 and request.path == "/rpc" and request.method == "GET"):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        if state.gen == 1:
            expected = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
            if secrets.compare_digest(header, expected):
                return await handler(request)
            return web.Response(status=401, text="401 Unauthorized",
                                headers={"WWW-Authenticate": 'Basic realm="shelly"'})
        fields = _digest_fields(header[7:]) if header.startswith("Digest ") else {}
        algo = fields.get("algorithm", "MD5").upper()
        hasher = hashlib.sha256 if algo == "SHA-256" else hashlib.md5

        def h(text: str) -> str:
            return hasher(text.encode()).hexdigest()

        if fields.get("nonce") in nonces and fields.get("username") == "admin":
            ha1 = h(f"admin:{state.device_id}:{password}")
            ha2 = h(f"{request.method}:{fields.get('uri', '')}")
            expected = h(f"{ha1}:{fields['nonce']}:{fields.get('nc', '')}:{fields.get('cnonce', '')}:auth:{ha2}")
            if secrets.compare_digest(fields.get("response", ""), expected):
                return await handler(request)
        nonce = secrets.token_hex(8)
        nonces.add(nonce)
        challenge = f'Digest qop="auth", realm="{state.device_id}", nonce="{nonce}", algorithm=SHA-256'
        return web.json_response({"code": 401, "message": "unauthorized"}, status=401,
                                 headers={"WWW-Authenticate": challenge})

    return check


def build_app(state: ShellyState, password: str | None = None) -> web.Application:
    app = web.Application(middlewares=[auth_middleware(state, password)])
    gen, relays, _metered, _em, _prefix = MODELS[state.model]

    if gen == 1:
        async def shelly(_r: web.Request) -> web.Response:
            return web.json_response({"type": state.model, "mac": state.mac, "auth": password is not None,
                                      "fw": "20230913-112003/v1.14.0-gcb84623", "discoverable": True,
                                      "num_outputs": relays, "num_meters": relays if MODELS[state.model][2] else 0,
                                      **({"num_emeters": 3} if MODELS[state.model][3] else {})})

        async def status(_r: web.Request) -> web.Response:
            return web.json_response(gen1_status(state))

        async def relay(request: web.Request) -> web.Response:
            ch = int(request.match_info["ch"])
            if ch >= relays:
                return web.Response(status=404, text="Not Found")
            turn = request.query.get("turn")
            if turn in ("on", "off", "toggle"):
                state.switch(ch, not state.relays[ch] if turn == "toggle" else turn == "on")
            elif turn is not None:
                return web.Response(status=400, text="Bad turn!")
            return web.json_response(gen1_relay(state, ch))

        async def settings(request: web.Request) -> web.Response:
            try:
                return web.json_response(gen1_settings(state, password, request.query))
            except Refused as exc:
                return web.Response(status=400, text=str(exc))

        async def relay_settings(request: web.Request) -> web.Response:
            ch = int(request.match_info["ch"])
            if ch >= relays:
                return web.Response(status=404, text="Not Found")
            try:
                return web.json_response(gen1_relay_settings(state, ch, request.query))
            except Refused as exc:
                return web.Response(status=400, text=str(exc))

        app.router.add_get("/shelly", shelly)
        app.router.add_get("/status", status)
        app.router.add_get(r"/relay/{ch:\d+}", relay)
        app.router.add_get("/settings", settings)
        app.router.add_get(r"/settings/relay/{ch:\d+}", relay_settings)
        return app

    def info() -> dict[str, Any]:
        return {**gen2_info(state), "auth_en": password is not None,
                "auth_domain": state.device_id if password else None}

    def call(method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return (200, info()) if method == "Shelly.GetDeviceInfo" else gen2_call(state, method, params)

    async def shelly2(_r: web.Request) -> web.Response:
        return web.json_response(info())

    async def rpc_get(request: web.Request) -> web.Response:
        code, doc = call(request.match_info["method"], dict(request.query))
        return web.json_response(doc, status=code)

    async def rpc_ws(request: web.Request) -> web.WebSocketResponse:
        return await rpc_websocket(request, state, call, password, lambda ch: gen2_switch(state, ch))

    async def rpc_post(request: web.Request) -> web.Response:
        try:
            frame = await request.json()
            method, params = str(frame["method"]), dict(frame.get("params") or {})
        except (ValueError, KeyError, TypeError):
            return web.json_response({"id": None, "error": {"code": -32700, "message": "parse error"}}, status=400)
        code, doc = call(method, params)
        key = "result" if code == 200 else "error"
        return web.json_response({"id": frame.get("id"), "src": state.device_id, key: doc})

    app.router.add_get("/shelly", shelly2)
    app.router.add_get(r"/rpc/{method:[A-Za-z0-9.]+}", rpc_get)
    app.router.add_post("/rpc", rpc_post)
    app.router.add_get("/rpc", rpc_ws)
    return app


async def serve(args: argparse.Namespace) -> None:
    state = ShellyState(args.model, mac=args.mac.upper(), load_w=args.load_w)
    props = {"gen": str(state.gen), "app": args.model, "ver": "1.4.4"} if state.gen >= 2 else {}
    kind = "_shelly._tcp.local." if state.gen >= 2 else "_http._tcp.local."
    await serve_http(build_app(state, args.password), args.port,
                     f"Shelly {args.model} (gen {state.gen}) {state.device_id}",
                     (kind, state.device_id, props) if args.mdns else None, host=args.host)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wattbus-sim shelly", description="Shelly Gen1/Gen2+ relay and meter")
    parser.add_argument("--port", type=int, default=18081)
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (0.0.0.0: all)")
    parser.add_argument("--model", choices=sorted(MODELS), default="SHSW-PM")
    parser.add_argument("--mac", default="A8032AB12345")
    parser.add_argument("--load-w", type=float, default=1500.0, help="power of the load behind each relay")
    parser.add_argument("--password", help="enable auth (Gen1 basic, Gen2 digest; user admin)")
    parser.add_argument("--mdns", action="store_true", help="announce over mDNS on 127.0.0.1")
    args = parser.parse_args(argv)
    run(serve(args))
    return 0
