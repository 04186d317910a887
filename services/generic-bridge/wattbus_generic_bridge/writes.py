"""What a description lets the bridge write (`[write]`), and the checks on it at start-up.

A relay is switched (`set_relay`), a charger takes `set_charge_current`, `set_charging` and
`set_phases`: each command's value goes to one *target*, a holding register (Modbus source), a URL
(any source) or a topic on the source's broker (MQTT source), and is confirmed by reading back the
reading field it changes. Limits (a charger's current) are enforced by the bridge before anything
is written. `{value}` in a URL, body or payload is the commanded value, filled at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from msgspec import Meta
from wattbus.config import ConfigStruct

if TYPE_CHECKING:
    from .spec import Description

WriteType = Literal["int16", "uint16", "int32", "uint32", "float32"]
VALUE = "{value}"
# command key -> (the reading field that shows it was applied, the words `values` must map)
READ_BACK: dict[str, tuple[str, tuple[str, ...]]] = {
    "relay": ("on", ("on", "off")), "charge_current": ("set_current_a", ()),
    "charging": ("enabled", ("on", "off")), "phases": ("phases_active", ("1", "3")),
}


class Target(ConfigStruct, kw_only=True):
    """Where one command's value goes: exactly one of register, url or topic."""

    register: Annotated[int, Meta(ge=0, le=65535)] | None = None  # Modbus: holding register (fc 06 / 16)
    coil: Annotated[int, Meta(ge=0, le=65535)] | None = None  # Modbus: a coil (fc 05), 1 = on unless `values`
    type: WriteType = "uint16"
    word_order: Literal["big", "little"] = "big"
    url: str | None = None  # HTTP: "http://{host}/set?amps={value}"
    method: Literal["GET", "POST", "PUT"] = "GET"
    body: str | None = None  # HTTP: sent as the request body, {value} filled ('{"amps": {value}}')
    content_type: str = "application/json"
    topic: str | None = None  # MQTT: published on the source's broker
    payload: str = VALUE
    retain: bool = False
    scale: float = 1.0  # written = value / scale (a register counting 0.1 A: scale = 0.1)
    values: dict[str, str] = {}  # on/off (relay, charging), 1/3 (phases) -> what is written
    # The installation fixes it (a wallbox wired for 3 phases): asking for what the device shows is
    # `ok` and writes nothing, anything else is refused; no register, url or topic
    fixed: bool = False

    @property
    def modbus(self) -> bool:
        """Written to a Modbus register or coil: the value is a number."""
        return self.register is not None or self.coil is not None


class Write(ConfigStruct, kw_only=True):
    """A relay's switch or a charger's controls, each confirmed by reading the value back."""

    on_url: str | None = None  # a relay over plain HTTP: one request per state
    off_url: str | None = None
    method: Literal["GET", "POST"] = "GET"
    relay: Target | None = None  # ... or a relay's state written as a value (values on/off)
    charge_current: Target | None = None  # set_charge_current (A)
    charging: Target | None = None  # set_charging (values on/off)
    phases: Target | None = None  # set_phases (values 1/3)
    min_current_a: Annotated[float, Meta(ge=0, le=80)] = 6.0  # the charger's limits; a device entry may narrow them
    max_current_a: Annotated[float, Meta(ge=0, le=80)] = 16.0
    min_switch_interval_s: Annotated[float, Meta(ge=0, le=86400)] = 30.0  # contacts wear with each switch
    confirm_timeout_s: Annotated[float, Meta(gt=0, le=60)] = 5.0


def targets(write: Write) -> dict[str, Target]:
    """The command keys this write maps (relay, charge_current, charging, phases) and their targets."""
    found = {key: getattr(write, key) for key in READ_BACK}
    return {key: target for key, target in found.items() if target is not None}


def write_problems(desc: Description) -> list[tuple[str, str]]:
    """(key, what is wrong) of a description's [write]."""
    write = desc.write
    if write is None:
        return []
    source = str(desc.source.__struct_config__.tag)
    found: list[tuple[str, str]] = []
    mapped = targets(write)
    plain_http = write.on_url is not None or write.off_url is not None
    if desc.kind == "relay":
        if plain_http and (write.on_url is None or write.off_url is None):
            found.append(("write", "a relay over plain HTTP needs both on_url and off_url"))
        if plain_http == ("relay" in mapped):
            found.append(("write", "give either on_url/off_url or a [write.relay] target"))
        if source == "mqtt" and plain_http:
            found.append(("write", "an MQTT relay is switched by a [write.relay] topic, not by URLs"))
        others = [k for k in mapped if k != "relay"]
    elif desc.kind == "charger":
        if plain_http:
            found.append(("write", "on_url/off_url switch a relay; a charger takes charge_current, charging, phases"))
        if not mapped:
            found.append(("write", "a charger's [write] maps at least one of charge_current, charging, phases"))
        others = [k for k in mapped if k == "relay"]
        if write.min_current_a > write.max_current_a:
            found.append(("write.min_current_a", f"{write.min_current_a:g} A is above max_current_a = "
                                                 f"{write.max_current_a:g} A"))
    else:
        return [("write", f"only a relay can be switched or a charger controlled; this description is a {desc.kind}")]
    found.extend((f"write.{k}", f"a {desc.kind} does not take this command") for k in others)
    fields = {v.field for v in desc.values}
    for key, target in mapped.items():
        field, words = READ_BACK[key]
        if field not in fields:
            found.append((f"write.{key}", f"needs a value with field = \"{field}\" to read the change back"))
        found.extend((f"write.{key}.{k}", why) for k, why in _target_problems(target, source, words))
    if plain_http and "on" not in fields:
        found.append(("write", "a switchable relay needs a value with field = \"on\" to read the state back"))
    return found


def _target_problems(target: Target, source: str, words: tuple[str, ...]) -> list[tuple[str, str]]:
    given = [k for k in ("register", "coil", "url", "topic") if getattr(target, k) is not None]
    if target.fixed:
        return [(given[0], "a fixed value is not written: leave register, coil, url and topic out")] if given else []
    if len(given) != 1:
        return [("register", f"give exactly one of register, coil, url or topic (got {', '.join(given) or 'none'}), "
                             "or fixed = true for what the installation fixes")]
    found: list[tuple[str, str]] = []
    for key in ("register", "coil"):
        if getattr(target, key) is not None and source != "modbus":
            found.append((key, f"{key}s are written to Modbus sources only, this source is {source}"))
    if target.coil is not None and not set(target.values.values()) <= {"0", "1"}:
        found.append(("values", "a coil is written 1 or 0"))
    if target.coil is not None and words != ("on", "off") and not target.values:
        found.append(("coil", "a coil is on or off: a number (a current, phases) needs `values` saying which "
                              "is 1" if words else "a coil is on or off: it cannot take a current"))
    if target.topic is not None and source != "mqtt":
        found.append(("topic", f"a topic is published on the source's broker: this source is {source}"))
    if target.topic is not None and any(c in target.topic for c in "+#"):
        found.append(("topic", f"{target.topic!r}: name one topic, without the wildcards + and #"))
    if words and target.values and sorted(target.values) != sorted(words):
        found.append(("values", f"map exactly {' and '.join(words)} (got {', '.join(sorted(target.values))})"))
    if target.modbus:
        for word, written in target.values.items():
            try:
                float(written)
            except ValueError:
                found.append((f"values.{word}", f"{written!r}: a register takes a number"))
    text = target.url if target.url is not None else target.topic
    carried = (target.url or "") + (target.body or "") if target.url is not None else target.payload
    if text is not None and VALUE not in carried:
        where = "url or body" if target.url is not None else "payload"
        found.append((where.split()[0], f"the {where} must carry {VALUE} (the value written)"))
    if target.scale == 0:
        found.append(("scale", "0 would divide by zero; the written value is value / scale"))
    return found
