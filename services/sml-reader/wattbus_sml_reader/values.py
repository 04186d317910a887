"""What every decoder hands on: OBIS-keyed values of one good frame, or the reason it was bad."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Format = Literal["sml", "dsmr", "iec"]
FORMATS: tuple[Format, ...] = ("sml", "dsmr", "iec")

_OBIS = re.compile(r"^(\d{1,3})-(\d{1,3}):(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")


class FrameError(ValueError):
    """A frame or telegram that must not be published; str() names what is wrong and where."""

    def __init__(self, reason: str, kind: str = "invalid") -> None:
        super().__init__(reason)
        self.kind = kind  # counter suffix: crc, truncated, garbage, invalid


def obis_code(a: int, b: int, c: int, d: int, e: int) -> str:
    """The normalised text form every mapping table uses: `1-0:1.8.0` (the F group is dropped)."""
    return f"{a}-{b}:{c}.{d}.{e}"


def is_obis(code: str) -> bool:
    return bool(_OBIS.match(code))


@dataclass(frozen=True, slots=True)
class ObisValue:
    code: str  # normalised `A-B:C.D.E`
    value: float | str  # numeric values are already scaled (SML scaler applied)
    unit: str | None = None  # as the meter sent it: "Wh", "kWh", "W", "kW", "V", "A", "Hz", "m3"
    status: int | None = None  # SML status word of the entry, when the meter sends one
    timestamp: datetime | None = None  # capture time of M-Bus values (gas/water)


@dataclass(slots=True)
class DecodedFrame:
    """One good frame/telegram: its values plus the meter's identity when it sends one."""

    format: Format
    values: dict[str, ObisValue] = field(default_factory=dict)
    serial: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    timestamp: datetime | None = None  # the meter's own clock, where the protocol carries one
    size: int = 0  # bytes on the wire

    def add(self, value: ObisValue) -> None:
        # The first occurrence wins: some meters repeat a code with a different (historic) meaning.
        self.values.setdefault(value.code, value)

    def number(self, code: str) -> float | None:
        found = self.values.get(code)
        if found is None or isinstance(found.value, str):
            return None
        return float(found.value)
