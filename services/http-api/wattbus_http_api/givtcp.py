"""GivTCP compatibility: `GET /runAll` (also `/getCache`, `/readData`) and GivTCP's control endpoints.

The control payloads are GivTCP's own (`{"chargeToPercent": "50"}`, numbers as text); each becomes
a contract command for the giv-bridge inverter, and the answer carries the bridge's real result.
GivTCP's functions without a contract command (enableDischarge and the timed forceCharge,
forceExport, tempPauseCharge, tempPauseDischarge) go to giv-bridge as GivTCP-shaped requests;
the bridge runs and later reverts them. Writes pass the same door as every other write
(security.py: Host, Origin, bearer token, JSON only).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import msgspec
from aiohttp import web
from wattbus import messages as m
from wattbus import topics

from .site import HTTP_STATUS, Site
from .web import convert, json_response, read_json, reject, site_of

GIV_SOURCE = "giv-bridge"
# GivTCP's mode names (current GivTCP) and its old numbers 1-4
MODES: dict[str, m.BatteryMode] = {"1": "eco", "2": "eco_paused", "3": "timed_demand", "4": "timed_export",
                                   "eco": "eco", "eco (paused)": "eco_paused", "timed demand": "timed_demand",
                                   "timed export": "timed_export"}
TIMED = ("forceCharge", "forceExport", "tempPauseCharge", "tempPauseDischarge")
MAX_DURATION_MIN = 1440


class GivTcpFunction(m.CommandBase, frozen=True, kw_only=True, omit_defaults=True, tag="givtcp_function"):
    """A GivTCP function giv-bridge runs itself (its command topic takes GivTCP-shaped requests)."""

    givtcp: str
    state: str | None = None
    duration: str | None = None


def giv_device(request: web.Request, site: Site) -> str:
    wanted = request.query.get("device") or site.config.giv_device
    if wanted:
        if f"{GIV_SOURCE}/{wanted}" not in site.state.devices and wanted not in site.state.run_all:
            raise reject(request, 404, f"no giv-bridge device {wanted!r} on the bus", "device")
        return wanted
    inverters = sorted({*site.state.run_all, *(r.device_id for r in site.state.of_kind("inverter")
                                               if r.source == GIV_SOURCE)})
    if not inverters:
        raise reject(request, 503, "no GivEnergy inverter on the bus yet (is giv-bridge running?)")
    if len(inverters) > 1:
        raise reject(request, 409, f"several GivEnergy inverters ({', '.join(inverters)}): add ?device=<id> or "
                                   "set [http-api] giv_device", "device")
    return inverters[0]


async def run_all(request: web.Request) -> web.Response:
    site = site_of(request)
    device = giv_device(request, site)
    found = site.state.run_all.get(device)
    if found is None:
        raise reject(request, 503, f"giv-bridge has not published runAll for {device} yet")
    doc, at = found
    response = json_response(doc)
    response.headers["X-Wattbus-Age-S"] = f"{time.monotonic() - at:.1f}"
    return response


# --------------------------------------------------------------------------- payloads -> commands

def _text(request: web.Request, body: dict[str, Any], key: str) -> str:
    if key not in body:
        raise reject(request, 400, f"{key} is required", f"$.{key}")
    value = body[key]
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise reject(request, 400, f"{key} must be a string like \"50\"", f"$.{key}")
    return str(value).strip()


def _percent(request: web.Request, body: dict[str, Any], key: str) -> int:
    text = _text(request, body, key)
    try:
        number = float(text)
    except ValueError:
        raise reject(request, 400, f"{key} {text!r} is not a number", f"$.{key}") from None
    if not number.is_integer() or not 4 <= number <= 100:
        raise reject(request, 400, f"{key} {text!r}: a whole percentage from 4 to 100", f"$.{key}")
    return int(number)


def _hhmm(request: web.Request, body: dict[str, Any], key: str) -> str:
    text = _text(request, body, key).replace(":", "")
    if len(text) != 4 or not text.isdigit() or int(text[:2]) > 23 or int(text[2:]) > 59:
        raise reject(request, 400, f"{key} {body[key]!r}: a time as hhmm, e.g. \"0130\"", f"$.{key}")
    return text


def _slot(name: str) -> Callable[[web.Request, dict[str, Any]], m.CommandBase]:
    slot = int(name[-1])

    def build(request: web.Request, body: dict[str, Any]) -> m.CommandBase:
        start, end = _hhmm(request, body, "start"), _hhmm(request, body, "finish")
        if name.startswith("setCharge"):
            target = _percent(request, body, "chargeToPercent") if "chargeToPercent" in body else None
            return m.SetChargeSlot(slot=slot, start=start, end=end, target_soc_pct=target)
        reserve = _percent(request, body, "dischargeToPercent") if "dischargeToPercent" in body else None
        return m.SetDischargeSlot(slot=slot, start=start, end=end, reserve_soc_pct=reserve)
    return build


def _mode(request: web.Request, body: dict[str, Any]) -> m.CommandBase:
    text = _text(request, body, "mode")
    if text.lower() not in MODES:
        raise reject(request, 400, f"mode {text!r}: battery mode must be Eco, Eco (Paused), Timed Demand or "
                                   "Timed Export (or 1, 2, 3, 4)", "$.mode")
    return m.SetBatteryMode(mode=MODES[text.lower()])


def _state(request: web.Request, body: dict[str, Any], default: str | None = None) -> bool:
    text = _text(request, body, "state") if default is None or "state" in body else default
    if text not in ("enable", "disable"):
        raise reject(request, 400, f"state {text!r}: \"enable\" or \"disable\"", "$.state")
    return text == "enable"


def _schedule(which: Literal["charge", "discharge"]) -> Callable[[web.Request, dict[str, Any]], m.CommandBase]:
    return lambda r, b: m.SetSchedule(which=which, enabled=_state(r, b))


def _reserve(request: web.Request, body: dict[str, Any]) -> m.CommandBase:
    key = "reservePercent" if "reservePercent" in body else "dischargeToPercent"  # GivTCP 2+ / 1.x
    return m.SetBatteryReserve(soc_pct=_percent(request, body, key))


def _timed(name: str) -> Callable[[web.Request, dict[str, Any]], m.CommandBase]:
    def build(request: web.Request, body: dict[str, Any]) -> m.CommandBase:
        text = _text(request, body, "duration")
        if text.lower() != "cancel" and (not text.isdigit() or not 1 <= int(text) <= MAX_DURATION_MIN):
            raise reject(request, 400, f"duration {text!r}: whole minutes from 1 to {MAX_DURATION_MIN}, or "
                                       "\"Cancel\"", "$.duration")
        return GivTcpFunction(givtcp=name, duration=text)
    return build


def _datetime(request: web.Request, body: dict[str, Any]) -> m.CommandBase:
    text = _text(request, body, "dateTime")
    try:
        when = datetime.strptime(text, "%d/%m/%Y %H:%M:%S")
    except ValueError:
        raise reject(request, 400, f"dateTime {text!r}: use dd/mm/yyyy hh:mm:ss", "$.dateTime") from None
    return m.SetClock(time=when)


def _rate(direction: str, key: str) -> Callable[[web.Request, dict[str, Any]], m.CommandBase]:
    def build(request: web.Request, body: dict[str, Any]) -> m.CommandBase:
        return convert(request, {"direction": direction, "power_w": _text(request, body, key)},
                       m.SetBatteryPowerLimit, strict=False, client_fields={"$.power_w": f"$.{key}"})
    return build


def _fixed(command: m.CommandBase) -> Callable[[web.Request, dict[str, Any]], m.CommandBase]:
    return lambda _request, _body: command


CONTROLS: dict[str, Callable[[web.Request, dict[str, Any]], m.CommandBase]] = {
    "enableChargeTarget": lambda r, b: m.SetChargeTargetEnabled(enabled=_state(r, b, "enable")),
    "disableChargeTarget": _fixed(m.SetChargeTargetEnabled(enabled=False)),
    "pauseChargeSchedule": _fixed(m.SetSchedule(which="charge", enabled=False)),
    "resumeChargeSchedule": _fixed(m.SetSchedule(which="charge", enabled=True)),
    "pauseDischargeSchedule": _fixed(m.SetSchedule(which="discharge", enabled=False)),
    "resumeDischargeSchedule": _fixed(m.SetSchedule(which="discharge", enabled=True)),
    "setChargeTarget": lambda r, b: m.SetChargeTarget(soc_pct=_percent(r, b, "chargeToPercent")),
    "setBatteryReserve": _reserve,
    "setChargeSlot1": _slot("setChargeSlot1"), "setChargeSlot2": _slot("setChargeSlot2"),
    "setDischargeSlot1": _slot("setDischargeSlot1"), "setDischargeSlot2": _slot("setDischargeSlot2"),
    "setBatteryMode": _mode,
    "setDateTime": _datetime,
    "setChargeRate": _rate("charge", "chargeRate"),
    "setDischargeRate": _rate("discharge", "dischargeRate"),
    "enableChargeSchedule": _schedule("charge"), "enableDischargeSchedule": _schedule("discharge"),
    "enableDischarge": lambda r, b: GivTcpFunction(givtcp="enableDischarge", state="enable" if _state(r, b)
                                                   else "disable"),
    **{name: _timed(name) for name in TIMED},
}


async def control(request: web.Request) -> web.Response:
    site = site_of(request)
    name = request.match_info["function"]
    build = CONTROLS.get(name)
    if build is None:
        raise reject(request, 404, f"{name!r} is not a GivTCP control; known: {', '.join(CONTROLS)}", "path")
    body = await read_json(request, allow_empty=True)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise reject(request, 400, f"the payload must be a JSON object, got a JSON {type(body).__name__}", "body")
    command = build(request, body)
    device = giv_device(request, site)
    result = await site.command(topics.device_command(GIV_SOURCE, device), command)
    text = f"{name} was a success" if result.status == "ok" else f"{name} failed ({result.status}): {result.message}"
    if result.status == "ok" and result.message:
        text = f"{text}: {result.message}"
    return json_response({"result": text, "wattbus": msgspec.to_builtins(result)}, HTTP_STATUS[result.status])


def routes() -> list[web.RouteDef]:
    return [web.get("/runAll", run_all), web.get("/getCache", run_all), web.get("/readData", run_all),
            web.post("/{function:(enable|disable|pause|resume|set|force|temp)[A-Za-z0-9]+}", control)]
