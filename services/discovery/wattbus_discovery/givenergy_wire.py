"""The GivEnergy dongle on TCP port 8899 (the APsystems ECU, on the same port, is wattbus.apsystems).

The probe only reads: one 60-register holding read at the dongle's detection address 0x11, the
same request GivEnergy's own app starts with.
"""

from __future__ import annotations

from dataclasses import dataclass

from wattbus.checksums import crc16_modbus

from .modbus_wire import WireError

GIV_MARKER = b"\x59\x59\x00\x01"
GIV_DETECT_SLAVE = 0x11
CLIENT_SERIAL = b"AB1234G000"  # what GivEnergy clients put where the dongle puts its own serial
GIV_SERIAL_REGISTERS = range(13, 18)  # holding registers 13-17: the inverter serial, 10 ASCII chars


def giv_read_request(base: int = 0, count: int = 60, slave: int = GIV_DETECT_SLAVE) -> bytes:
    """Transparent frame: adapter serial placeholder, 8 padding bytes, slave, fn 3, base, count, CRC."""
    body = bytes((slave, 3)) + base.to_bytes(2, "big") + count.to_bytes(2, "big")
    payload = CLIENT_SERIAL + (8).to_bytes(8, "big") + body + crc16_modbus(body).to_bytes(2, "little")
    return GIV_MARKER + (len(payload) + 2).to_bytes(2, "big") + b"\x01\x02" + payload


@dataclass(frozen=True, slots=True)
class GivFrame:
    function: int  # 1 heartbeat, 2 transparent
    payload: bytes


def split_giv_frames(buffer: bytes) -> tuple[list[GivFrame], bytes, int]:
    """Frames in buffer, the unconsumed rest, and how many garbage bytes were skipped to resync."""
    frames: list[GivFrame] = []
    skipped = 0
    while True:
        start = buffer.find(GIV_MARKER)
        if start < 0:
            keep = max(0, len(buffer) - 3)  # a marker may be split across reads
            return frames, buffer[keep:], skipped + keep
        skipped += start
        buffer = buffer[start:]
        if len(buffer) < 8:
            return frames, buffer, skipped
        total = int.from_bytes(buffer[4:6], "big") + 6
        if total < 8 or total > 2048:
            buffer, skipped = buffer[4:], skipped + 4  # impossible length: not a frame start
            continue
        if len(buffer) < total:
            return frames, buffer, skipped
        frames.append(GivFrame(buffer[7], buffer[8:total]))
        buffer = buffer[total:]


@dataclass(frozen=True, slots=True)
class GivIdentity:
    adapter_serial: str | None
    inverter_serial: str | None
    device_type: int | None  # holding register 0


def _ascii(raw: bytes) -> str | None:
    value = raw.split(b"\x00", 1)[0].decode("ascii", "replace").strip()
    return value if value and value.isprintable() else None


def parse_giv_heartbeat(frame: GivFrame) -> str | None:
    """A heartbeat carries the adapter serial: proof of a dongle even before any answer."""
    return _ascii(frame.payload[:10]) if frame.function == 1 and len(frame.payload) >= 10 else None


def parse_giv_answer(frame: GivFrame) -> GivIdentity:
    """The answer to giv_read_request(): serials from the frame and holding registers 13-17."""
    p = frame.payload
    if frame.function != 2:
        raise WireError(f"GivEnergy frame function {frame.function}, expected 2 (transparent)")
    if len(p) < 34:
        raise WireError(f"GivEnergy transparent answer of {len(p)} bytes, too short for a read answer")
    slave, function = p[18], p[19]
    if function & 0x80:
        raise WireError(f"GivEnergy inverter refused the read (slave 0x{slave:02x}, function 0x{function:02x})")
    if function not in (3, 4):
        raise WireError(f"GivEnergy answer function {function}, expected 3 or 4 (a register read)")
    base, count = int.from_bytes(p[30:32], "big"), int.from_bytes(p[32:34], "big")
    regs_raw = p[34:-2]
    if count == 0 or len(regs_raw) != 2 * count:
        raise WireError(f"GivEnergy answer announces {count} registers but carries {len(regs_raw)} bytes")
    if crc16_modbus(p[18:-2]).to_bytes(2, "little") != p[-2:] and crc16_modbus(p[18:-2]).to_bytes(2, "big") != p[-2:]:
        raise WireError("GivEnergy answer CRC mismatch")
    regs = [int.from_bytes(regs_raw[i:i + 2], "big") for i in range(0, len(regs_raw), 2)]
    holding0 = function == 3 and base == 0  # only the holding block at 0 carries type and serial registers
    serial_regs = [regs[r] for r in GIV_SERIAL_REGISTERS if r < len(regs)] if holding0 else []
    from_regs = _ascii(b"".join(r.to_bytes(2, "big") for r in serial_regs)) if len(serial_regs) == 5 else None
    device_type = regs[0] if holding0 else None
    return GivIdentity(_ascii(p[:10]), from_regs or _ascii(p[20:30]), device_type)
