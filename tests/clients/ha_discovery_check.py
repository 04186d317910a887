"""Check MQTT discovery messages with Home Assistant's own code; runs in .venv-ha (Python 3.13).

stdin: {"prefix": "homeassistant", "cases": {"<case>": [{"topic": ..., "payload": "<text>"}, ...]}}
stdout: {"ha_version": ..., "cases": {"<case>": {"problems": [...], "entities": {entity_id: {...}}}}}

Each message goes the way HA's MQTT integration takes it (components/mqtt/discovery.py,
async_discovery_message_received): the discovery topic matcher, abbreviation expansion, the
device-discovery schema and origin schema, the device's shared options merged into each component,
then the platform's own DISCOVERY_SCHEMA (sensor.py, number.py, ...), the schema HA validates an
entity with before creating it. Options HA's schema drops (REMOVE_EXTRA) are reported as ignored.
Entity ids are derived as HA's entity platform does for entities with has_entity_name (all MQTT
entities): slugify("<device name> <entity name>"), or the device name alone for a None name; a
taken id would get _2, _3, which is reported as a collision.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import sys
import tempfile
from typing import Any

import homeassistant.components.persistent_notification  # noqa: F401  before mqtt: HA 2024.1 imports in a circle
import voluptuous as vol
from homeassistant.components.mqtt import discovery as ha_discovery
from homeassistant.components.mqtt.abbreviations import ABBREVIATIONS, DEVICE_ABBREVIATIONS, ORIGIN_ABBREVIATIONS
from homeassistant.components.mqtt.discovery import MQTTDiscoveryPayload
from homeassistant.const import MAX_LENGTH_STATE_ENTITY_ID
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.core import HomeAssistant
from homeassistant.helpers import frame
from homeassistant.util import slugify
from homeassistant.util.json import json_loads_object

try:
    from homeassistant.components.mqtt.schemas import MQTT_ORIGIN_INFO_SCHEMA
except ImportError:  # HA 2024.1 keeps it in discovery.py
    MQTT_ORIGIN_INFO_SCHEMA = ha_discovery.MQTT_ORIGIN_INFO_SCHEMA
try:
    from homeassistant.components.mqtt.schemas import DEVICE_DISCOVERY_SCHEMA
except ImportError:  # HA before 2024.11 knows per-entity discovery only (the check runs on older HA too)
    DEVICE_DISCOVERY_SCHEMA = None

TOPIC_BASE = "~"


class Warnings(logging.Handler):
    """What HA logs while validating (a unit that does not fit the device class is a warning in
    2025.4 and an error from 2025.7): a problem too."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def take(self) -> list[str]:
        taken, self.messages = self.messages, []
        return taken


def _rename(doc: Any, table: dict[str, str]) -> None:
    if isinstance(doc, dict):
        for key in set(table).intersection(doc):
            doc[table[key]] = doc.pop(key)


def expand(payload: dict[str, Any]) -> None:
    """HA's abbreviation expansion; HA before 2024.10 does it inline, with these same tables."""
    if hasattr(ha_discovery, "_replace_all_abbreviations"):
        ha_discovery._replace_all_abbreviations(payload)
        return
    _rename(payload, ABBREVIATIONS)
    _rename(payload.get("device"), DEVICE_ABBREVIATIONS)
    _rename(payload.get("origin"), ORIGIN_ABBREVIATIONS)


def platform_schema(platform: str) -> Any:
    return importlib.import_module(f"homeassistant.components.mqtt.{platform}").DISCOVERY_SCHEMA


def components_of(prefix: str, topic: str, text: str, problems: list[str]) -> list[tuple[str, str, dict[str, Any]]]:
    """(platform, where, payload) of every entity one discovery message describes."""
    match = ha_discovery.TOPIC_MATCHER.match(topic.replace(f"{prefix}/", "", 1))
    if not topic.startswith(f"{prefix}/") or not match:
        problems.append(f"{topic}: not a discovery topic HA accepts")
        return []
    component, _node_id, _object_id = match.groups()
    try:
        payload = MQTTDiscoveryPayload(json_loads_object(text))
    except ValueError as exc:
        problems.append(f"{topic}: not a JSON object ({exc})")
        return []
    if component != "device":
        expand(payload)
        if "origin" in payload:
            try:
                MQTT_ORIGIN_INFO_SCHEMA(payload["origin"])
            except vol.Invalid as exc:
                problems.append(f"{topic}: origin: {exc}")
        return [(component, topic, payload)]
    if DEVICE_DISCOVERY_SCHEMA is None:
        problems.append(f"{topic}: HA {HA_VERSION} has no device-based discovery (2024.11 brought it)")
        return []
    ha_discovery._replace_all_abbreviations(payload)
    try:
        DEVICE_DISCOVERY_SCHEMA(payload)
    except vol.Invalid as exc:
        problems.append(f"{topic}: device discovery schema: {exc}")
        return []
    known_root = {"device", "origin", "components", "availability", "availability_topic", "availability_mode",
                  "availability_template", "payload_available", "payload_not_available", "state_topic",
                  "command_topic", "qos", "encoding"}
    problems += [f"{topic}: HA ignores root option {key!r}" for key in payload if key not in known_root]
    out = []
    for cid, config in payload["components"].items():
        platform = config.pop("platform")
        entity = MQTTDiscoveryPayload(config)
        if not entity:
            continue  # {"p": ...} alone removes the component
        entity["device"] = payload["device"]
        entity["origin"] = payload.get("origin")
        ha_discovery._merge_common_device_options(entity, payload)
        out.append((platform, f"{topic} component {cid!r}", entity))
    return out


def check(prefix: str, messages: list[dict[str, str]], warnings: Warnings) -> dict[str, Any]:
    problems: list[str] = []
    entities: dict[str, dict[str, Any]] = {}
    unique_ids: dict[tuple[str, str], str] = {}
    for message in messages:
        if not message["payload"]:
            continue  # a deletion
        for platform, where, payload in components_of(prefix, message["topic"], message["payload"], problems):
            if TOPIC_BASE in payload:
                ha_discovery._replace_topic_base(payload)
            try:
                config = platform_schema(platform)(payload)
            except ModuleNotFoundError:
                problems.append(f"{where}: HA has no MQTT platform {platform!r}")
                continue
            except vol.Invalid as exc:
                problems.append(f"{where}: {platform} schema: {exc}")
                continue
            problems += [f"{where}: HA warns: {text}" for text in warnings.take()]
            ignored = sorted(set(payload) - set(config))
            if ignored:
                problems.append(f"{where}: HA ignores {platform} options {ignored}")
            unique_id = config.get("unique_id")
            if unique_id is None:
                problems.append(f"{where}: no unique_id (HA could not keep the entity's settings)")
            elif (platform, unique_id) in unique_ids:
                problems.append(f"{where}: unique_id {unique_id!r} also in {unique_ids[platform, unique_id]}")
            else:
                unique_ids[platform, unique_id] = where
            device_name = config.get("device", {}).get("name")
            name = config.get("name")
            if "object_id" in config:
                suggested = config["object_id"]
            elif device_name:
                suggested = f"{device_name} {name}" if name else device_name
            else:
                suggested = name or ""
            entity_id = f"{platform}.{slugify(suggested)}"[:MAX_LENGTH_STATE_ENTITY_ID]
            if entity_id in entities:
                problems.append(f"{where}: entity id {entity_id} taken by {entities[entity_id]['where']} "
                                "(HA would make it _2)")
                continue
            entities[entity_id] = {"where": where, "platform": platform, "unique_id": unique_id,
                                   "device": device_name, "name": name,
                                   **{k: config[k] for k in ("min", "max", "options") if k in config}}
    return {"problems": problems, "entities": entities}


async def check_all(request: dict[str, Any]) -> dict[str, Any]:
    # Templates are compiled against a Home Assistant instance, in its event loop, as in HA.
    with tempfile.TemporaryDirectory() as config_dir:
        hass = HomeAssistant(config_dir)
        if hasattr(frame, "async_setup"):  # HA before 2024.11 has no frame helper to set up
            frame.async_setup(hass)
        prefix = request.get("prefix", "homeassistant")
        warnings = Warnings()
        logging.getLogger("homeassistant").addHandler(warnings)
        return {"ha_version": HA_VERSION, "abbreviations": len(ABBREVIATIONS),
                "cases": {name: check(prefix, messages, warnings) for name, messages in request["cases"].items()}}


def main() -> int:
    json.dump(asyncio.run(check_all(json.load(sys.stdin))), sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
