"""A device description: where the values come from and which contract field each one fills.

Descriptions are data (TOML): the shipped examples in data/, a file of the user's, or an inline
table in the config. They decode into these Structs and are then checked as a whole, so a bad one
is refused at start-up with the key and what is wrong, never discovered by a crash at run time.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta
from wattbus import messages as m
from wattbus import registers
from wattbus.config import ConfigStruct

from . import units
from .select import Selector, SelectorError
from .writes import Write, write_problems

Kind = Literal["meter", "inverter", "battery", "charger", "relay", "gateway", "vehicle"]
READING_BY_KIND: dict[str, type[m.ReadingBase]] = {
    "meter": m.MeterReading, "inverter": m.InverterReading, "battery": m.BatteryReading,
    "charger": m.ChargerReading, "relay": m.RelayReading, "gateway": m.GatewayReading,
    "vehicle": m.VehicleReading,
}
Seconds = Annotated[float, Meta(gt=0, le=86400)]
RegisterType = registers.NumberType  # the shared register schema's number types (wattbus.registers)
REGISTER_WORDS = {kind: registers.WORDS[kind] for kind in get_args(registers.NumberType)}


class HttpSource(ConfigStruct, kw_only=True, tag="http", tag_field="type"):
    url: str  # may hold {host}, {port} and the description's other variables
    interval_s: Seconds = 10.0
    timeout_s: Annotated[float, Meta(gt=0, le=60)] = 5.0
    auth: Literal["basic", "digest"] = "basic"  # used when the device config gives a password


class MqttSource(ConfigStruct, kw_only=True, tag="mqtt", tag_field="type"):
    topic: str  # the values' topic unless a value names its own
    payload: Literal["json", "plain"] = "json"  # plain: the payload is the value ("21.5", "ON")
    stale_after_s: Seconds = 300.0  # no message for this long: the device is offline


class ModbusSource(ConfigStruct, kw_only=True, tag="modbus", tag_field="type"):
    host: str = "{host}"
    port: Annotated[int, Meta(ge=1, le=65535)] = 502
    unit_id: Annotated[int, Meta(ge=0, le=255)] = 1
    interval_s: Seconds = 10.0
    timeout_s: Annotated[float, Meta(gt=0, le=60)] = 3.0
    max_registers: Annotated[int, Meta(ge=4, le=125)] = 120  # per request; some meters take fewer (SDM: 80)


Source = HttpSource | MqttSource | ModbusSource


class Value(ConfigStruct, kw_only=True):
    """One contract field (or `extra.<name>`) and where its value is."""

    field: str
    phase: Annotated[int, Meta(ge=1, le=3)] | None = None  # a PhaseValues field of this phase
    select: str | None = None  # JSONPath into a JSON document (HTTP, MQTT json)
    topic: str | None = None  # MQTT: this value's own topic
    # Modbus: the shared register point (wattbus.registers), its address spelled `register` here
    register: Annotated[int, Meta(ge=0, le=65535)] | None = None  # Modbus: first register
    # holding/input registers (functions 03/04), or one bit: a coil (01, a relay's state) or a discrete input (02)
    table: registers.Table | Literal["coil", "discrete"] = "holding"
    type: RegisterType = "uint16"
    word_order: registers.WordOrder = "big"  # big: the high word comes first (most devices)
    scale: float = 1.0  # raw * scale, then the unit conversion
    unit: str | None = None  # what the device sends; converted to the field's SI unit
    map: dict[str, str] = {}  # text fields: device word -> contract word ("Charging" -> "charging")
    # Modbus: another unit on the same line holds this value (the wallbox's own meter, unit 2)
    unit_id: Annotated[int, Meta(ge=0, le=255)] | None = None
    # What the device cannot tell, fixed by the installation: the phases a wallbox is wired for
    # (`const = "{phases}"`); read from nowhere, so no select, register or topic
    const: str | int | float | None = None

    def point(self) -> registers.Point:
        """The value's registers in the shared schema (a Modbus value: `register` is set)."""
        return registers.point({"address": self.register, "table": self.table, "type": self.type,
                                "word_order": self.word_order, "scale": self.scale, "unit": self.unit}, self.field)


class Description(ConfigStruct, kw_only=True):
    kind: Kind
    source: Source
    values: Annotated[list[Value], Meta(min_length=1)]
    manufacturer: str | None = None
    model: str | None = None
    about: str = ""  # where the response shape comes from (provenance), shown by `templates`
    defaults: dict[str, str] = {}  # variables a device config may override ({port}, {meter})
    write: Write | None = None


def field_types(kind: str) -> dict[str, str]:
    """The fields a description may fill for a kind: name -> number, bool or text."""
    out: dict[str, str] = {}
    info: Any = msgspec.inspect.type_info(READING_BY_KIND[kind])
    for field in info.fields:
        category = _category(field.type)
        if category and field.name not in ("device_id", "channel", "inverter_id", "index"):
            out[field.name] = category
    return out


def phase_field_types() -> dict[str, str]:
    info: Any = msgspec.inspect.type_info(m.PhaseValues)
    return {f.name: c for f in info.fields if (c := _category(f.type)) and f.name != "phase"}


def _category(info: Any) -> str | None:
    if isinstance(info, msgspec.inspect.UnionType):
        kinds = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        if len(kinds) != 1:
            return None
        info = kinds[0]
    if isinstance(info, msgspec.inspect.FloatType | msgspec.inspect.IntType):
        return "number"
    if isinstance(info, msgspec.inspect.BoolType):
        return "bool"
    if isinstance(info, msgspec.inspect.StrType | msgspec.inspect.LiteralType):
        return "text"
    return None


def category_of(desc: Description, value: Value) -> str:
    """number, bool or text: what the value is converted to (checked by `problems`)."""
    if value.field.startswith("extra."):
        return "text" if value.map else "number"
    if value.phase is not None:
        return phase_field_types().get(value.field, "number")
    return field_types(desc.kind).get(value.field, "number")


def problems(desc: Description) -> list[tuple[str, str]]:
    """(key, what is wrong) for every problem a decoded description still has."""
    found: list[tuple[str, str]] = []
    fields = field_types(desc.kind)
    phase_fields = phase_field_types()
    seen: set[tuple[str, int | None]] = set()
    for i, value in enumerate(desc.values):
        key = f"values[{i}]"
        name = value.field
        if name.startswith("extra."):
            if not name[6:].isidentifier():
                found.append((f"{key}.field", f"{name!r}: extra values are named extra.<letters_digits_>"))
        elif value.phase is not None and name not in phase_fields:
            found.append((f"{key}.field", f"{name!r} is not a per-phase field; known: {', '.join(phase_fields)}"))
        elif value.phase is None and name not in fields:
            found.append((f"{key}.field", f"a {desc.kind} reading has no field {name!r}; known: "
                                          f"{', '.join(fields)} or extra.<name>"))
        if (name, value.phase) in seen:
            found.append((f"{key}.field", f"{name!r} is filled twice"))
        seen.add((name, value.phase))
        if category_of(desc, value) == "number" and (why := units.check(name, value.unit)):
            found.append((f"{key}.unit", why))
        found.extend((f"{key}.{k}", why) for k, why in _source_problems(desc.source, value))
    found.extend(write_problems(desc))  # writes.py: relay and charger controls
    return found


def _source_problems(source: Source, value: Value) -> list[tuple[str, str]]:
    if value.const is not None:
        given = [k for k in ("select", "register", "topic", "unit_id") if getattr(value, k) is not None]
        return [(given[0], "a const value is read from nowhere: leave select, register, topic and unit_id "
                           "out")] if given else []
    if value.unit_id is not None and not isinstance(source, ModbusSource):
        return [("unit_id", f"a unit id names a Modbus device on the line; this source is {_tag(source)}")]
    if isinstance(source, ModbusSource):
        if value.register is None:
            return [("register", "a Modbus value needs its register address")]
        if value.table in ("coil", "discrete"):  # one bit: 0 or 1, no type, words or scale
            plain = value.type == "uint16" and value.word_order == "big" and value.scale == 1.0
            return [] if plain else [("type", f"a {value.table} is one bit (0 or 1): leave type, word_order "
                                              "and scale out")]
        try:
            value.point()
        except registers.RegisterError as exc:
            return [("register", str(exc).removeprefix(f"{value.field}: "))]
        return []
    if value.register is not None:
        return [("register", f"registers are read from Modbus sources only, this source is {_tag(source)}")]
    if isinstance(source, MqttSource) and any(c in (value.topic or source.topic) for c in "+#"):
        return [("topic", f"{value.topic or source.topic!r}: name one topic, without the wildcards + and #")]
    if isinstance(source, MqttSource) and source.payload == "plain":
        return [("select", "a plain payload is the value itself: leave select out")] if value.select else []
    if value.select is None:
        return [("select", "a JSON value needs a JSONPath selector, e.g. \"$.main.value\"")]
    try:
        Selector(value.select)
    except SelectorError as exc:
        return [("select", str(exc))]
    return []


def _tag(source: Source) -> str:
    return str(source.__struct_config__.tag)
