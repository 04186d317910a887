"""Modbus TCP frames (MBAP header + PDU) as pure functions, for discovery's own read-only probes.

Only function 3 (read holding registers) is ever built here: discovery never writes. What the
registers mean (the SunSpec marker, common model, model chain) is wattbus.sunspec, shared with the
sunspec-bridge.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from wattbus.sunspec import WireError

MAX_READ = 125  # registers per Modbus read

__all__ = ["MAX_READ", "Answer", "WireError", "mbap_length", "parse_answer", "read_request"]


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
