"""Shared test data and the Home Assistant schema checker (schema facts live in data/ha_schema.toml)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from wattbus import codec
from wattbus import messages as m

DATA = Path(__file__).parent / "data"
EXAMPLES = Path(__file__).resolve().parents[2] / "services" / "integrations" / "examples"
SCHEMA: dict[str, Any] = tomllib.loads((DATA / "ha_schema.toml").read_text())


def readings() -> list[tuple[str, m.ReadingBase, bytes]]:
    out = []
    for number, line in enumerate((DATA / "readings.jsonl").read_text().splitlines(), 1):
        reading: m.ReadingBase = codec.decode_reading(line)
        out.append((f"{reading.device_id}@{number}", reading, line.encode()))
    return out


def metas() -> dict[str, m.DeviceMeta]:
    lines = (DATA / "metas.jsonl").read_text().splitlines()
    return {meta.device_id: meta for meta in (codec.decode(line, m.DeviceMeta) for line in lines if line.strip())}


def _expand(doc: dict[str, Any]) -> dict[str, Any]:
    names: dict[str, str] = SCHEMA["abbreviations"]
    return {names.get(k, k): v for k, v in doc.items()}


def check_config(topic: str, raw: dict[str, Any]) -> list[str]:
    """Every way this device-discovery config breaks Home Assistant's documented schema."""
    problems: list[str] = []
    root_rules = SCHEMA["device_discovery"]
    if not re.match(root_rules["topic"], topic):
        problems.append(f"topic {topic!r} is not <prefix>/device/<object_id>/config")
    doc = _expand(raw)
    problems += [f"root: missing {k}" for k in root_rules["required"] if k not in doc]
    problems += [f"root: unknown option {k}" for k in doc if k not in root_rules["allowed"]]
    device = _expand(doc.get("device", {}))
    dev_rules = SCHEMA["device"]
    if not any(device.get(k) for k in dev_rules["required_one_of"]):
        problems.append("device: needs identifiers or connections")
    problems += [f"device: unknown option {k}" for k in device if k not in dev_rules["allowed"]]
    problems += [f"device: {k} must be text" for k in dev_rules["strings"] if k in device
                 and not isinstance(device[k], str)]
    ids = device.get("identifiers")
    if not (isinstance(ids, str) or (isinstance(ids, list) and ids and all(isinstance(i, str) for i in ids))):
        problems.append(f"device: identifiers {ids!r} must be text or a list of text")
    origin = doc.get("origin", {})
    problems += [f"origin: missing {k}" for k in SCHEMA["origin"]["required"] if not origin.get(k)]
    problems += [f"origin: unknown option {k}" for k in origin if k not in SCHEMA["origin"]["allowed"]]
    components = doc.get("components", {})
    if not isinstance(components, dict) or not components:
        return [*problems, "components: must be a non-empty mapping"]
    for cid, comp in components.items():
        problems += [f"{cid}: {p}" for p in check_component(comp)]
    return problems


def check_component(raw: dict[str, Any]) -> list[str]:
    comp = _expand(raw)
    problems: list[str] = []
    entity = SCHEMA["entity"]
    platform = comp.get("platform")
    rules = SCHEMA["platform"].get(platform)
    if rules is None:
        return [f"platform {platform!r} is not one this schema knows"]
    problems += [f"missing {k}" for k in entity["required"] + rules["required"] if k not in comp]
    allowed = set(entity["allowed"]) | set(rules["allowed"])
    problems += [f"unknown {platform} option {k}" for k in comp if k not in allowed]
    for a, b in entity["exclusive"]:
        if a in comp and b in comp:
            problems.append(f"{a} and {b} exclude each other")
    if "entity_category" in comp:
        cats = rules.get("entity_categories", entity["entity_categories"])
        if comp["entity_category"] not in cats:
            problems.append(f"entity_category {comp['entity_category']!r} not allowed for {platform} ({cats})")
    if "availability_mode" in comp and comp["availability_mode"] not in entity["availability_modes"]:
        problems.append(f"availability_mode {comp['availability_mode']!r}")
    for item in comp.get("availability", []):
        if "topic" not in item or set(item) - set(entity["availability_item"]):
            problems.append(f"availability item {item!r}")
    if "qos" in comp and comp["qos"] not in (0, 1, 2):
        problems.append(f"qos {comp['qos']!r}")
    for key in ("state_topic", "command_topic", "availability_topic"):
        if key in comp and (not isinstance(comp[key], str) or any(c in comp[key] for c in "+#")):
            problems.append(f"{key} {comp[key]!r} must be a plain topic")
    if "device_classes" in rules and "device_class" in comp and comp["device_class"] not in rules["device_classes"]:
        problems.append(f"device_class {comp['device_class']!r} is not a {platform} device class")
    if platform in ("sensor", "number") and "device_class" in comp:
        problems += _check_units(platform, comp)
    if platform == "sensor" and "state_class" in comp and comp["state_class"] not in rules["state_classes"]:
        problems.append(f"state_class {comp['state_class']!r}")
    if "suggested_display_precision" in comp and not isinstance(comp["suggested_display_precision"], int):
        problems.append("suggested_display_precision must be a whole number")
    if platform == "number":
        if comp.get("mode", "auto") not in rules["modes"]:
            problems.append(f"mode {comp['mode']!r}")
        if not comp.get("min", 1) <= comp.get("max", 100):
            problems.append("min above max")
    if platform == "select":
        options = comp.get("options")
        if not (isinstance(options, list) and options and all(isinstance(o, str) for o in options)):
            problems.append(f"options {options!r} must be a non-empty list of text")
    return problems


def _check_units(platform: str, comp: dict[str, Any]) -> list[str]:
    rules = SCHEMA["device_class"].get(comp["device_class"])
    if rules is None:
        return [f"device_class {comp['device_class']!r} unknown to this schema"]
    problems = []
    unit = comp.get("unit_of_measurement", "")
    if unit not in rules["units"]:
        problems.append(f"unit {unit!r} not allowed for device_class {comp['device_class']} ({rules['units']})")
    if platform == "sensor" and "state_class" in comp and comp["state_class"] not in rules["state_classes"]:
        problems.append(f"state_class {comp['state_class']!r} not allowed for device_class {comp['device_class']}")
    return problems
