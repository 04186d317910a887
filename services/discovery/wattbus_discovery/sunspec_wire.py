"""Modbus TCP frames and the SunSpec identity (marker + common model 1), as pure functions.

Only function 3 (read holding registers) is ever built here: discovery never writes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MARKER = (0x5375, 0x6E53)  # "SunS"
COMMON_MODEL = 1
COMMON_LENGTHS = (65, 66)
END_MODEL = 0xFFFF
MAX_READ = 125  # registers per Modbus read
# Model ids by device kind (SunSpec model numbering: 1xx inverters, 2xx meters, 8xx storage).
INVERTER_MODELS = frozenset({101, 102, 103, 111, 112, 113, 160, 701})
METER_MODELS = frozenset({201, 202, 203, 204, 211, 212, 213, 214})
BATTERY_MODELS = frozenset({124, 802, 803, 804, 713, 714})


class WireError(ValueError):
    """Bytes that are not what the protocol says; the message names what and where."""


def read_request(transaction: int, unit: int, address: int, count: int) -> bytes:
    if not 1 <= count <= MAX_READ:
        raise WireError(f"read of {count} registers: Modbus allows 1..{MAX_READ}")
    return struct.pack(">HHHBBHH", transaction & 0xFFFF, 0, 6, unit, 3, address, count)


@dataclass(frozen=True, slots=True)
class Answer:
    transaction: int
    unit: int
    registers: tuple[int, ...] = ()
    exception: int | None = None  # Modbus exception code when the device refused the read


def parse_answer(header: bytes, body: bytes) -> Answer:
    """header = the 7-byte MBAP header, body = the PDU (length - 1 bytes) that followed it."""
    if len(header) != 7:
        raise WireError(f"MBAP header of {len(header)} bytes, expected 7")
    transaction, protocol, length, unit = struct.unpack(">HHHB", header)
    if protocol != 0:
        raise WireError(f"MBAP protocol id {protocol}, expected 0 (not Modbus TCP)")
    if len(body) != length - 1 or not body:
        raise WireError(f"MBAP length {length} but {len(body) + 1} bytes followed")
    function = body[0]
    if function == 0x83 and len(body) == 2:
        return Answer(transaction, unit, exception=body[1])
    if function != 3:
        raise WireError(f"answer with function 0x{function:02x} to a read holding registers request")
    if len(body) < 2 or body[1] != len(body) - 2 or body[1] % 2:
        raise WireError(f"byte count {body[1] if len(body) > 1 else None} does not match {len(body) - 2} data bytes")
    count = body[1] // 2
    return Answer(transaction, unit, struct.unpack(f">{count}H", body[2:2 + 2 * count]))


def mbap_length(header: bytes) -> int:
    """The number of bytes after the header (PDU); validated so garbage cannot ask for megabytes."""
    length = int.from_bytes(header[4:6], "big")
    if not 2 <= length <= 254:
        raise WireError(f"MBAP length {length} outside 2..254")
    return length - 1


def is_marker(registers: tuple[int, ...]) -> bool:
    return tuple(registers[:2]) == MARKER


def text(registers: tuple[int, ...] | list[int]) -> str | None:
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


def decode_common(body: tuple[int, ...] | list[int]) -> Common:
    """The common model body (after its ID/L pair): Mn 16, Md 16, Opt 8, Vr 8, SN 16, DA 1."""
    if len(body) < 64:
        raise WireError(f"common model body of {len(body)} registers, expected at least 64")
    da = body[64] if len(body) > 64 and body[64] not in (0xFFFF, 0x8000) else None
    return Common(text(body[0:16]), text(body[16:32]), text(body[32:40]), text(body[40:48]), text(body[48:64]), da)


def kind_of(models: list[int]) -> str | None:
    if any(mid in INVERTER_MODELS for mid in models):
        return "inverter"
    if any(mid in METER_MODELS for mid in models):
        return "meter"
    if any(mid in BATTERY_MODELS for mid in models):
        return "battery"
    return None
