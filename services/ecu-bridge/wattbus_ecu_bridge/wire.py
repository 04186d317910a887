"""The ECU's TCP protocol on port 8899: queries and the validation every answer must pass.

An answer is `APS` + 2-char version + 4 ASCII digits (total length - 1) + 4 ASCII digits echoing
the command + body + `END\\n`. Anything else is rejected with an EcuFrameError naming what is wrong
and where, so a half-read or foreign answer never turns into numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = b"APS"
SUFFIX = b"END\n"
HEADER_LEN = 13  # APS + version(2) + length(4) + command(4)
MIN_LEN = HEADER_LEN + len(SUFFIX)

CMD_INFO = "0001"
CMD_REALTIME = "0002"
CMD_SIGNAL = "0030"
COMMAND_NAMES = {CMD_INFO: "ECU info", CMD_REALTIME: "real-time data", CMD_SIGNAL: "signal strength"}


class EcuFrameError(ValueError):
    """An answer that is not a valid ECU frame; str() says what and at which byte."""


@dataclass(frozen=True, slots=True)
class Frame:
    version: str
    command: str
    data: bytes  # the whole answer, offsets in the layouts are from its first byte

    @property
    def name(self) -> str:
        return COMMAND_NAMES.get(self.command, f"command {self.command}")


def info_query() -> bytes:
    return b"APS1100160001" + SUFFIX


def realtime_query(ecu_id: str) -> bytes:
    return b"APS1100280002" + _ecu_id(ecu_id) + SUFFIX


def signal_query(ecu_id: str) -> bytes:
    return b"APS1100280030" + _ecu_id(ecu_id) + SUFFIX


def _ecu_id(ecu_id: str) -> bytes:
    if len(ecu_id) != 12 or not ecu_id.isdigit():
        raise EcuFrameError(f"ECU id {ecu_id!r} must be 12 digits")
    return ecu_id.encode("ascii")


def declared_length(header: bytes) -> int | None:
    """The total answer length the first 9 bytes announce, or None if they are not a header."""
    if len(header) < 9 or header[:3] != PREFIX or not header[5:9].isdigit():
        return None
    return int(header[5:9]) + 1


def validate(data: bytes, expected_command: str | None = None) -> Frame:
    """Check prefix, suffix, length field and echoed command; return the frame or raise."""
    if len(data) < MIN_LEN:
        raise EcuFrameError(f"answer is {len(data)} bytes, shorter than the {MIN_LEN}-byte minimum: {_show(data)}")
    if data[:3] != PREFIX:
        raise EcuFrameError(f"answer does not start with APS (bytes 0-2 are {data[:3]!r}): {_show(data)}")
    if data[-4:] != SUFFIX:
        raise EcuFrameError(f"answer does not end with END\\n (last 4 bytes {data[-4:]!r}); "
                            f"truncated or foreign, {len(data)} bytes: {_show(data)}")
    length_field = data[5:9]
    if not length_field.isdigit():
        raise EcuFrameError(f"length field (bytes 5-8) is not 4 ASCII digits: {length_field!r}")
    if int(length_field) != len(data) - 1:
        raise EcuFrameError(f"length field says {int(length_field) + 1} bytes (field {length_field.decode()}), "
                            f"answer has {len(data)}")
    command = data[9:13]
    if not command.isdigit():
        raise EcuFrameError(f"command echo (bytes 9-12) is not 4 ASCII digits: {command!r}")
    frame = Frame(data[3:5].decode("ascii", "replace"), command.decode(), bytes(data))
    if expected_command is not None and frame.command != expected_command:
        raise EcuFrameError(f"answer echoes command {frame.command} ({frame.name}), "
                            f"expected {expected_command} ({COMMAND_NAMES.get(expected_command, '?')})")
    return frame


def u16(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset:offset + 2], "big")


def u32(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset:offset + 4], "big")


def ascii_field(data: bytes, start: int, length: int, what: str) -> str:
    raw = data[start:start + length]
    if len(raw) != length:
        raise EcuFrameError(f"{what} at bytes {start}-{start + length - 1} runs past the answer ({len(data)} bytes)")
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise EcuFrameError(f"{what} at bytes {start}-{start + length - 1} is not ASCII: {raw!r}") from exc


def parse_hex_or_raw(content: bytes) -> bytes:
    """A capture as raw bytes, or as hex text (spaces, newlines and `#` comment lines allowed)."""
    if content.startswith(PREFIX):
        return content
    try:
        text = content.decode("ascii")
    except UnicodeDecodeError as exc:
        raise EcuFrameError("file is neither a raw answer (starting with APS) nor hex text") from exc
    lines = [line.split("#", 1)[0] for line in text.splitlines()]
    digits = "".join("".join(lines).split())
    if digits.lower().startswith("0x"):
        digits = digits[2:]
    try:
        return bytes.fromhex(digits)
    except ValueError as exc:
        raise EcuFrameError(f"hex text does not parse: {exc}") from exc


def _show(data: bytes, limit: int = 48) -> str:
    shown = data[:limit].hex()
    return shown + ("..." if len(data) > limit else "")
