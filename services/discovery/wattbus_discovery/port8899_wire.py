"""The two protocols found on TCP port 8899: the APsystems ECU and the GivEnergy dongle.

Both probes only read: the ECU's info query (0001) and one 60-register holding read at the
dongle's detection address 0x11, the same request GivEnergy's own app starts with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wattbus.checksums import crc16_modbus

from .modbus_wire import WireError

ECU_INFO_QUERY = b"APS1100160001END\n"
GIV_MARKER = b"\x59\x59\x00\x01"
GIV_DETECT_SLAVE = 0x11
CLIENT_SERIAL = b"AB1234G000"  # what GivEnergy clients put where the dongle puts its own serial
GIV_SERIAL_REGISTERS = range(13, 18)  # holding registers 13-17: the inverter serial, 10 ASCII chars
_ECU_ID = re.compile(rb"^\d{12}$")
_FIRMWARE_MODEL = re.compile(r"^ECU_([A-Z])_")


@dataclass(frozen=True, slots=True)
class EcuInfo:
    ecu_id: str
    layout: str
    firmware: str | None
    inverters: int | None

    @property
    def model(self) -> str | None:
        """ECU-R/ECU-B firmware strings start with ECU_<letter>_; others stay unknown."""
        found = _FIRMWARE_MODEL.match(self.firmware or "")
        return f"ECU-{found.group(1)}" if found else None


def parse_ecu_info(data: bytes) -> EcuInfo:
    """Validate an answer to ECU_INFO_QUERY: APS + version + length + 0001 ... END\\n."""
    if not data.startswith(b"APS"):
        raise WireError(f"ECU answer starts with {data[:3]!r}, not APS")
    if not data.endswith(b"END\n"):
        raise WireError(f"ECU answer of {len(data)} bytes does not end with END")
    length = data[5:9]
    if not length.isdigit() or int(length) != len(data) - 1:
        raise WireError(f"ECU length field {length!r} does not match the {len(data)}-byte answer")
    if data[9:13] != b"0001":
        raise WireError(f"ECU answer echoes command {data[9:13]!r}, expected 0001")
    ecu_id = data[13:25]
    if not _ECU_ID.match(ecu_id):
        raise WireError(f"ECU id {ecu_id!r} at bytes 13-25 is not 12 digits")
    layout = data[25:27].decode("ascii", "replace")
    firmware: str | None = None
    inverters: int | None = None
    body_end = len(data) - 4
    if layout == "01" and body_end >= 50:
        inverters = int.from_bytes(data[46:48], "big")
        firmware = _length_prefixed(data, 52, body_end)
    elif layout == "02" and body_end >= 43:
        inverters = int.from_bytes(data[39:41], "big")
        firmware = _length_prefixed(data, 49, body_end)
    return EcuInfo(ecu_id.decode(), layout, firmware, inverters)


def _length_prefixed(data: bytes, at: int, end: int) -> str | None:
    size = data[at:at + 3]
    if not size.isdigit() or at + 3 + int(size) > end:
        return None  # older firmware leaves it out: the identity does not depend on it
    return data[at + 3:at + 3 + int(size)].decode("ascii", "replace").strip() or None


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
