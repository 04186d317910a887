"""The GivEnergy dongle on TCP 8899: wire types, encoder, decoder, stream reassembly and who
answered (identification), for giv-bridge and discovery alike.

    59 59 | 00 01 | len (2) | uid 01 | fid | payload ...            len counts uid + fid + payload
    fid 1 heartbeat:    adapter serial (10) | adapter type (1)
    fid 2 transparent:  adapter serial (10) | padding (8) | addr | func | body | crc (2)
        request  3/4:   base (2) | count (2)
        request  6:     register (2) | value (2)
        response 3/4:   inverter serial (10) | base (2) | count (2) | values (2 × count)
        response 6:     inverter serial (10) | register (2) | value (2)
        error (func | 0x80): inverter serial (10) | base (2) | count (2)

The CRC is CRC-16/Modbus over addr .. end of body, low byte first (as in Modbus RTU). Real
dongles also send zero-filled "null" responses (func 0) for absent batteries and, now and then,
frames cut short or joined to the next one, so every check has its own rejection reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .checksums import crc16_modbus

MARKER = b"\x59\x59\x00\x01"
HEADER_LEN = 8  # marker, length, uid, fid
MAX_LENGTH = 300  # no real frame is longer (60 registers = 158); larger is a corrupt header
HEARTBEAT = 1
TRANSPARENT = 2
READ_HOLDING = 3
READ_INPUT = 4
WRITE_SINGLE = 6
MAX_REGISTERS = 60
REQUEST_PADDING = 0x08  # the dongle ignores requests with zero padding
SERIAL_LEN = 10


class FrameError(ValueError):
    """A frame that cannot be trusted; `reason` is a short counter-friendly code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _crc_bytes(data: bytes) -> bytes:
    return crc16_modbus(data).to_bytes(2, "little")


def _serial(raw: bytes) -> str:
    # Serials are ASCII padded with NULs or spaces; anything else is replaced, never trusted.
    return raw.decode("ascii", errors="replace").strip("\x00 ")


def _pad_serial(serial: str) -> bytes:
    return serial.encode("ascii", errors="replace")[:SERIAL_LEN].ljust(SERIAL_LEN, b"\x00")


# --------------------------------------------------------------------------- wire types

@dataclass(frozen=True, slots=True)
class Heartbeat:
    adapter_serial: str
    adapter_type: int


@dataclass(frozen=True, slots=True)
class ReadRequest:
    adapter_serial: str
    address: int
    function: int  # READ_HOLDING or READ_INPUT
    base: int
    count: int


@dataclass(frozen=True, slots=True)
class WriteRequest:
    adapter_serial: str
    address: int
    register: int
    value: int


@dataclass(frozen=True, slots=True)
class ReadResponse:
    adapter_serial: str
    address: int
    function: int
    inverter_serial: str
    base: int
    values: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class WriteResponse:
    adapter_serial: str
    address: int
    inverter_serial: str
    register: int
    value: int


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    adapter_serial: str
    address: int
    function: int  # without the 0x80 error bit
    inverter_serial: str
    base: int
    count: int


Frame = Heartbeat | ReadRequest | WriteRequest | ReadResponse | WriteResponse | ErrorResponse


# --------------------------------------------------------------------------- encoding

def _wrap(fid: int, payload: bytes) -> bytes:
    return MARKER + (len(payload) + 2).to_bytes(2, "big") + bytes((1, fid)) + payload


def encode_heartbeat(adapter_serial: str, adapter_type: int = 1) -> bytes:
    return _wrap(HEARTBEAT, _pad_serial(adapter_serial) + bytes((adapter_type & 0xFF,)))


def _transparent(adapter_serial: str, padding: int, body: bytes) -> bytes:
    return _wrap(TRANSPARENT, _pad_serial(adapter_serial) + padding.to_bytes(8, "big") + body + _crc_bytes(body))


def encode_read(address: int, function: int, base: int, count: int, adapter_serial: str = "AB1234G567") -> bytes:
    if function not in (READ_HOLDING, READ_INPUT):
        raise ValueError(f"read function must be 3 or 4, got {function}")
    if not 1 <= count <= MAX_REGISTERS or base % MAX_REGISTERS + count > MAX_REGISTERS:
        raise ValueError(f"registers {base}+{count}: reads are at most 60 registers inside one 60-aligned block")
    body = bytes((address, function)) + base.to_bytes(2, "big") + count.to_bytes(2, "big")
    return _transparent(adapter_serial, REQUEST_PADDING, body)


def encode_write(address: int, register: int, value: int, adapter_serial: str = "AB1234G567") -> bytes:
    if not 0 <= value <= 0xFFFF or not 0 <= register <= 0xFFFF:
        raise ValueError(f"write {register}={value}: register and value must fit 16 bits")
    body = bytes((address, WRITE_SINGLE)) + register.to_bytes(2, "big") + value.to_bytes(2, "big")
    return _transparent(adapter_serial, REQUEST_PADDING, body)


def encode(frame: Frame, padding: int = 0x8A) -> bytes:
    """Encode any wire type (the simulator and tests build responses with it)."""
    match frame:
        case Heartbeat():
            return encode_heartbeat(frame.adapter_serial, frame.adapter_type)
        case ReadRequest():
            return encode_read(frame.address, frame.function, frame.base, frame.count, frame.adapter_serial)
        case WriteRequest():
            return encode_write(frame.address, frame.register, frame.value, frame.adapter_serial)
        case ReadResponse():
            body = (bytes((frame.address, frame.function)) + _pad_serial(frame.inverter_serial)
                    + frame.base.to_bytes(2, "big") + len(frame.values).to_bytes(2, "big")
                    + b"".join(v.to_bytes(2, "big") for v in frame.values))
        case WriteResponse():
            body = (bytes((frame.address, WRITE_SINGLE)) + _pad_serial(frame.inverter_serial)
                    + frame.register.to_bytes(2, "big") + frame.value.to_bytes(2, "big"))
        case ErrorResponse():
            body = (bytes((frame.address, frame.function | 0x80)) + _pad_serial(frame.inverter_serial)
                    + frame.base.to_bytes(2, "big") + frame.count.to_bytes(2, "big"))
    return _transparent(frame.adapter_serial, padding, body)


# --------------------------------------------------------------------------- decoding

def decode(frame: bytes, *, from_dongle: bool = True) -> Frame:
    """Decode one complete frame. `from_dongle` picks the response layouts (else requests)."""
    if len(frame) < HEADER_LEN:
        raise FrameError("truncated", f"{len(frame)} bytes, a frame has at least {HEADER_LEN}")
    if frame[:4] != MARKER:
        raise FrameError("bad_header", f"starts {frame[:4].hex()}, expected {MARKER.hex()}")
    length = int.from_bytes(frame[4:6], "big")
    if length < 2 or length > MAX_LENGTH:
        raise FrameError("bad_length", f"length field {length} outside 2..{MAX_LENGTH}")
    if len(frame) != length + 6:
        what = "truncated" if len(frame) < length + 6 else "trailing_bytes"
        raise FrameError(what, f"length field says {length + 6} bytes, got {len(frame)}")
    uid, fid, payload = frame[6], frame[7], frame[8:]
    if uid not in (0, 1):
        raise FrameError("bad_unit", f"unit id {uid:#04x}, expected 0x01")
    if fid == HEARTBEAT:
        if len(payload) != SERIAL_LEN + 1:
            raise FrameError("bad_heartbeat", f"heartbeat payload {len(payload)} bytes, expected 11")
        return Heartbeat(_serial(payload[:SERIAL_LEN]), payload[SERIAL_LEN])
    if fid != TRANSPARENT:
        raise FrameError("bad_function", f"frame function {fid}, expected 1 (heartbeat) or 2 (transparent)")
    return _decode_transparent(payload, from_dongle)


def _decode_transparent(payload: bytes, from_dongle: bool) -> Frame:
    if len(payload) < 24:
        raise FrameError("truncated", f"transparent payload {len(payload)} bytes, at least 24 needed")
    adapter = _serial(payload[:SERIAL_LEN])
    body, crc = payload[18:-2], payload[-2:]
    address, func = body[0], body[1]
    if func == 0 and not any(body[1:]):
        # What a dongle sends for an empty battery slot: all zeros, no valid CRC.
        raise FrameError("null_response", f"zero-filled answer from address {address:#04x}")
    if _crc_bytes(body) != crc:
        raise FrameError("crc_mismatch", f"crc {crc.hex()} on the wire, {_crc_bytes(body).hex()} computed "
                         f"(address {address:#04x}, function {func:#04x})")
    data = body[2:]
    base_func = func & 0x7F
    if base_func not in (READ_HOLDING, READ_INPUT, WRITE_SINGLE):
        raise FrameError("bad_function", f"transparent function {func:#04x} is not 3, 4 or 6")
    if not from_dongle:
        if len(data) != 4:
            raise FrameError("bad_length", f"request body {len(data)} bytes, expected 4")
        first, second = int.from_bytes(data[:2], "big"), int.from_bytes(data[2:], "big")
        if base_func == WRITE_SINGLE:
            return WriteRequest(adapter, address, first, second)
        return ReadRequest(adapter, address, base_func, first, second)
    if len(data) < SERIAL_LEN + 4:
        raise FrameError("truncated", f"response body {len(data)} bytes, at least 14 needed")
    inverter = _serial(data[:SERIAL_LEN])
    first, second = int.from_bytes(data[10:12], "big"), int.from_bytes(data[12:14], "big")
    rest = data[14:]
    if func & 0x80:
        return ErrorResponse(adapter, address, base_func, inverter, first, second)
    if base_func == WRITE_SINGLE:
        if rest:
            raise FrameError("bad_length", f"write response carries {len(rest)} extra bytes")
        return WriteResponse(adapter, address, inverter, first, second)
    return _read_response(adapter, address, base_func, inverter, first, second, rest)


def _read_response(adapter: str, address: int, func: int, inverter: str, base: int, count: int,
                   rest: bytes) -> ReadResponse:
    if count > MAX_REGISTERS or len(rest) != 2 * count:
        raise FrameError("bad_count", f"count {count} but {len(rest)} data bytes (base {base})")
    if base % MAX_REGISTERS + count > MAX_REGISTERS:
        raise FrameError("misaligned", f"registers {base}..{base + count - 1} cross a 60-register block")
    values = tuple(int.from_bytes(rest[i:i + 2], "big") for i in range(0, len(rest), 2))
    return ReadResponse(adapter, address, func, inverter, base, values)


# --------------------------------------------------------------------------- stream

class FrameStream:
    """Reassembles frames from TCP reads: a frame may arrive in pieces or joined with the next.

    Garbage before a marker is skipped (and reported); a length field that cannot be a frame
    makes the stream resynchronise on the next marker.
    """

    def __init__(self, *, from_dongle: bool = True, max_buffer: int = 4096) -> None:
        self.from_dongle = from_dongle
        self.max_buffer = max_buffer
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> Iterator[tuple[Frame | FrameError, bytes]]:
        """Yield (frame or error, raw bytes) for every complete frame in the buffer."""
        self._buffer += data
        while True:
            start = self._buffer.find(MARKER)
            if start < 0:
                keep = len(MARKER) - 1  # a marker may be split across reads
                if len(self._buffer) > keep:
                    dropped = bytes(self._buffer[:-keep])
                    del self._buffer[:-keep]
                    if dropped.strip(b"\x00"):
                        yield FrameError("garbage", f"{len(dropped)} bytes without a frame marker"), dropped
                return
            if start > 0:
                dropped = bytes(self._buffer[:start])
                del self._buffer[:start]
                yield FrameError("garbage", f"{len(dropped)} bytes before a frame marker"), dropped
            if len(self._buffer) < 6:
                return
            length = int.from_bytes(self._buffer[4:6], "big")
            if length < 2 or length > MAX_LENGTH:
                raw = bytes(self._buffer[:4])
                del self._buffer[:4]
                yield FrameError("bad_length", f"length field {length} outside 2..{MAX_LENGTH}"), raw
                continue
            total = length + 6
            if len(self._buffer) < total:
                if len(self._buffer) > self.max_buffer:
                    self._buffer.clear()
                return
            raw = bytes(self._buffer[:total])
            try:
                frame = decode(raw, from_dongle=self.from_dongle)
            except FrameError as exc:
                following = raw.find(MARKER, 4)
                if following > 0:
                    # A new frame starts inside this one: the current frame was cut short on the wire.
                    del self._buffer[:following]
                    yield FrameError("truncated", f"next frame starts after {following} of {total} bytes "
                                     f"({exc.reason})"), raw[:following]
                else:
                    del self._buffer[:total]
                    yield exc, raw
                continue
            del self._buffer[:total]
            yield frame, raw


# --------------------------------------------------------------------------- identification

DETECT_ADDRESS = 0x11  # the address GivEnergy's own app reads first; every dongle answers it
CLIENT_SERIAL = "AB1234G000"  # what GivEnergy clients put where the dongle puts its own serial
SERIAL_REGISTERS = range(13, 18)  # holding registers 13-17: the inverter serial, 10 ASCII characters


def detect_request() -> bytes:
    """The identification read (discovery's probe): 60 holding registers from 0; it only reads."""
    return encode_read(DETECT_ADDRESS, READ_HOLDING, 0, MAX_REGISTERS, CLIENT_SERIAL)


@dataclass(frozen=True, slots=True)
class Identity:
    adapter_serial: str | None
    inverter_serial: str | None
    device_type: int | None  # holding register 0 (its first hex digit is the family)


def _printable(text: str) -> str | None:
    return text if text and text.isprintable() else None


def identity(answer: ReadResponse) -> Identity:
    """Who answered a read: the serials in the frame, and from the holding block at 0 the inverter
    serial registers (which a dongle fills even where the frame's serial field is blank) and the
    device type."""
    holding0 = answer.function == READ_HOLDING and answer.base == 0 and len(answer.values) > SERIAL_REGISTERS[-1]
    from_registers = None
    if holding0:
        raw = b"".join(answer.values[r].to_bytes(2, "big") for r in SERIAL_REGISTERS)
        from_registers = _printable(_serial(raw.split(b"\x00", 1)[0]))
    return Identity(_printable(answer.adapter_serial), from_registers or _printable(answer.inverter_serial),
                    answer.values[0] if holding0 else None)
