"""The generic mapping: raw values from a source -> one contract reading, in SI units.

A value that is absent, null or does not convert is None in the reading (missing, never 0), and its
miss is reported back so the worker can count it and show it as the device's error.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

import msgspec
from wattbus import messages as m

from . import units
from .select import Selector, SelectorError, as_bool, as_number, as_text
from .spec import READING_BY_KIND, Description, ModbusSource, MqttSource, Value, category_of

MISSING = object()  # the selector matched nothing (distinct from a JSON null)
_AT = re.compile(r" - at `\$\.([A-Za-z0-9_]+)")


class Mapper:
    def __init__(self, device_id: str, desc: Description) -> None:
        self.device_id = device_id
        self.desc = desc
        self.selectors = [Selector(v.select) if v.select else None for v in desc.values]
        self.categories = [category_of(desc, v) for v in desc.values]
        # A Modbus value arrives scaled (wattbus.registers.decode applies its point's scale, without
        # float dust); scaling it again here would apply the factor twice.
        modbus = isinstance(desc.source, ModbusSource)
        self.scales = [1.0 if modbus else v.scale for v in desc.values]

    def topic_of(self, value: Value) -> str:
        assert isinstance(self.desc.source, MqttSource)
        return value.topic or self.desc.source.topic

    def select(self, doc: Any, topic: str | None = None) -> dict[int, Any]:
        """Raw values picked from a JSON document (those of `topic` only, for MQTT)."""
        out: dict[int, Any] = {}
        for index, (value, selector) in enumerate(zip(self.desc.values, self.selectors, strict=True)):
            if topic is not None and self.topic_of(value) != topic:
                continue
            if selector is None:
                out[index] = doc
                continue
            found, raw = selector.find(doc)
            out[index] = raw if found else MISSING
        return out

    def _convert(self, index: int, raw: Any) -> Any:
        value = self.desc.values[index]
        where = self._name(value)
        if self.categories[index] == "bool":
            text = as_text(raw) if value.map else None  # a device's own words or codes: {"0" = "on"}
            return as_bool(value.map.get(text, raw) if text is not None else raw, where)
        if self.categories[index] == "text":
            text = as_text(raw)
            return value.map.get(text, text) if text is not None else None
        number = as_number(raw, where)
        if number is None or math.isnan(number):  # float registers hold NaN when the device has no value
            return None
        if math.isinf(number):
            raise SelectorError(f"{where}: {number} is not a measurement")
        return units.to_si(number * self.scales[index], value.unit)

    @staticmethod
    def _name(value: Value) -> str:
        return f"L{value.phase} {value.field}" if value.phase else value.field

    def reading(self, raws: dict[int, Any], timestamp: datetime) -> tuple[m.ReadingBase, list[str]]:
        """The reading from raw values (index -> raw); and what did not match or convert."""
        misses: list[str] = []
        top: dict[str, Any] = {}
        phases: dict[int, dict[str, Any]] = {}
        extra: dict[str, m.ExtraValue] = {}
        for index, value in enumerate(self.desc.values):
            raw = raws.get(index, MISSING)
            converted: Any = None
            if raw is MISSING:
                if index in raws:  # asked for, not found (a value not in this message is simply absent)
                    selector = self.selectors[index]
                    misses.append(f"{self._name(value)}: {selector.text if selector else 'value'} matched nothing")
            else:
                try:
                    converted = self._convert(index, raw)
                except SelectorError as exc:
                    misses.append(str(exc))
            if value.field.startswith("extra."):
                if converted not in (None, ""):
                    extra[value.field[6:]] = converted
            elif value.phase is not None:
                phases.setdefault(value.phase, {"phase": value.phase})[value.field] = converted
            else:
                top[value.field] = converted
        if phases:
            top["phases"] = [phases[p] for p in sorted(phases)]
        return self._build(top, extra, timestamp, misses), misses

    def _build(self, top: dict[str, Any], extra: dict[str, m.ExtraValue], timestamp: datetime,
               misses: list[str]) -> m.ReadingBase:
        cls = READING_BY_KIND[self.desc.kind]
        fields = dict(top)
        for _attempt in range(len(fields) + 1):
            try:
                return msgspec.convert({**fields, "device_id": self.device_id, "timestamp": timestamp,
                                        "extra": extra}, type=cls, strict=False)
            except msgspec.ValidationError as exc:
                # A value outside what the contract allows (a state word it does not know, 120 % SoC):
                # that field is missing and the reason shown, the others still go out.
                where = _AT.search(str(exc))
                if where is None or where.group(1) not in fields or where.group(1) == "phases":
                    raise
                field = where.group(1)
                misses.append(f"{field} = {fields.pop(field)!r}: {str(exc).split(' - at ')[0]}")
        raise AssertionError("unreachable: every field was dropped")
