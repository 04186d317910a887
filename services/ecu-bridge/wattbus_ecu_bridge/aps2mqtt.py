"""aps2mqtt's configuration as an alternative: its YAML file (`ecu:` / `mqtt:` sections) or its
environment variables (APS_ECU_IP, APS_ECU_STOP_AT_NIGHT, MQTT_BROKER_HOST, ...).

They are translated into wattbus's own `WATTBUS_*` overrides before the config is loaded, so the
normal validation (with the offending key and where it came from) applies. Explicit `WATTBUS_*`
variables win. `APS_ECU_IP` may list several ECUs separated by commas (aps2mqtt supports one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wattbus import topics
from wattbus.config import ConfigError

from .config import EcuConfig

SECTION = "WATTBUS_ECU_BRIDGE_"
ECU_KEYS: dict[str, tuple[str, type]] = {
    "APS_ECU_PORT": ("port", int), "APS_ECU_AUTO_RESTART": ("auto_restart", bool),
    "APS_ECU_WIFI_SSID": ("wifi_ssid", str), "APS_ECU_WIFI_PASSWD": ("wifi_password", str),
    "APS_ECU_STOP_AT_NIGHT": ("stop_at_night", bool), "APS_ECU_POSITION_LAT": ("latitude", float),
    "APS_ECU_POSITION_LNG": ("longitude", float), "APS_ECU_TIMEZONE": ("timezone", str),
}
MQTT_KEYS: dict[str, tuple[str, type]] = {
    "MQTT_BROKER_HOST": ("WATTBUS_BUS_HOST", str), "MQTT_BROKER_PORT": ("WATTBUS_BUS_PORT", int),
    "MQTT_BROKER_USER": ("WATTBUS_BUS_USERNAME", str), "MQTT_BROKER_PASSWD": ("WATTBUS_BUS_PASSWORD", str),
    "MQTT_BROKER_SECURED_CONNECTION": ("WATTBUS_BUS_TLS", bool),
    "MQTT_BROKER_CACERTS_PATH": ("WATTBUS_BUS_CA_FILE", str),
    "MQTT_TOPIC_PREFIX": (SECTION + "APS2MQTT_PREFIX", str), "MQTT_RETAIN": (SECTION + "APS2MQTT_RETAIN", bool),
    "MQTT_DISCOVERY_ENABLED": (SECTION + "APS2MQTT_DISCOVERY", bool),
    "MQTT_DISCOVERY_PREFIX": (SECTION + "APS2MQTT_DISCOVERY_PREFIX", str),
}
_TRUE = {"y", "yes", "t", "true", "on", "1"}
_FALSE = {"n", "no", "f", "false", "off", "0"}


def _toml(value: Any, kind: type, key: str, origin: str) -> str:
    """The value as a TOML literal of the wanted type (aps2mqtt accepts 'True', 'yes', 1 ...)."""
    text = str(value).strip()
    try:
        if kind is bool:
            if text.lower() in _TRUE | _FALSE:
                return "true" if text.lower() in _TRUE else "false"
            raise ValueError("expected true/false, yes/no, on/off or 1/0")
        if kind is int:
            return str(int(text))
        if kind is float:
            return repr(float(text))
    except ValueError as exc:
        raise ConfigError(f"aps2mqtt {key} = {value!r} (from {origin}): {exc}") from exc
    return json.dumps(text)


def _extras(ecu: Mapping[str, Any], origin: str) -> list[str]:
    """wattbus's own ECU keys written aps2mqtt style (APS_ECU_POLL_INTERVAL_S, APS_ECU_ANSWER_DELAY_S, ...)."""
    fields = set(EcuConfig.__struct_fields__) - {"host"}
    out = []
    for key, value in ecu.items():
        if not key.startswith("APS_ECU_") or key in ECU_KEYS or key == "APS_ECU_IP":
            continue
        name = key[len("APS_ECU_"):].lower()
        if name not in fields:
            if origin == "environment":
                continue  # the environment is shared with other programs
            raise ConfigError(f"aps2mqtt {key} (from {origin}): unknown key; known: APS_ECU_IP, "
                              + ", ".join([*ECU_KEYS, *(f"APS_ECU_{f.upper()}" for f in sorted(fields))]))
        text = str(value).strip()
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            out.append(f"{name} = {text}")
        elif text.lower() in _TRUE | _FALSE and not text.isdigit():
            out.append(f"{name} = {_toml(text, bool, key, origin)}")
        else:
            out.append(f"{name} = {json.dumps(text)}")
    return out


def _instance(client_id: str, origin: str) -> str:
    """aps2mqtt's MQTT_CLIENT_ID names the bridge instance. The client id on the broker is then
    `ecu-bridge-<it>` plus a tag derived from the broker password (wattbus.client_id): a bare id
    that any login could take over (and inherit the session of) is never used."""
    try:
        topics.segment(client_id.strip(), "instance")
    except topics.TopicError as exc:
        raise ConfigError(f"aps2mqtt MQTT_CLIENT_ID = {client_id!r} (from {origin}): it becomes the bridge's "
                          f"instance name and the base of its password-bound client id: {exc}") from exc
    return json.dumps(client_id.strip())


def translate(ecu: Mapping[str, Any], mqtt: Mapping[str, Any], origin: str) -> dict[str, str]:
    """wattbus overrides equivalent to aps2mqtt's `ecu` and `mqtt` keys (empty if none are set)."""
    out: dict[str, str] = {}
    for key, (target, kind) in MQTT_KEYS.items():
        if mqtt.get(key) not in (None, ""):
            out[target] = _toml(mqtt[key], kind, key, origin)
    prefix = str(mqtt.get("MQTT_DISCOVERY_PREFIX") or "")
    if re.search(r"[#+\s]", prefix):
        raise ConfigError(f"aps2mqtt MQTT_DISCOVERY_PREFIX = {prefix!r} (from {origin}): a topic prefix "
                          "cannot hold #, + or spaces")
    if mqtt.get("MQTT_CLIENT_ID") not in (None, ""):
        out[SECTION + "INSTANCE"] = _instance(str(mqtt["MQTT_CLIENT_ID"]), origin)
    if ecu.get("APS_ECU_IP") in (None, ""):
        if any(k in ecu for k in ECU_KEYS):
            raise ConfigError(f"aps2mqtt APS_ECU_IP (from {origin}) is required when other APS_ECU_* keys are set")
        return out
    common = [f"{name} = {_toml(ecu[key], kind, key, origin)}" for key, (name, kind) in ECU_KEYS.items()
              if ecu.get(key) not in (None, "")]
    common += _extras(ecu, origin)
    tables = []
    for host in str(ecu["APS_ECU_IP"]).split(","):
        if not host.strip():
            raise ConfigError(f"aps2mqtt APS_ECU_IP = {ecu['APS_ECU_IP']!r} (from {origin}): empty address in the list")
        tables.append("{" + ", ".join([f"host = {json.dumps(host.strip())}", *common]) + "}")
    out[SECTION + "ECUS"] = "[" + ", ".join(tables) + "]"
    out[SECTION + "APS2MQTT_TOPICS"] = "true"  # aps2mqtt users keep their topics
    return out


def from_yaml(path: Path) -> dict[str, str]:
    try:
        import yaml  # only needed for aps2mqtt's YAML files
    except ImportError as exc:
        raise ConfigError(f"aps2mqtt config {path}: reading YAML needs the PyYAML package") from exc
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"aps2mqtt config {path}: cannot read it ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"aps2mqtt config {path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("ecu"), dict):
        raise ConfigError(f"aps2mqtt config {path}: needs an `ecu:` mapping (and usually `mqtt:`)")
    mqtt = data.get("mqtt") or {}
    if not isinstance(mqtt, dict):
        raise ConfigError(f"aps2mqtt config {path}: `mqtt:` must be a mapping")
    return translate(data["ecu"], mqtt, str(path))


def overrides(environ: Mapping[str, str]) -> dict[str, str]:
    """What to add to the environment: from $APS2MQTT_CONFIG / $CONFIG_FILE (YAML), else APS_/MQTT_ vars."""
    path = environ.get("APS2MQTT_CONFIG") or environ.get("CONFIG_FILE")
    found = from_yaml(Path(path)) if path else translate(environ, environ, "environment")
    return {k: v for k, v in found.items() if k not in environ}
