"""The entity and control tables (data/*.toml) with limits and options taken from the contract."""

from __future__ import annotations

import tomllib
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import msgspec
from msgspec import Struct
from wattbus import messages as m

from . import model

DATA = Path(__file__).parent / "data"
Category = Literal["config", "diagnostic"]


class SensorSpec(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    field: str
    name: str
    kinds: list[str] = []
    device_class: str | None = None
    state_class: Literal["measurement", "total", "total_increasing"] | None = None
    unit: str | None = None
    precision: int | None = None
    category: Category | None = None
    icon: str | None = None


class ControlSpec(Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    capability: str
    kinds: list[str]
    key: str
    platform: Literal["number", "switch", "select", "text"]
    name: str
    arg: str
    state: str | None = None
    fixed: list[str] = []
    unit: str | None = None
    device_class: str | None = None
    step: float | None = None
    category: Category | None = None
    # numbers: reading values (extra_<key> for extras) that narrow the contract's range to the
    # device's, such as the bridge's configured charge current limits
    min_from: str | None = None
    max_from: str | None = None
    # a command that sets several parts as a whole (set_loadpoint_plan): the other fields (command
    # field -> loadpoint state field) are sent as the state shows them, so one control changes one part
    keep: dict[str, str] = {}
    pattern: str | None = None  # texts: what Home Assistant lets a person type


class EntityFile(Struct, kw_only=True, forbid_unknown_fields=True):
    phase: list[SensorSpec] = []
    sensor: list[SensorSpec] = []
    binary_sensor: list[SensorSpec] = []
    loadpoint_sensor: list[SensorSpec] = []
    loadpoint_binary_sensor: list[SensorSpec] = []


class ControlFile(Struct, kw_only=True, forbid_unknown_fields=True):
    control: list[ControlSpec] = []


@dataclass(frozen=True, slots=True)
class Entity:
    """One read-only Home Assistant entity of a reading kind."""

    key: str  # the model name (power_w, l1_voltage_v), also the component id
    platform: Literal["sensor", "binary_sensor"]
    spec: SensorSpec
    phase: int | None = None  # per-phase values are read from value_json.phases

    @property
    def name(self) -> str:
        return f"{self.spec.name} L{self.phase}" if self.phase else self.spec.name


@dataclass(frozen=True, slots=True)
class ArgInfo:
    """What the contract allows for a command argument."""

    minimum: float | None
    maximum: float | None
    options: tuple[str, ...]
    kind: str  # "number", "bool", "literal", "text"


class CatalogError(ValueError):
    pass


def command_types() -> dict[str, type[m.CommandBase]]:
    return {str(t.__struct_config__.tag): t for t in typing.get_args(m.Command)}


@cache  # msgspec.inspect resolves type hints each call: ~0.3 ms, and every loadpoint state asked
def arg_info(capability: str, arg: str) -> ArgInfo:
    command = command_types().get(capability)
    if command is None:
        raise CatalogError(f"capability {capability!r} is no command of the contract")
    info: Any = msgspec.inspect.type_info(command)
    field = next((f for f in info.fields if f.name == arg), None)
    if field is None:
        raise CatalogError(f"command {capability!r} has no field {arg!r}")
    kind = field.type
    while isinstance(kind, msgspec.inspect.UnionType | msgspec.inspect.Metadata):
        kind = kind.type if isinstance(kind, msgspec.inspect.Metadata) else next(
            t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType))
    if isinstance(kind, msgspec.inspect.LiteralType):
        # The contract's order (off, now, minpv, pv), which msgspec's inspection sorts away.
        hints = typing.get_type_hints(command, include_extras=True)
        return ArgInfo(None, None, tuple(str(v) for v in _literal_values(hints[arg])), "literal")
    if isinstance(kind, msgspec.inspect.BoolType):
        return ArgInfo(None, None, (), "bool")
    if isinstance(kind, msgspec.inspect.FloatType | msgspec.inspect.IntType):
        low = kind.ge if kind.ge is not None else kind.gt
        high = kind.le if kind.le is not None else kind.lt
        return ArgInfo(low, high, (), "number")
    if isinstance(kind, msgspec.inspect.StrType):
        return ArgInfo(None, None, (), "text")
    raise CatalogError(f"command {capability!r} field {arg!r}: no Home Assistant entity for {kind!r}")


def _literal_values(hint: Any) -> list[Any]:
    if typing.get_origin(hint) is Literal:
        return list(typing.get_args(hint))
    return [v for arg in typing.get_args(hint) for v in _literal_values(arg)]


@cache
def _entity_file() -> EntityFile:
    return msgspec.convert(tomllib.loads((DATA / "entities.toml").read_text()), EntityFile)


@cache
def loadpoint_entities() -> list[Entity]:
    data = _entity_file()
    fields = set(m.LoadpointState.__struct_fields__)
    table = [Entity(s.field, "sensor", s) for s in data.loadpoint_sensor]
    table += [Entity(s.field, "binary_sensor", s) for s in data.loadpoint_binary_sensor]
    for entity in table:
        if entity.key not in fields:
            raise CatalogError(f"entities.toml: {entity.key!r} is no field of LoadpointState")
    return table


@cache
def entities() -> dict[str, list[Entity]]:
    """The read-only entities of every reading kind, checked against the contract."""
    data = _entity_file()
    table: dict[str, list[Entity]] = {kind: [] for kind in model.KIND_TYPES}
    for kind, reading_type in model.KIND_TYPES.items():
        names = set(model.value_names(kind))
        for platform, specs in (("sensor", data.sensor), ("binary_sensor", data.binary_sensor)):
            for spec in specs:
                if kind in spec.kinds:
                    if spec.field not in names:
                        raise CatalogError(f"entities.toml: {spec.field!r} is not a value of {kind} readings")
                    table[kind].append(Entity(spec.field, platform, spec))  # type: ignore[arg-type]
        if "phases" in reading_type.__struct_fields__:
            for phase in (1, 2, 3):
                table[kind] += [Entity(f"l{phase}_{s.field}", "sensor", s, phase) for s in data.phase]
    for spec in data.sensor + data.binary_sensor:
        unknown = set(spec.kinds) - set(model.KIND_TYPES)
        if unknown:
            raise CatalogError(f"entities.toml: {spec.field!r} names unknown kinds {sorted(unknown)}")
    return table


@cache
def controls() -> list[ControlSpec]:
    specs = msgspec.convert(tomllib.loads((DATA / "controls.toml").read_text()), ControlFile).control
    kinds = {*model.KIND_TYPES, "loadpoint"}
    keys: set[tuple[str, str]] = set()
    for spec in specs:
        info = arg_info(spec.capability, spec.arg)
        wanted = {"number": "number", "switch": "bool", "select": "literal", "text": "text"}[spec.platform]
        if info.kind != wanted:
            raise CatalogError(f"controls.toml {spec.key!r}: a {spec.platform} needs a {wanted} argument, "
                               f"{spec.capability}.{spec.arg} is {info.kind}")
        for kind in spec.kinds:
            if kind not in kinds:
                raise CatalogError(f"controls.toml {spec.key!r}: unknown kind {kind!r}")
            for source in (spec.min_from, spec.max_from):
                if source and (spec.platform != "number" or not (
                        source.startswith("extra_") or source in model.value_names(kind))):
                    raise CatalogError(f"controls.toml {spec.key!r}: {source!r} is no value of {kind} readings "
                                       "a number's range can come from")
            for arg, state in spec.keep.items():
                if kind != "loadpoint" or state not in m.LoadpointState.__struct_fields__:
                    raise CatalogError(f"controls.toml {spec.key!r}: keep {arg!r} needs a loadpoint state field, "
                                       f"not {state!r}")
                arg_info(spec.capability, arg)  # a field of the command
            if (kind, spec.key) in keys:
                raise CatalogError(f"controls.toml: key {spec.key!r} twice for {kind}")
            keys.add((kind, spec.key))
    return specs


@cache
def range_sources() -> frozenset[str]:
    """The reading values some control's range comes from: a change re-sends the device's config."""
    return frozenset(k for c in controls() for k in (c.min_from, c.max_from) if k)


def controls_for(kind: str, capabilities: list[str]) -> list[ControlSpec]:
    return [c for c in controls() if kind in c.kinds and (kind == "loadpoint" or c.capability in capabilities)]
