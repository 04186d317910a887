"""SunSpec over Modbus: the marker, the model chain, the common model and what kind a device is.

The one home of this knowledge: the sunspec-bridge polls with it, discovery identifies with it.
Transport stays with the caller (pymodbus in the bridge, raw Modbus TCP frames in discovery):
`model_chain` walks the ID/L headers through whatever `read(address, count)` it is given.

Model ids by kind follow the SunSpec Alliance's model definitions (pysunspec2 ships them):
1xx inverter monitoring and its extensions (101-103 and 111-113 inverters, 160 "Multiple MPPT
Inverter Extension"); 2xx meters; 7xx the DER models ("DER AC Measurement" 701 ... "DER Storage
Capacity" 713, "DER DC Measurement" 714), each a part of the DER, the inverter that connects a
resource to the grid, so a device with them is an inverter even when its resource is storage; 8xx
energy storage (802 "Battery Base Model", 803 "Lithium-Ion Battery Bank", 804 and 805 its strings
and modules, 806-809 flow batteries) and 124 "Basic Storage Controls": a battery. The first kind
found wins in that order, so a hybrid inverter with a battery is an inverter (its battery a child).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

MARKER = (0x5375, 0x6E53)  # "SunS"
DEFAULT_BASES = (40000, 0, 50000)
# The order real installations answer in: generic 1, SMA 126, Fronius meter 240, SolarEdge 100,
# a second device 2, GoodWe 247; then the next few ids a daisy chain uses.
DEFAULT_UNITS = (1, 126, 240, 100, 2, 247, 3, 4, 5)
COMMON_MODEL = 1
COMMON_LENGTHS = (65, 66)  # L of model 1 without and with its trailing pad register
END_MODEL = 0xFFFF
MAX_MODELS = 200  # a chain longer than this is garbage (or a loop)

INVERTER_MODELS = frozenset({101, 102, 103, 111, 112, 113, 160, *range(701, 800)})
METER_MODELS = frozenset({201, 202, 203, 204, 211, 212, 213, 214})
BATTERY_MODELS = frozenset({124, *range(801, 900)})

Kind = Literal["inverter", "meter", "battery"]
# Registers -> the registers at `address` (count of them), or None where the map ends without its
# end marker (an exception answer, no answer): the walk stops there.
ReadRegisters = Callable[[int, int], Awaitable[Sequence[int] | None]]


class WireError(ValueError):
    """Bytes that are not what the protocol says; the message names what and where."""


class NotSunSpec(Exception):
    """The unit answered (or not) but has no SunSpec map."""


@dataclass(frozen=True, slots=True)
class Block:
    model_id: int
    address: int  # of the ID register
    length: int  # L, registers after the header

    @property
    def end(self) -> int:
        return self.address + 2 + self.length


@dataclass(frozen=True, slots=True)
class DeviceMap:
    unit: int
    base: int
    blocks: tuple[Block, ...]

    def first(self, *model_ids: int) -> Block | None:
        return next((b for b in self.blocks if b.model_id in model_ids), None)

    @property
    def model_ids(self) -> list[int]:
        return [b.model_id for b in self.blocks]


def is_marker(registers: Sequence[int]) -> bool:
    return tuple(registers[:2]) == MARKER


async def model_chain(read: ReadRegisters, start: int, limit: int = MAX_MODELS) -> list[Block]:
    """The models from `start` (the first ID register) to the end marker, from their headers."""
    blocks: list[Block] = []
    address = start
    for _ in range(limit):
        if address > 0xFFFE:
            break
        head = await read(address, 2)
        if head is None or len(head) != 2:
            break  # some devices end the map without the 0xFFFF marker
        model_id, length = head
        if model_id in (END_MODEL, 0):
            break
        blocks.append(Block(model_id, address, length))
        address += 2 + length
    return blocks


def kind_of(models: Sequence[int]) -> Kind | None:
    """The device's kind from its model ids; None when none of them tells."""
    if any(mid in INVERTER_MODELS for mid in models):
        return "inverter"
    if any(mid in METER_MODELS for mid in models):
        return "meter"
    if any(mid in BATTERY_MODELS for mid in models):
        return "battery"
    return None


def text(registers: Sequence[int]) -> str | None:
    """SunSpec string: big-endian byte pairs, NUL padded; None when empty."""
    raw = b"".join(r.to_bytes(2, "big") for r in registers)
    value = raw.split(b"\x00", 1)[0].decode("latin-1").strip()
    return value or None


@dataclass(frozen=True, slots=True)
class Common:
    manufacturer: str | None
    model: str | None
    options: str | None
    version: str | None
    serial: str | None
    device_address: int | None


def decode_common(body: Sequence[int]) -> Common:
    """The common model body (after its ID/L pair): Mn 16, Md 16, Opt 8, Vr 8, SN 16, DA 1."""
    if len(body) < 64:
        raise WireError(f"common model body of {len(body)} registers, expected at least 64")
    da = body[64] if len(body) > 64 and body[64] not in (0xFFFF, 0x8000) else None
    return Common(text(body[0:16]), text(body[16:32]), text(body[32:40]), text(body[40:48]), text(body[48:64]), da)
