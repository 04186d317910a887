"""Home Assistant device-based discovery payloads (pure functions, no I/O).

One retained config per device on `<prefix>/device/<object_id>/config` with the device (`dev`),
the origin (`o`) and its components (`cmps`). Sensors read the bridge's reading topic directly
(no copy of every value on the bus); controls publish to `<prefix>/wattbus/<object_id>/<key>/set`,
which this service turns into bus commands. Availability: with `judged_by` set (the service does)
every entity is available while this service's judged availability of the device
(wattbus.liveness: its own availability and its owner's lease, so a killed bridge's devices go
`offline` within the lease) and this service itself are online; without it (the `discovery`
subcommand) the device's own retained availability counts, and the controls need this service too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wattbus import __version__, topics
from wattbus import messages as m
from wattbus.liveness import judged_topic

from .catalog import ControlSpec, Entity, arg_info, controls_for, entities, loadpoint_entities

ORIGIN_URL = "https://github.com/wattbus/wattbus"


@dataclass(frozen=True, slots=True)
class HassDiscoverySettings:
    prefix: str = "homeassistant"
    service_availability: str = ""  # this service's availability topic (controls depend on it)
    loadpoint_availability: str = ""  # the surplus controller's availability topic
    origin_name: str = "wattbus"
    # One retained config per entity instead of per device: Home Assistant 2024.2 to 2024.10 knows
    # only this form (device-based discovery came with 2024.11).
    per_entity: bool = False
    # (service, instance) that publishes the judged availability (wattbus.liveness.judged_topic)
    judged_by: tuple[str, str] | None = None


def object_id(ident: str) -> str:
    """Home Assistant allows [a-zA-Z0-9_-] in discovery topic ids; ours also use . and :"""
    return "wattbus-" + re.sub(r"[^a-zA-Z0-9_-]", "_", ident)


def loadpoint_object_id(loadpoint_id: str) -> str:
    return object_id(f"loadpoint-{loadpoint_id}")


def config_topic(settings: HassDiscoverySettings, obj: str) -> str:
    return f"{settings.prefix}/device/{obj}/config"


def entity_topic(settings: HassDiscoverySettings, platform: str, obj: str, key: str) -> str:
    return f"{settings.prefix}/{platform}/{obj}/{key}/config"


def messages(settings: HassDiscoverySettings, obj: str, config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The retained configs of one device: its device config, or each entity's with the device."""
    if not settings.per_entity:
        return {config_topic(settings, obj): config}
    return {entity_topic(settings, comp["p"], obj, key): {**{k: v for k, v in comp.items() if k != "p"},
                                                          "dev": config["dev"], "o": config["o"]}
            for key, comp in config["cmps"].items()}


def command_topic(settings: HassDiscoverySettings, obj: str, key: str) -> str:
    return f"{settings.prefix}/wattbus/{obj}/{key}/set"


def command_filter(settings: HassDiscoverySettings) -> str:
    return f"{settings.prefix}/wattbus/+/+/set"


def origin(settings: HassDiscoverySettings) -> dict[str, Any]:
    return {"name": settings.origin_name, "sw_version": __version__, "support_url": ORIGIN_URL}


MetaLookup = Callable[[str], m.DeviceMeta | None]


def _no_meta(_device_id: str) -> m.DeviceMeta | None:
    return None


def _join(*parts: str | None) -> str:
    return " ".join(p for p in parts if p)


def device_label(meta: m.DeviceMeta, lookup: MetaLookup = _no_meta, _depth: int = 0) -> str:
    """The device name Home Assistant shows and builds entity ids from (device name + entity name).

    It must tell devices apart, or HA suffixes ids with _2, _3 in arrival order, and stay the same
    across restarts. So it carries what is unique to the device: the name the user configured on a
    top-level device, else manufacturer, model and serial; a named sub-device with a serial of its
    own (an ECU's inverter) stands on it, any other (an inverter's "String 1" sharing its serial, an
    inverter's panel) is named after its parent. An unknown parent is named by its id (hass.py
    waits for the parent first).
    """
    if meta.parent_id is None:
        return meta.name or _join(meta.manufacturer, meta.model, meta.serial or meta.device_id)
    parent = lookup(meta.parent_id)
    if meta.serial and parent is not None and meta.serial != parent.serial and (meta.name or meta.model):
        return _join(meta.name or _join(meta.manufacturer, meta.model), meta.serial)
    # Sub-devices of one parent differ by their configured name, else by their id's own part.
    own = meta.name or (meta.device_id[len(meta.parent_id):].lstrip("-_.:")
                        if meta.device_id.startswith(meta.parent_id) else "") or meta.model or meta.device_id
    above = device_label(parent, lookup, _depth + 1) if parent is not None and _depth < 4 else meta.parent_id
    return _join(above, own)


def device_block(meta: m.DeviceMeta, lookup: MetaLookup = _no_meta) -> dict[str, Any]:
    block: dict[str, Any] = {"identifiers": [object_id(meta.device_id)], "name": device_label(meta, lookup),
                             "manufacturer": meta.manufacturer, "model": meta.model,
                             "serial_number": meta.serial, "sw_version": meta.firmware}
    if meta.parent_id:
        block["via_device"] = object_id(meta.parent_id)
    if meta.address and meta.address.startswith(("http://", "https://")):
        block["configuration_url"] = meta.address
    return {k: v for k, v in block.items() if v is not None}


def value_template(entity: Entity) -> str:
    """Jinja for Home Assistant; a missing value renders `None`, which HA shows as unknown."""
    if entity.phase is not None:
        field = entity.key.split("_", 1)[1]
        return (f"{{% for p in value_json.phases if p.phase == {entity.phase} %}}{{{{ p.{field} }}}}"
                "{% else %}None{% endfor %}")
    if entity.platform == "binary_sensor":
        return _on_off(entity.key)
    return f"{{{{ value_json.{entity.key} }}}}"


def _on_off(field: str) -> str:
    return (f"{{% if value_json.{field} is none %}}None{{% elif value_json.{field} %}}ON"
            "{% else %}OFF{% endif %}")


def _common(entity_name: str, category: str | None, icon: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": entity_name}
    if category:
        out["entity_category"] = category
    if icon:
        out["icon"] = icon
    return out


def availability_keys(availability: list[str]) -> dict[str, Any]:
    """One topic as `availability_topic`, several as a list every topic of which must say online."""
    if not availability:
        return {}
    if len(availability) == 1:
        return {"availability_topic": availability[0], "payload_available": m.ONLINE,
                "payload_not_available": m.OFFLINE}
    return {"availability": [{"topic": t, "payload_available": m.ONLINE, "payload_not_available": m.OFFLINE}
                             for t in availability], "availability_mode": "all"}


def sensor_component(obj: str, entity: Entity, state_topic: str, availability: list[str]) -> dict[str, Any]:
    spec = entity.spec
    comp: dict[str, Any] = {"p": entity.platform, "unique_id": f"{obj}_{entity.key}",
                            **_common(entity.name, spec.category, spec.icon),
                            "state_topic": state_topic, "value_template": value_template(entity),
                            **availability_keys(availability)}
    if entity.platform == "binary_sensor":
        comp.update(payload_on="ON", payload_off="OFF")
    if spec.device_class:
        comp["device_class"] = spec.device_class
    if entity.platform == "sensor":
        if spec.state_class:
            comp["state_class"] = spec.state_class
        if spec.unit:
            comp["unit_of_measurement"] = spec.unit
        if spec.precision is not None:
            comp["suggested_display_precision"] = spec.precision
    return comp


def number_range(control: ControlSpec, values: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """The contract's range, narrowed to what the device reports it accepts (the bridge's limits)."""
    info = arg_info(control.capability, control.arg)
    low, high = info.minimum, info.maximum
    reported_low, reported_high = (_number(values.get(k)) if k else None for k in (control.min_from, control.max_from))
    if reported_low is not None:
        low = reported_low if low is None else max(low, reported_low)
    if reported_high is not None:
        high = reported_high if high is None else min(high, reported_high)
    if low is not None and high is not None and low > high:
        return info.minimum, info.maximum  # a contradicting report narrows nothing
    return low, high


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def control_component(settings: HassDiscoverySettings, obj: str, control: ControlSpec, state_topic: str,
                      availability: list[str], values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    info = arg_info(control.capability, control.arg)
    comp: dict[str, Any] = {"p": control.platform, "unique_id": f"{obj}_{control.key}",
                            **_common(control.name, control.category, None),
                            "command_topic": command_topic(settings, obj, control.key),
                            **availability_keys(availability), "qos": 1}
    if control.state:
        comp["state_topic"] = state_topic
        comp["value_template"] = (_on_off(control.state) if control.platform == "switch"
                                  else f"{{{{ value_json.{control.state} }}}}")
    else:
        comp["optimistic"] = True  # the device reports no value to show; HA keeps what was set
    if control.platform == "number":
        low, high = number_range(control, values or {})
        comp.update({"min": low, "max": high, "step": control.step or 1, "mode": "box"})
        if control.unit:
            comp["unit_of_measurement"] = control.unit
    elif control.platform == "switch":
        comp.update(payload_on="ON", payload_off="OFF", state_on="ON", state_off="OFF")
    elif control.platform == "text":
        comp.update(min=0, max=5)  # HH:MM at most
        if control.pattern:
            comp["pattern"] = control.pattern
    else:
        comp["options"] = list(info.options)
    if control.device_class:
        comp["device_class"] = control.device_class
    return comp


def device_config(settings: HassDiscoverySettings, meta: m.DeviceMeta, kind: str, present: set[str], *,
                  lookup: MetaLookup = _no_meta, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The whole discovery document of one device: sensors for the values it reported, its controls.

    lookup finds other devices' metas (the parent's name goes into a sub-device's); values are the
    newest reading's, whose reported limits narrow the controls' ranges.
    """
    obj = object_id(meta.device_id)
    state = topics.device_reading(meta.source, meta.device_id)
    service = [settings.service_availability] if settings.service_availability else []
    if settings.judged_by is not None:
        avail = [judged_topic(*settings.judged_by, meta.source, meta.device_id), *service]
        control_avail = avail
    else:
        avail = [topics.device_availability(meta.source, meta.device_id)]
        control_avail = [*avail, *service]
    cmps: dict[str, dict[str, Any]] = {}
    for entity in entities().get(kind, []):
        if entity.key in present:
            cmps[entity.key] = sensor_component(obj, entity, state, avail)
    for control in controls_for(kind, meta.capabilities):
        cmps[control.key] = control_component(settings, obj, control, state, control_avail, values)
    return {"dev": device_block(meta, lookup), "o": origin(settings), "cmps": cmps, "qos": 1}


def loadpoint_config(settings: HassDiscoverySettings, state: m.LoadpointState) -> dict[str, Any]:
    obj = loadpoint_object_id(state.loadpoint_id)
    topic = topics.loadpoint_state(state.loadpoint_id)
    dev: dict[str, Any] = {"identifiers": [obj], "name": f"Loadpoint {state.loadpoint_id}", "manufacturer": "wattbus",
                           "model": "PV surplus loadpoint"}
    if state.charger_id:
        dev["via_device"] = object_id(state.charger_id)
    avail = settings.loadpoint_availability
    cmps: dict[str, dict[str, Any]] = {}
    for entity in loadpoint_entities():
        cmps[entity.key] = sensor_component(obj, entity, topic, [avail] if avail else [])
    control_avail = [t for t in (avail, settings.service_availability) if t]
    for control in controls_for("loadpoint", []):
        cmps[control.key] = control_component(settings, obj, control, topic, control_avail)
    return {"dev": dev, "o": origin(settings), "cmps": cmps, "qos": 1}
