"""Readings to InfluxDB line protocol, encoded straight from the contract Structs.

One measurement per device kind (`meter`, `inverter`, ...), tagged with device_id, kind and source
(plus inverter_id/index for strings, channel for relays, `site` for readings that came through a
central broker under `sites/<site_id>/`, and the site role and parent from roles.py). Per-phase
values go to `<kind>_phase` with a `phase` tag. The timestamp is the reading's own, in nanoseconds.
Field types follow the contract (float fields always as floats, so an integral value never causes a type conflict);
vendor `extra` values become `extra_<key>` fields, numbers always as floats for the same reason.
Building influxdb-client `Point` objects costs several times more per reading, hence this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from wattbus import messages as m

from .roles import COUNTED, RoleTags

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_NAIVE = datetime(1970, 1, 1)
MIN_NS, MAX_NS = -9_223_372_036_854_775_806, 9_223_372_036_854_775_806

_MEAS_ESCAPE = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n"})
_KEY_ESCAPE = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n"})
_STR_ESCAPE = str.maketrans({'"': r"\"", "\\": r"\\", "\n": r"\n"})

# Fields that identify rather than measure: they become tags (or are handled separately).
_TAG_FIELDS: dict[type[m.ReadingBase], tuple[str, ...]] = {
    m.StringReading: ("index", "inverter_id"),
    m.RelayReading: ("channel",),
}
_SPECIAL = {"device_id", "timestamp", "extra", "phases"}

Encoder = Callable[[Any], str | None]
# main prefix, phase prefix, and for devices in a counted role the `site_role` prefix and power field
_Prefixes = tuple[str, str, tuple[str, str] | None]

# One measurement across kinds for the devices in a counted role (roles.py): InfluxQL cannot sum
# over measurements, and a house's PV is often an inverter and a gateway (one series per measurement).
VIEW_MEASUREMENT = "site_role"
VIEW_TOTALS = ("energy_total_wh", "energy_import_wh", "energy_export_wh", "energy_charge_wh", "energy_discharge_wh")


class EncodeError(ValueError):
    """A reading that cannot become a point (no fields at all, timestamp out of range)."""


def escape_key(value: str) -> str:
    return value.translate(_KEY_ESCAPE)


def tag_value(value: str) -> str:
    # A tag value may not end in a backslash (it would escape the separator).
    return value.translate(_KEY_ESCAPE).rstrip("\\")


def _float(v: Any) -> str | None:
    if type(v) is bool:  # a bool in a float slot is a producer bug; keep it out of the float series
        return None
    f = float(v)
    return repr(f) if math.isfinite(f) else None


def _int(v: Any) -> str | None:
    return f"{int(v)}i"


def _bool(v: Any) -> str | None:
    return "true" if v else "false"


def _str(v: Any) -> str | None:
    return f'"{str(v).translate(_STR_ESCAPE)}"'


def _extra(v: Any) -> str | None:
    t = type(v)
    if t is bool:
        return "true" if v else "false"
    if t is int or t is float:
        return _float(v)
    if t is str:
        return _str(v)
    return None


def _scalar_encoder(t: msgspec.inspect.Type) -> Encoder | None:
    """The encoder for a field's declared type (None-able unions unwrap to their one value type)."""
    if isinstance(t, msgspec.inspect.UnionType):
        inner = [x for x in t.types if not isinstance(x, msgspec.inspect.NoneType)]
        return _scalar_encoder(inner[0]) if len(inner) == 1 else None
    if isinstance(t, msgspec.inspect.FloatType):
        return _float
    if isinstance(t, msgspec.inspect.BoolType):
        return _bool
    if isinstance(t, msgspec.inspect.IntType):
        return _int
    if isinstance(t, msgspec.inspect.StrType):
        return _str
    if isinstance(t, msgspec.inspect.LiteralType):
        return _str if all(isinstance(v, str) for v in t.values) else _int
    return None


class _Plan:
    """Per reading type: which attributes become which fields, computed once."""

    def __init__(self, cls: type[m.ReadingBase]) -> None:
        info = msgspec.inspect.type_info(cls)
        assert isinstance(info, msgspec.inspect.StructType)
        tag = cls.__struct_config__.tag
        self.kind = str(tag)
        self.measurement = self.kind.translate(_MEAS_ESCAPE)
        self.tag_fields = _TAG_FIELDS.get(cls, ())
        self.scalars: list[tuple[str, str, Encoder]] = []
        self.lists: list[tuple[str, str, str]] = []  # attr, field prefix, unit suffix
        for f in info.fields:
            if f.name in _SPECIAL or f.name in self.tag_fields or f.name == "kind":
                continue
            enc = _scalar_encoder(f.type)
            if enc is not None:
                self.scalars.append((f.name, escape_key(f.name), enc))
            elif isinstance(f.type, msgspec.inspect.ListType):
                base, _, unit = f.name.rpartition("_")
                self.lists.append((f.name, escape_key(base), escape_key(unit)))
            else:
                raise TypeError(f"{cls.__name__}.{f.name}: no line-protocol mapping for {f.type!r}")


PLANS: dict[type[m.ReadingBase], _Plan] = {cls: _Plan(cls) for cls in m.READING_TYPES}
_PHASE_FIELDS = tuple((name, escape_key(name)) for name in ("voltage_v", "current_a", "power_w", "power_factor"))


def timestamp_ns(ts: datetime) -> int:
    delta = ts - (EPOCH if ts.tzinfo is not None else EPOCH_NAIVE)
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if not MIN_NS <= ns <= MAX_NS:
        raise EncodeError(f"timestamp {ts.isoformat()} is outside InfluxDB's range (1677-09-22 .. 2262-04-11)")
    return ns


class LineEncoder:
    """Readings to lines, with each series' measurement and tag set built once.

    A device's tags (id, kind, source, string/channel) repeat in every reading, and building,
    escaping and sorting them was a third of the encoding cost, paid in the MQTT network thread
    that also has to send every PUBACK. The cache is bounded: past `max_series` it starts over.
    """

    def __init__(self, max_series: int = 4096, roles: RoleTags | None = None) -> None:
        self.max_series = max_series
        self.roles = roles  # None: no role/parent tags (the CLI's one-off encoding)
        self._roles_version = roles.version if roles is not None else 0
        self._prefixes: dict[tuple[Any, ...], _Prefixes] = {}

    def _prefix(self, plan: _Plan, reading: m.ReadingBase, device_id: str, source: str,
                site: str | None) -> _Prefixes:
        # The site is part of the key: the same device id may exist at two sites (a demo serial, a
        # reused test rig), and their series must not share a tag set.
        key: tuple[Any, ...] = (plan, device_id, source, site)
        if plan.tag_fields:  # strings and relays: the index/channel is part of the series
            key += tuple(getattr(reading, name) for name in plan.tag_fields)
        found = self._prefixes.get(key)
        if found is not None:
            return found
        tags = [f"device_id={tag_value(device_id)}", f"kind={plan.kind}"]
        for name in plan.tag_fields:
            tags.append(f"{name}={tag_value(str(getattr(reading, name)))}")
        tags.append(f"source={tag_value(source)}")
        role = None
        if self.roles is not None:
            for name, value in self.roles.tags(site, source, device_id, plan.kind):
                tags.append(f"{name}={tag_value(value)}")
            role = self.roles.role(site, f"{source}/{device_id}", plan.kind)
        if site is not None:
            tags.append(f"site={tag_value(site)}")
        tags.sort()
        tagset = ",".join(t for t in tags if not t.endswith("="))  # an empty tag value is not allowed
        if len(self._prefixes) >= self.max_series:
            self._prefixes.clear()
        view = None
        if self.roles is not None and role in COUNTED:
            view = (f"{VIEW_MEASUREMENT},{tagset} ", self.roles.power_field(f"{source}/{device_id}"))
        found = self._prefixes[key] = (f"{plan.measurement},{tagset} ", f"{plan.measurement}_phase,{tagset},phase=",
                                       view)
        return found

    def encode(self, reading: m.ReadingBase, source: str, device_id: str | None = None,
               site: str | None = None) -> list[str]:
        """The line(s) for one reading: its main point, then one `<kind>_phase` point per phase.

        `device_id` is the topic's id (the broker's ACL vouches for the topic, not for the payload);
        None uses the payload's. `site` (from a `sites/<site_id>/` topic prefix) adds a `site` tag.
        """
        plan = PLANS[type(reading)]
        roles = self.roles
        if roles is not None and roles.version != self._roles_version:
            # A role changed: the cached tag sets are stale (new points only; stored ones keep theirs).
            self._prefixes.clear()
            self._roles_version = roles.version
        ts = f" {timestamp_ns(reading.timestamp)}\n"
        main, phase_prefix, view = self._prefix(plan, reading, device_id or reading.device_id, source, site)
        fields = []
        for attr, key, enc in plan.scalars:
            value = getattr(reading, attr)
            if value is None:
                continue
            # Most values are plain finite floats: format them without the generic encoder call.
            if type(value) is float and enc is _float:
                if math.isfinite(value):
                    fields.append(f"{key}={value!r}")
                continue
            text = enc(value)
            if text is not None:
                fields.append(f"{key}={text}")
        for attr, base, unit in plan.lists:
            for i, value in enumerate(getattr(reading, attr), 1):
                text = _float(value)
                if text is not None:
                    fields.append(f"{base}_{i}_{unit}={text}")
        for key, value in reading.extra.items():
            text = _extra(value)
            if text is not None and key:
                fields.append(f"extra_{escape_key(key)}={text}")
        lines = []
        if fields:
            lines.append(main + ",".join(fields) + ts)
        for phase in getattr(reading, "phases", ()):
            pfields = []
            for attr, key in _PHASE_FIELDS:
                value = getattr(phase, attr)
                if type(value) is float:
                    if math.isfinite(value):
                        pfields.append(f"{key}={value!r}")
                elif value is not None and (text := _float(value)) is not None:
                    pfields.append(f"{key}={text}")
            if pfields:
                lines.append(f"{phase_prefix}{phase.phase} {','.join(pfields)}{ts}")
        if view is not None and lines and (vfields := _view_fields(reading, view[1])):
            lines.append(view[0] + ",".join(vfields) + ts)
        if not lines:
            raise EncodeError(f"{plan.kind} reading of {device_id or reading.device_id} has no values to store")
        return lines


def _view_fields(reading: m.ReadingBase, power_field: str) -> list[str]:
    """The `site_role` point's fields: the power the role counts (the ref's field, as http-api
    reads it: the attribute, else the vendor extra) and the lifetime totals the reading has."""
    fields = []
    power = getattr(reading, power_field, None)
    if power is None:
        power = reading.extra.get(power_field)
    if type(power) is not bool and isinstance(power, float | int) and (text := _float(power)) is not None:
        fields.append(f"power_w={text}")
    for name in VIEW_TOTALS:
        value = getattr(reading, name, None)
        if value is not None and (text := _float(value)) is not None:
            fields.append(f"{name}={text}")
    return fields


def encode(reading: m.ReadingBase, source: str, device_id: str | None = None, site: str | None = None) -> list[str]:
    """One-off encoding (CLI, tests); the writer keeps a LineEncoder with its cache."""
    return LineEncoder(max_series=1).encode(reading, source, device_id, site)
