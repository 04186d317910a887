"""SML (Smart Message Language, transport v1) from optical IR heads: framing, CRC, decoding.

The stream is reassembled here rather than with smllib's SmlStreamReader because a meter on an
IR head delivers worse than its tests assume: a frame cut off by a pulled cable is followed by a
new start sequence, and garbage can contain half escape sequences. We resynchronise on every start
sequence and drop (and report) the partial frame before it. smllib does the CRC arithmetic and the
parsing of the SML messages inside a good frame.
"""

from __future__ import annotations

from smllib.const import UNITS
from smllib.crc import kermit, x25
from smllib.errors import SmlLibException
from smllib.sml.list_entry import SmlListEntry
from smllib.sml.response_get_list import SmlGetListResponse
from smllib.sml_frame import SmlFrame

from .values import DecodedFrame, FrameError, ObisValue, obis_code

ESCAPE = b"\x1b\x1b\x1b\x1b"
START = ESCAPE + b"\x01\x01\x01\x01"
MAX_FRAME = 16 * 1024  # real meters send 200-900 bytes; anything this long lost its end sequence

CRC_FUNCS = {"x25": x25.get_crc, "kermit": kermit.get_crc}
# Errors smllib raises for a frame whose CRC is right but whose content is not valid SML.
SML_ERRORS = (SmlLibException, ValueError, IndexError, TypeError, KeyError, AttributeError)


class SmlFramer:
    """Turns arbitrary read chunks into whole CRC-checked frames; reports what it dropped."""

    def __init__(self, crc: str = "x25") -> None:
        self._crc = CRC_FUNCS[crc]
        self._buf = bytearray()
        self._scan = 8  # where the search for the end sequence continues inside the current frame

    def feed(self, chunk: bytes) -> list[bytes | FrameError]:
        self._buf += chunk
        out: list[bytes | FrameError] = []
        while True:
            item = self._next()
            if item is None:
                return out
            out.append(item)

    def _resync(self, skip_to: int) -> FrameError | None:
        """Drop everything before the next start sequence at or after skip_to."""
        start = self._buf.find(START, skip_to)
        if start == -1:
            # Keep a tail that may be the beginning of a start sequence split across reads.
            keep = len(START) - 1
            dropped = len(self._buf) - keep
            del self._buf[: max(dropped, 0)]
        else:
            dropped = start
            del self._buf[:start]
        self._scan = 8
        return None if dropped <= 0 else FrameError(f"skipped {dropped} bytes outside any SML frame", "garbage")

    def _next(self) -> bytes | FrameError | None:
        if not self._buf.startswith(START):
            if len(self._buf) < len(START) and START.startswith(bytes(self._buf)):
                return None
            error = self._resync(0)
            if error is not None:
                return error
            if not self._buf.startswith(START):
                return None
        pos = self._scan
        while True:
            esc = self._buf.find(ESCAPE, pos)
            if esc == -1 or esc + 8 > len(self._buf):
                self._scan = max(8, esc if esc != -1 else len(self._buf) - 3)
                if len(self._buf) > MAX_FRAME:
                    return self._drop(len(self._buf), f"no end sequence within {MAX_FRAME} bytes", "truncated")
                return None
            tail = self._buf[esc + 4: esc + 8]
            if tail == ESCAPE:  # an escaped 1b1b1b1b inside the payload
                pos = esc + 8
            elif tail[0] == 0x1A:
                return self._complete(esc + 8)
            elif tail == b"\x01\x01\x01\x01":  # a new frame starts: the one before lost its end
                return self._drop(esc, f"frame cut off after {esc} bytes by a new start sequence", "truncated")
            elif tail[0] == 0x1B:  # a payload 0x1b just before an escape sequence: shift by one
                pos = esc + 1
            else:
                return self._drop(esc + 8, f"invalid escape sequence {bytes(tail).hex()} at byte {esc}", "garbage")

    def _drop(self, upto: int, reason: str, kind: str) -> FrameError:
        del self._buf[:upto]
        self._scan = 8
        self._resync(0)
        return FrameError(reason, kind)

    def _complete(self, end: int) -> bytes | FrameError:
        frame = bytes(self._buf[:end])
        del self._buf[:end]
        self._scan = 8
        sent = frame[-2] << 8 | frame[-1]
        calc = self._crc(frame[:-2])
        if sent != calc:
            return FrameError(f"CRC mismatch in {len(frame)}-byte frame: sent {sent:04x}, computed {calc:04x}", "crc")
        padding = frame[-3]
        if padding > 3 + 1 or len(frame) < 16 + padding:  # at most 3 fill bytes (DZG sends 4)
            return FrameError(f"impossible fill byte count {padding} in {len(frame)}-byte frame", "invalid")
        return frame


def unescape(frame: bytes) -> bytes:
    """The SML messages inside a transport v1 frame."""
    padding = frame[-3]
    return frame[8: len(frame) - 8 - padding].replace(ESCAPE + ESCAPE, ESCAPE)


def decode_frame(frame: bytes) -> DecodedFrame:
    """Decode a CRC-checked frame (as SmlFramer returns it) into OBIS values."""
    body = unescape(frame)
    result = DecodedFrame(format="sml", size=len(frame))
    sml = SmlFrame(body)
    entries: list[SmlListEntry] = []
    server_id: str | None = None
    try:
        for message in sml.parse_frame():
            response = message.message_body
            if isinstance(response, SmlGetListResponse):
                server_id = server_id or response.server_id
                entries.extend(response.val_list)
    except SML_ERRORS as exc:
        # Some meters (Holley DTZ541 among them) send lists smllib cannot walk as a whole; the
        # list entries themselves still parse, so fall back to reading those one by one.
        try:
            entries = list(sml.get_obis())
        except SML_ERRORS as again:
            raise FrameError(f"SML content not decodable: {_describe(exc)}; entry scan: {_describe(again)}",
                             "invalid") from again
        if not entries:
            raise FrameError(f"SML content not decodable: {_describe(exc)}", "invalid") from exc
    if not entries:
        raise FrameError("SML frame carries no value list (GetListResponse)", "invalid")
    for entry in entries:
        value = _entry_value(entry)
        if value is not None:
            result.add(value)
    _identify(result, server_id)
    return result


def _entry_value(entry: SmlListEntry) -> ObisValue | None:
    code_hex = str(entry.obis)
    if len(code_hex) < 12:
        return None
    raw = bytes.fromhex(code_hex[:12])
    code = obis_code(raw[0], raw[1], raw[2], raw[3], raw[4])
    value = entry.get_value()
    if value is None or not isinstance(value, (int, float, str)):
        return None  # "PIN not entered" meters send entries without a value: missing, not zero
    unit = UNITS.get(entry.unit) if entry.unit is not None else None
    if unit == "m³":
        unit = "m3"
    return ObisValue(code=code, value=value, unit=unit, status=entry.status)


def _identify(result: DecodedFrame, server_id: str | None) -> None:
    """Serial and manufacturer from the server id (DIN 43863-5) or the id/manufacturer entries."""
    candidates = [server_id]
    for code in ("1-0:96.1.0", "1-0:0.0.9", "0-0:96.1.0"):
        found = result.values.get(code)
        if found is not None and isinstance(found.value, str):
            candidates.append(found.value)
    for candidate in candidates:
        parsed = parse_server_id(candidate)
        if parsed is not None:
            result.manufacturer, result.serial = parsed
            break
    for code in ("129-129:199.130.3", "1-0:96.50.1"):
        maker = result.values.get(code)
        if maker is not None and isinstance(maker.value, str):
            # smllib hands printable octet strings over as text already, others as hex
            text = maker.value if maker.value.isalpha() else _ascii(maker.value)
            if text:
                result.manufacturer = text
                break


def parse_server_id(hex_id: str | None) -> tuple[str | None, str] | None:
    """`0a01445a47000282c0b0` -> ("DZG", "1DZG0042123440"); all-zero ids (privacy mode) -> None."""
    if not hex_id:
        return None
    try:
        raw = bytes.fromhex(hex_id)
    except ValueError:
        return None
    if not raw.strip(b"\x00"):
        return None
    if len(raw) == 10 and raw[0] in (0x09, 0x0A) and raw[2:5].isalpha():
        # Sparte, FLAG manufacturer id, fabrication block, 4-byte number: the printed "1 DZG 00 ..."
        flag = raw[2:5].decode("ascii")
        return flag, f"{raw[1]}{flag}{raw[5]:02d}{int.from_bytes(raw[6:10], 'big'):08d}"
    if len(raw) >= 6 and raw[0] == 0x06 and raw[1:4].isalpha():
        # Older EMH/ISKRA eHZ layout seen in real dumps: 06, FLAG id, block, number.
        flag = raw[1:4].decode("ascii")
        return flag, f"{flag}{raw[4]:02d}{int.from_bytes(raw[5:], 'big')}"
    text = _ascii(hex_id)
    return (None, text) if text else (None, hex_id)


def _ascii(hex_text: str) -> str | None:
    try:
        text = bytes.fromhex(hex_text).decode("ascii").strip("\x00 ")
    except (ValueError, UnicodeDecodeError):
        return None
    return text if text.isprintable() and text else None


def _describe(exc: Exception) -> str:
    """smllib's own exceptions can fail in __str__ (UnsupportedChoiceValue raises TypeError there)."""
    try:
        return str(exc) or type(exc).__name__
    except TypeError:
        return f"{type(exc).__name__}{exc.args!r}"
