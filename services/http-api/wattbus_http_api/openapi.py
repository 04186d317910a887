"""The OpenAPI 3.1 document: paths of all three faces, request schemas from the contract Structs."""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
from wattbus import __version__
from wattbus import messages as m

GIVTCP_BODIES: dict[str, dict[str, str] | None] = {
    "enableChargeTarget": None, "disableChargeTarget": None, "pauseChargeSchedule": None,
    "resumeChargeSchedule": None, "pauseDischargeSchedule": None, "resumeDischargeSchedule": None,
    "setChargeTarget": {"chargeToPercent": "50"}, "setBatteryReserve": {"dischargeToPercent": "5"},
    "setChargeSlot1": {"start": "0100", "finish": "0400", "chargeToPercent": "55"},
    "setChargeSlot2": {"start": "0100", "finish": "0400", "chargeToPercent": "55"},
    "setDischargeSlot1": {"start": "0100", "finish": "0400", "dischargeToPercent": "55"},
    "setDischargeSlot2": {"start": "0100", "finish": "0400", "dischargeToPercent": "55"},
    "setBatteryMode": {"mode": "1"}, "setDateTime": {"dateTime": "31/12/2024 23:59:00"},
    "setChargeRate": {"chargeRate": "2500"}, "setDischargeRate": {"dischargeRate": "2500"},
    "enableChargeSchedule": {"state": "enable"}, "enableDischargeSchedule": {"state": "disable"},
    "enableDischarge": {"state": "enable"}, "forceCharge": {"duration": "30"}, "forceExport": {"duration": "30"},
    "tempPauseCharge": {"duration": "Cancel"}, "tempPauseDischarge": {"duration": "30"},
}

ERROR = {"description": "rejected request: {\"error\": ..., \"where\": ...}"}
RESULT = {"description": "the command's real result (CommandResult); 400 invalid, 409 refused, 502 failed, "
                         "504 timeout", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/"
                                                                                     "CommandResult"}}}}
SECURED: list[dict[str, list[str]]] = [{"bearer": []}]


def _get(summary: str, tag: str) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": {"200": {"description": "JSON"}}}
    if tag == "setup":  # it shows the config (secrets as "set"/"not set"): the token, as for writes
        op["security"] = SECURED
    return {"get": op}


def _write(method: str, summary: str, tag: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "security": SECURED,
                          "responses": {"200": RESULT, "400": ERROR, "401": ERROR, "403": ERROR, "404": ERROR,
                                        "415": ERROR, "421": ERROR, "429": ERROR}}
    if schema is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    return {method: op}


@cache
def document() -> dict[str, Any]:
    from .api import LimitsBody, ModeBody, PlanBody  # the schemas live beside their handlers
    from .setup_probe import ManualDevice
    from .setup_roles import RoleBody
    (command, mode, limits, _result, role, manual, plan), components = msgspec.json.schema_components(
        [m.Command, ModeBody, LimitsBody, m.CommandResult, RoleBody, ManualDevice, PlanBody],
        ref_template="#/components/schemas/{name}")
    section = {"type": "object", "description": "the section's keys, validated by that service's own config"}
    paths: dict[str, Any] = {
        "/": {**_get("MeterHub: the whole site as one flat JSON document (null = stale)", "MeterHub"),
              **_write("post", "MeterHub: publish external values (allow-list [http-api] publish)", "MeterHub",
                       {"type": "object", "additionalProperties": {"type": ["number", "string", "boolean", "null"]}})},
        "/command/{target}": {**_write("post", "MeterHub: forward ?amp=8, ?alw=1, ?psm=2, ?turn=on, ?mode=pv or "
                                               "?command=<contract command>&<fields> to a device or loadpoint "
                                               "(query or JSON body; a GET is refused with 405)",
                                       "MeterHub", None)},
        "/runAll": _get("GivTCP: the nested runAll document of the GivEnergy inverter", "GivTCP"),
        "/getCache": _get("GivTCP: the runAll document (GivTCP's name for the cached read)", "GivTCP"),
        "/readData": _get("GivTCP: the runAll document (GivTCP's name for the cached read)", "GivTCP"),
        "/api/v1/site": _get("power flow, `live` (live / stale / offline and why), today's energy, loadpoints, "
                              "device counts", "wattbus"),
        "/api/v1/devices": _get("every device on the bus with meta, availability, latest reading and `error` "
                                 "(what its bridge reports failing, since when); configured devices that never "
                                 "answered are listed by address", "wattbus"),
        "/api/v1/devices/{source}/{device_id}": _get("one device", "wattbus"),
        "/api/v1/devices/{source}/{device_id}/command": _write("post", "send a contract command", "wattbus", command),
        "/api/v1/loadpoints": _get("the surplus controller's loadpoints", "wattbus"),
        "/api/v1/loadpoints/{loadpoint_id}": _get("one loadpoint", "wattbus"),
        "/api/v1/loadpoints/{loadpoint_id}/mode": _write("put", "switch the loadpoint mode", "wattbus", mode),
        "/api/v1/loadpoints/{loadpoint_id}/limits": _write("put", "set min/max charge current", "wattbus", limits),
        "/api/v1/loadpoints/{loadpoint_id}/plan": _write("put", "set the charge plan: soc_pct by time (HHMM), "
                                                                "min_soc_pct at full power; left out = cleared",
                                                         "wattbus", plan),
        "/api/v1/discovery/rescan": _write("post", "ask discovery for a sweep now", "wattbus", None),
        "/api/v1/energy/today": _get("today's energy in 15-minute buckets (Wh)", "wattbus"),
        "/api/v1/history": _get("energy per bucket and series (Wh) for ?range=day|week|month|year&date=YYYY-MM-DD "
                                 "(15 min, day or month buckets, labelled); a day adds its power curve (W, 5-minute "
                                 "means); from InfluxDB with [http-api.influx] (`source`), else or when it cannot "
                                 "answer from the local store (history_file; the reason in `influx_problem` and "
                                 "`problem`)", "wattbus"),
        "/api/v1/sessions": _get("charging sessions, newest first (?limit=1..1000): start, end, energy, PV share, "
                                  "cost with a tariff", "wattbus"),
        "/api/v1/sessions.csv": _get("the charging sessions as CSV", "wattbus"),
        "/api/v1/events": _get("server-sent events: `summary` on every change of the bus or of `live`, "
                                "and at least every 5 s", "wattbus"),
        "/api/v1/status": _get("this service's status and counters", "wattbus"),
        "/api/v1/openapi.json": _get("this document", "wattbus"),
        "/api/v1/setup": _get("setup overview: config file, problems, roles, devices, first_run", "setup"),
        "/api/v1/setup/sections/{section}": {
            **_get("one config section with its problem, if any", "setup"),
            **_write("put", "replace a section (saved keeping comments, then reload_config to its service)",
                     "setup", section)},
        "/api/v1/setup/devices": {
            **_get("devices on the bus with their roles, and what discovery found", "setup"),
            **_write("post", "add a device by hand to its bridge's section after its bridge read it once "
                             "(probe_device; save_anyway skips the check)", "setup", manual)},
        "/api/v1/setup/probe": _write("post", "read a device once through its bridge (nothing saved): identity "
                                              "and readings, or the problem next to its field", "setup", manual),
        "/api/v1/setup/devices/{device_id}/adopt": _write("post", "adopt a discovered device", "setup", None),
        "/api/v1/setup/devices/{device_id}/ignore": _write("post", "ignore it (the bridge's deny list)", "setup",
                                                           None),
        "/api/v1/setup/roles/{source}/{device_id}": _write("put", "give a device its role (grid, pv, battery, "
                                                                  "charger with loadpoint, relay, none)", "setup",
                                                           role),
    }
    for name, example in GIVTCP_BODIES.items():
        schema = None if example is None else {"type": "object", "example": example,
                                               "properties": {k: {"type": "string"} for k in example}}
        paths[f"/{name}"] = _write("post", f"GivTCP control {name}", "GivTCP", schema)
    return {
        "openapi": "3.1.0",
        "info": {"title": "wattbus http-api", "version": __version__,
                 "description": "MeterHub- and GivTCP-compatible endpoints plus the wattbus REST API. Writes "
                                "and /api/v1/setup reads need `Authorization: Bearer <token>` unless the client "
                                "is in trusted_networks; bodies are application/json; the Host must be a name "
                                "of the gateway and an Origin, when sent, its own."},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
