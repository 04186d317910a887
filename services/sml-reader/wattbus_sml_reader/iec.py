"""IEC 62056-21 (ex IEC 1107) ASCII readouts: mode D pushes and mode C answers to a sign-on.

The line format is simple enough that the Python packages for it (iec62056-21, last release 2019)
would add more than they save; DSMR, which is a profile of it with CRCs, goes through dsmr-parser.
A readout is `/MMMZident CR LF` (MMM the maker, Z the baud character), optionally STX, data
lines `A-B:C.D.E*F(value*unit)`, `!` CR LF, and in mode C ETX and a block check character (XOR
over everything after STX up to ETX).
"""

from __future__ import annotations

import re

from .values import DecodedFrame, FrameError, ObisValue

STX, ETX = 0x02, 0x03
MAX_READOUT = 16 * 1024
BAUD_IDS = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}
SIGN_ON = b"/?!\r\n"
# Identification: `/`, manufacturer (3 letters; a lower-case third one means 20 ms response time),
# the baud rate character, up to 16 identification characters (some meters add `\2`-style escapes,
# so a little more is allowed), CR LF. Anything else is line noise, not a meter answering.
_IDENT = re.compile(rb"^/[A-Za-z]{3}[0-9A-Z][\x20-\x7e]{1,32}\r\n$")
_LINE = re.compile(r"^(?:(\d{1,3})-(\d{1,3}):)?(\d{1,3})\.(\d{1,3})(?:\.(\d{1,3}))?(?:\*\d{1,3}|&\d{1,3})?"
                   r"\(([^()]*)\)")
_NUMBER = re.compile(r"^[-+]?\d+(?:\.\d+)?$")


def bcc(data: bytes) -> int:
    value = 0
    for byte in data:
        value ^= byte
    return value & 0x7F  # 7-bit characters: the parity bit is the line's, not the checksum's


def baud_from_ident(ident: bytes) -> int | None:
    """The baud rate a meter offers in its identification line (`/ESY5...` -> 9600)."""
    return BAUD_IDS.get(chr(ident[4])) if len(ident) > 4 and ident.startswith(b"/") else None


def sign_on(address: str = "") -> bytes:
    """The request message: `/?!` CR LF, or `/?<address>!` CR LF for one meter on a shared bus."""
    return b"/?" + address.encode("ascii") + b"!\r\n"


def check_ident(raw: bytes) -> bytes:
    """The meter's identification line with the parity bit off, or a FrameError saying why not."""
    line = bytes(b & 0x7F for b in raw)  # 7E1 lines read as 8N1 keep the parity bit
    if not line.endswith(b"\r\n"):
        raise FrameError(f"identification {line[:40]!r} incomplete: no CR LF within the response time", "ident")
    if _IDENT.match(line) is None or b"/" in line[1:] or b"!" in line:
        raise FrameError(f"identification {line[:40]!r} is not /MMMZident CR LF", "ident")
    return line


def option_select(ident: bytes, current_baud: int, switch: bool) -> tuple[bytes, int]:
    """ACK V Z Y CR LF for a data readout (V=0 normal protocol, Y=0 readout) and the rate to read it at.

    Z is the rate the meter offered when we switch, else the rate we are on: a meter told `0` while
    we listen at 9600 would answer at 300 baud.
    """
    offered = baud_from_ident(ident)
    if switch and offered is not None:
        return b"\x060" + ident[4:5] + b"0\r\n", offered
    current = next((char for char, rate in BAUD_IDS.items() if rate == current_baud), "0")
    return b"\x060" + current.encode() + b"0\r\n", current_baud


class IecFramer:
    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[bytes | FrameError]:
        self._buf += bytes(b & 0x7F for b in chunk)  # 7E1 lines read as 8N1 keep the parity bit
        out: list[bytes | FrameError] = []
        while True:
            start = self._buf.find(b"/")
            if start == -1:
                if self._buf.strip(b"\r\n\x00 "):
                    out.append(FrameError(f"skipped {len(self._buf)} bytes outside any readout", "garbage"))
                self._buf.clear()
                return out
            if start > 0:
                if self._buf[:start].strip(b"\r\n\x00 \x06"):
                    out.append(FrameError(f"skipped {start} bytes before a readout header", "garbage"))
                del self._buf[:start]
            end = self._buf.find(b"!\r\n")
            restart = self._buf.find(b"/", 1)
            # `/` only starts a readout at the beginning of a line; values never contain one.
            if restart != -1 and (end == -1 or restart < end) and self._buf[restart - 1] == 0x0A:
                out.append(FrameError(f"readout cut off after {restart} bytes by a new header", "truncated"))
                del self._buf[:restart]
                continue
            if end == -1:
                if len(self._buf) > MAX_READOUT:
                    out.append(FrameError(f"no readout end within {MAX_READOUT} bytes", "truncated"))
                    self._buf.clear()
                return out
            stop = end + 3
            if STX in self._buf[:end]:  # mode C: ETX and the BCC follow
                if len(self._buf) < stop + 2:
                    return out
                stop += 2
            out.append(bytes(self._buf[:stop]))
            del self._buf[:stop]


def decode(raw: bytes) -> DecodedFrame:
    header, _, rest = raw.partition(b"\r\n")
    if not header.startswith(b"/") or len(header) < 5:
        raise FrameError(f"readout header {header[:20]!r} is not /MMMZident", "invalid")
    body = rest
    if STX in rest:
        stx = rest.index(STX)
        if len(rest) < 2 or rest[-2] != ETX:
            raise FrameError("mode C readout without ETX before its block check", "truncated")
        sent, calc = rest[-1], bcc(rest[stx + 1: -1])
        if sent != calc:
            raise FrameError(f"block check mismatch: sent 0x{sent:02x}, computed 0x{calc:02x}", "crc")
        body = rest[stx + 1: -2]
    frame = DecodedFrame(format="iec", size=len(raw))
    text = body.decode("ascii", errors="replace")
    bad = 0
    for line in text.split("\r\n"):
        line = line.strip()
        if not line or line == "!":
            continue
        match = _LINE.match(line)
        if match is None:
            bad += 1
            continue
        a, b, c, d, e, content = match.groups()
        code = f"{a or 1}-{b or 0}:{c}.{d}.{e or 0}"
        value, _, unit = content.partition("*")
        if _NUMBER.match(value):
            frame.add(ObisValue(code, float(value), unit or None))
        elif value:
            frame.add(ObisValue(code, value))
    if not frame.values:
        raise FrameError(f"readout holds no data lines ({bad} unreadable)", "invalid")
    ident = header[1:].decode("ascii", errors="replace")
    frame.manufacturer = ident[:3]
    frame.model = ident[4:].strip() or None
    for code in ("0-0:96.1.255", "1-0:96.1.0", "0-0:96.1.0", "1-0:0.0.0", "1-0:0.0.9"):
        found = frame.values.get(code)
        if found is not None and str(found.value).strip("0"):
            frame.serial = str(found.value) if isinstance(found.value, str) else f"{found.value:.0f}"
            break
    return frame
