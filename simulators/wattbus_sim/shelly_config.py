"""Shelly settings: Gen1 `/settings` and `/settings/relay/N`, Gen2+ `*.GetConfig`/`*.SetConfig`, `Sys.GetStatus`.

Field names and units follow Shelly's API documentation; a change is checked first and refused with
the error the device would give (Gen1: HTTP 400 text, Gen2: RPC code -103 "Invalid argument").
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from .shelly_state import MODELS, VOLTAGE_V, ShellyState

GEN1_FW = "20230913-112003/v1.14.0-gcb84623"
GEN2_FW = "20241011-114455/1.4.4-g6d2a586"
UPTIME_S = 3600
INVALID = -103  # Gen2 RPC "invalid argument"
RATED_A = {"Plus2PM": 10.0}  # what an output carries (16 A unless listed): the current limit's ceiling


class Refused(ValueError):
    """A setting the device refuses; the message names the field and why."""


def _limit(name: str, raw: Any, low: float, high: float) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError) as exc:
        raise Refused(f"{name}: {raw!r} is not a number") from exc
    if isinstance(raw, bool) or not low <= value <= high:
        raise Refused(f"{name}: {raw!r} is out of range ({low:g}..{high:g})")
    return value


def _name(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or len(raw) > 64:
        raise Refused(f"name: expected a text of at most 64 characters, got {raw!r}")
    return raw


# --------------------------------------------------------------------------- Gen1

def gen1_relay_settings(state: ShellyState, ch: int, query: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`/settings/relay/N`: apply the query (name, max_power on metered models), then the settings."""
    for key, raw in (query or {}).items():
        if key == "name":
            state.relay_names[ch] = _name(raw)
        elif key in ("auto_on", "auto_off", "default_state", "btn_type"):
            raise Refused(f"{key}: not settable on this simulator")
        else:
            raise Refused(f"{key}: unknown relay setting")
    return {"name": state.relay_names[ch], "appliance_type": "General", "ison": state.relays[ch],
            "has_timer": False, "default_state": "off", "btn_type": "toggle", "btn_reverse": False,
            "auto_on": 0.0, "auto_off": 0.0, "power": 0 if state.metered else round(state.load_w),
            "schedule": False, "schedule_rules": []}


def gen1_settings(state: ShellyState, password: str | None, query: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`/settings`: apply the query (name, max_power), then the whole settings document."""
    _gen, relays, metered, em_phases, prefix = MODELS[state.model]
    for key, raw in (query or {}).items():
        if key == "name":
            state.name = _name(raw)
        elif key == "max_power" and metered:
            watts = _limit("max_power", raw, 1, 3500 if state.model != "SHPLG-S" else 2500)
            state.power_limit_w = [watts] * relays
        else:
            raise Refused(f"{key}: unknown setting")
    host = f"{prefix}-{state.mac[-6:]}"
    doc: dict[str, Any] = {
        "device": {"type": state.model, "mac": state.mac, "hostname": host, "num_outputs": relays,
                   "num_meters": relays if metered else 0, **({"num_emeters": em_phases} if em_phases else {})},
        "wifi_ap": {"enabled": False, "ssid": host, "key": ""},
        "wifi_sta": {"enabled": True, "ssid": "wattbus", "ipv4_method": "dhcp", "ip": None, "gw": None,
                     "mask": None, "dns": None},
        "wifi_sta1": {"enabled": False, "ssid": None, "ipv4_method": "dhcp", "ip": None, "gw": None, "mask": None,
                      "dns": None},
        "ap_roaming": {"enabled": False, "threshold": -70},
        "mqtt": {"enable": False, "server": "192.168.33.3:1883", "user": "", "id": host,
                 "reconnect_timeout_max": 60.0, "reconnect_timeout_min": 2.0, "clean_session": True,
                 "keep_alive": 60, "max_qos": 0, "retain": False, "update_period": 30},
        "coiot": {"enabled": True, "update_period": 15, "peer": ""},
        "sntp": {"server": "time.google.com", "enabled": True},
        "login": {"enabled": password is not None, "unprotected": False, "username": "admin"},
        "pin_code": "", "name": state.name, "fw": GEN1_FW, "factory_reset_from_switch": True,
        "discoverable": True, "build_info": {"build_id": GEN1_FW, "build_timestamp": "2023-09-13T11:20:03Z",
                                             "build_version": "1.0"},
        "cloud": {"enabled": False, "connected": False}, "timezone": "Europe/Berlin", "lat": 52.52,
        "lng": 13.405, "tzautodetect": True, "tz_utc_offset": 3600, "tz_dst": False, "tz_dst_auto": True,
        "time": time.strftime("%H:%M"), "unixtime": int(time.time()), "led_status_disable": False,
        "debug_enable": False, "allow_cross_origin": False, "wifirecovery_reboot_enabled": True,
        "hwinfo": {"hw_revision": "prod-190516", "batch_id": 1},
        "relays": [gen1_relay_settings(state, ch) for ch in range(relays)],
    }
    if metered:
        limit = state.power_limit_w[0]
        doc["max_power"] = round(limit) if limit is not None else None
    if em_phases:
        doc["emeters"] = [{"name": None, "appliance_type": "General", "max_power": 0} for _ in range(em_phases)]
    return doc


# --------------------------------------------------------------------------- Gen2+

def sys_status(state: ShellyState) -> dict[str, Any]:
    return {"mac": state.mac, "restart_required": False, "time": time.strftime("%H:%M"),
            "unixtime": int(time.time()), "uptime": UPTIME_S, "ram_size": 260000, "ram_free": 120000,
            "fs_size": 458752, "fs_free": 212992, "cfg_rev": state.cfg_rev, "kvs_rev": 0, "schedule_rev": 0,
            "webhook_rev": 0, "available_updates": {}, "reset_reason": 3}


def sys_config(state: ShellyState) -> dict[str, Any]:
    return {"device": {"name": state.name, "mac": state.mac, "fw_id": GEN2_FW, "discoverable": True,
                       "eco_mode": False},
            "location": {"tz": "Europe/Berlin", "lat": 52.52, "lon": 13.405},
            "debug": {"level": 2, "file_level": None, "mqtt": {"enable": False}, "websocket": {"enable": False},
                      "udp": {"addr": None}},
            "ui_data": {}, "rpc_udp": {"dst_addr": None, "listen_port": None},
            "sntp": {"server": "time.google.com"}, "cfg_rev": state.cfg_rev}


def switch_config(state: ShellyState, ch: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": ch, "name": state.relay_names[ch], "in_mode": "follow",
                           "initial_state": "match_input", "auto_on": False, "auto_on_delay": 60.0,
                           "auto_off": False, "auto_off_delay": 60.0}
    if state.metered:
        doc.update({"power_limit": state.power_limit_w[ch], "voltage_limit": 280,
                    "autorecover_voltage_errors": False, "current_limit": state.current_limit_a[ch]})
    return doc


def set_switch_config(state: ShellyState, ch: int, config: Any) -> None:
    if not isinstance(config, dict):
        raise Refused(f"config: expected an object, got {config!r}")
    changes: dict[str, Any] = {}
    rated_a = RATED_A.get(state.model, 16.0)
    for key, raw in config.items():
        if key == "name":
            changes[key] = _name(raw)
        elif key == "power_limit" and state.metered:
            changes[key] = _limit(key, raw, 1, round(rated_a * VOLTAGE_V * 1.21))  # the output's rating + 21 %
        elif key == "current_limit" and state.metered:
            changes[key] = _limit(key, raw, 0.1, rated_a)
        else:
            raise Refused(f"config.{key}: not a settable switch:{ch} field")
    state.relay_names[ch] = changes.get("name", state.relay_names[ch])
    state.power_limit_w[ch] = changes.get("power_limit", state.power_limit_w[ch])
    state.current_limit_a[ch] = changes.get("current_limit", state.current_limit_a[ch])
    state.cfg_rev += 1


def shelly_config(state: ShellyState) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "ble": {"enable": True, "rpc": {"enable": True}, "observer": {"enable": False}},
        "cloud": {"enable": False, "server": "shelly-103-eu.shelly.cloud:6022/jrpc"},
        "mqtt": {"enable": False, "server": None, "client_id": state.device_id, "user": None, "ssl_ca": None,
                 "topic_prefix": state.device_id, "rpc_ntf": True, "status_ntf": False, "use_client_cert": False,
                 "enable_rpc": True, "enable_control": True},
        "sys": sys_config(state),
        "wifi": {"ap": {"ssid": state.device_id, "is_open": True, "enable": False,
                        "range_extender": {"enable": False}},
                 "sta": {"ssid": "wattbus", "is_open": False, "enable": True, "ipv4mode": "dhcp", "ip": None,
                         "netmask": None, "gw": None, "nameserver": None},
                 "sta1": {"ssid": None, "is_open": True, "enable": False, "ipv4mode": "dhcp", "ip": None,
                          "netmask": None, "gw": None, "nameserver": None},
                 "roam": {"rssi_thr": -80, "interval": 60}},
        "ws": {"enable": False, "server": None, "ssl_ca": "ca.pem"},
    }
    for ch in range(len(state.relays)):
        doc[f"switch:{ch}"] = switch_config(state, ch)
    if MODELS[state.model][3]:
        doc["em:0"] = {"id": 0, "name": None, "blink_mode_selector": "active_energy", "phase_selector": "all",
                       "monitor_phase_sequence": False, "ct_type": "120A"}
        doc["emdata:0"] = {}
    return doc


def _decoded(params: Mapping[str, Any], key: str) -> Any:
    """GET /rpc/Method?config={...} carries JSON in a query string; RPC frames carry it decoded."""
    raw = params.get(key)
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise Refused(f"{key}: {raw!r} is not JSON") from exc
    return raw


def config_call(state: ShellyState, method: str, params: Mapping[str, Any], ident: int
                ) -> tuple[int, dict[str, Any]]:
    """The configuration and system RPCs: (HTTP status, result or error)."""
    has_switch = 0 <= ident < len(state.relays)
    try:
        match method:
            case "Shelly.GetConfig":
                return 200, shelly_config(state)
            case "Sys.GetStatus":
                return 200, sys_status(state)
            case "Sys.GetConfig":
                return 200, sys_config(state)
            case "Sys.SetConfig":
                config = _decoded(params, "config")
                device = config.get("device") if isinstance(config, dict) else None
                if not isinstance(device, dict) or set(device) - {"name"}:
                    raise Refused("config: only {\"device\": {\"name\": ...}} is settable")
                state.name = _name(device.get("name"))
                state.cfg_rev += 1
                return 200, {"restart_required": False}
            case "Switch.GetConfig" if has_switch:
                return 200, switch_config(state, ident)
            case "Switch.SetConfig" if has_switch:
                set_switch_config(state, ident, _decoded(params, "config"))
                return 200, {"restart_required": False}
            case "Shelly.GetComponents":  # no dynamic (virtual) components on this device
                return 200, {"components": [], "cfg_rev": state.cfg_rev, "offset": 0, "total": 0}
    except Refused as exc:
        return 400, {"code": INVALID, "message": str(exc)}
    if method.startswith("Switch.") and not has_switch:
        return 404, {"code": 404, "message": f"Component not found: switch:{ident}"}
    return 404, {"code": 404, "message": f"No handler for {method}"}
