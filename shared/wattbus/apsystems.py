"""The APsystems ECU's TCP protocol on port 8899: queries, frame checks and the ECU's identity.

The one home of this knowledge: the ecu-bridge polls with it, discovery identifies with it.
Transport stays with the caller (the bridge's client, discovery's probe).

An answer is `APS` + 2-char version + 4 ASCII digits (total length - 1) + 4 ASCII digits echoing
the command + body + `END\\n`. Anything else is rejected with an EcuFrameError naming what is wrong
and where, so a half-read or foreign answer never turns into numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import topics

PORT = 8899
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


# ---------------------------------------------------------------------- identity: the info answer

@dataclass(frozen=True, slots=True)
class EcuInfo:
    ecu_id: str
    layout: str
    energy_total_wh: float
    power_w: float
    energy_today_wh: float
    inverters_total: int | None
    inverters_online: int | None
    firmware: str | None
    timezone: str | None

    @property
    def model(self) -> str:
        return ecu_model(self.ecu_id)[0]


def decode_info(data: bytes) -> EcuInfo:
    """The answer to info_query(), in SI units. Both layouts carry the firmware string (the public
    clients read it unconditionally), so an answer without it is cut short, not an older ECU."""
    d = validate(data, CMD_INFO).data
    ecu_id = ascii_field(d, 13, 12, "ECU id")
    if not ecu_id.isdigit():
        raise EcuFrameError(f"ECU id at bytes 13-24 is not 12 digits: {ecu_id!r}")
    layout = ascii_field(d, 25, 2, "layout code")
    _need(d, 39, "ECU totals (bytes 27-38)")
    total, online, firmware, timezone = None, None, None, None
    if layout == "01":
        _need(d, 55, "inverter counts and firmware length (bytes 46-54)")
        total, online = u16(d, 46), u16(d, 48)
        firmware, end = _counted_string(d, 52, "firmware")
        if end + 3 <= len(d) - 4 and d[end:end + 3].isdigit():
            timezone, _ = _counted_string(d, end, "timezone")
    elif layout == "02":
        _need(d, 52, "inverter counts and firmware length (bytes 39-51)")
        total, online = u16(d, 39), u16(d, 41)
        firmware, _ = _counted_string(d, 49, "firmware")
    else:
        raise EcuFrameError(f"unknown ECU info layout {layout!r} at bytes 25-26 (known: 01, 02)")
    return EcuInfo(ecu_id=ecu_id, layout=layout, energy_total_wh=u32(d, 27) * 100.0, power_w=float(u32(d, 31)),
                   energy_today_wh=u32(d, 35) * 10.0, inverters_total=total, inverters_online=online,
                   firmware=firmware, timezone=timezone)


def _need(d: bytes, length: int, what: str) -> None:
    if len(d) - 4 < length:
        raise EcuFrameError(f"{what}: answer body ends at byte {len(d) - 4}, needs {length}")


def _counted_string(d: bytes, start: int, what: str) -> tuple[str, int]:
    """A 3-digit ASCII length followed by that many characters; returns (text, next offset)."""
    digits = ascii_field(d, start, 3, f"{what} length")
    if not digits.isdigit():
        raise EcuFrameError(f"{what} length at bytes {start}-{start + 2} is not 3 digits: {digits!r}")
    length = int(digits)
    if start + 3 + length > len(d) - 4:
        raise EcuFrameError(f"{what} ({length} chars from byte {start + 3}) runs past the answer body")
    return d[start + 3:start + 3 + length].decode("ascii", "replace"), start + 3 + length


def ecu_model(ecu_id: str) -> tuple[str, bool]:
    """(model, can restart remotely) from the ECU id prefix, as APsystems numbers its units. The
    firmware string does not tell: an ECU-C reports e.g. `C1.2.5`, not `ECU_C_...`."""
    if ecu_id.startswith("215"):
        return "ECU-C", True
    if ecu_id.startswith("2162"):
        return "ECU-R (SunSpec)", True
    if ecu_id.startswith("2160"):
        return "ECU-R", False
    if ecu_id.startswith("2163"):
        return "ECU-B", False
    return "ECU", False


def ecu_device_id(ecu_id: str) -> str:
    return topics.slug("apsystems-ecu", ecu_id)
