"""DSMR P1 (NL/BE/LU, 115200 8N1): telegram framing here, CRC and parsing by dsmr-parser."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from dsmr_parser import telegram_specifications
from dsmr_parser.exceptions import InvalidChecksumError, ParseError
from dsmr_parser.objects import DSMRObject, MbusDevice, Telegram
from dsmr_parser.parsers import TelegramParser

from .values import DecodedFrame, FrameError, ObisValue

MAX_TELEGRAM = 8 * 1024

# dsmr_parser logs a full traceback for every damaged line; we reject the telegram with a
# FrameError that is counted and logged once, so its own logging would only flood the SD card.
logging.getLogger("dsmr_parser").setLevel(logging.CRITICAL)
# A telegram ends with `!`, the CRC (4 hex digits, DSMR 4/5) or nothing (DSMR 2.2/3), CR LF.
_END = re.compile(rb"!([0-9A-Fa-f]{4})?\r\n")
_CDE = re.compile(r":(\d+)\\\.(\d+)\\\.(\[?\d)")


def _codes(spec: dict[str, Any]) -> dict[str, str]:
    """value name -> `C.D.E`, read from dsmr-parser's own OBIS patterns (`^\\d-\\d:1\\.8\\.1.+?`)."""
    out: dict[str, str] = {}
    for obj in spec["objects"]:
        found = _CDE.search(obj["obis_reference"])
        if found:
            out[obj["value_name"]] = f"{found.group(1)}.{found.group(2)}.{found.group(3).lstrip('[')}"
    return out


class DsmrFramer:
    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[bytes | FrameError]:
        self._buf += chunk
        out: list[bytes | FrameError] = []
        while True:
            start = self._buf.find(b"/")
            if start == -1:
                if self._buf:
                    out.append(FrameError(f"skipped {len(self._buf)} bytes outside any telegram", "garbage"))
                self._buf.clear()
                return out
            if start > 0:
                out.append(FrameError(f"skipped {start} bytes before a telegram header", "garbage"))
                del self._buf[:start]
            end = _END.search(self._buf)
            restart = self._buf.find(b"/", 1)
            if restart != -1 and (end is None or restart < end.start()):
                out.append(FrameError(f"telegram cut off after {restart} bytes by a new header", "truncated"))
                del self._buf[:restart]
                continue
            if end is None:
                if len(self._buf) > MAX_TELEGRAM:
                    out.append(FrameError(f"no telegram end within {MAX_TELEGRAM} bytes", "truncated"))
                    self._buf.clear()
                return out
            out.append(bytes(self._buf[: end.end()]))
            del self._buf[: end.end()]


class DsmrDecoder:
    def __init__(self) -> None:
        self._with_crc = TelegramParser(telegram_specifications.V5)
        self._without_crc = TelegramParser(telegram_specifications.V2_2, apply_checksum_validation=False)
        self._codes = {**_codes(telegram_specifications.V2_2), **_codes(telegram_specifications.V5)}

    def decode(self, raw: bytes) -> DecodedFrame:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise FrameError(f"non-ASCII byte 0x{raw[exc.start]:02x} at {exc.start} in telegram", "garbage") from exc
        has_crc = _END.search(raw) is not None and _END.search(raw).group(1) is not None  # type: ignore[union-attr]
        parser = self._with_crc if has_crc else self._without_crc
        try:
            telegram = parser.parse(text, throw_ex=True)
        except InvalidChecksumError as exc:
            raise FrameError(f"telegram CRC mismatch: {exc}", "crc") from exc
        except (ParseError, ValueError, IndexError, ArithmeticError) as exc:
            raise FrameError(f"telegram not parseable: {exc}", "invalid") from exc
        frame = DecodedFrame(format="dsmr", size=len(raw))
        self._collect(telegram, frame)
        if not frame.values:
            raise FrameError("telegram holds no known OBIS lines", "invalid")
        header = text.split("\r\n", 1)[0].lstrip("/")
        frame.manufacturer = header[:3] or None
        model = header[4:]
        frame.model = (model[2:] if model.startswith("\\") else model).strip() or None  # `\2` = mode marker
        ident = frame.values.get("0-0:96.1.1") or frame.values.get("0-0:96.1.4")
        if ident is not None and isinstance(ident.value, str) and ident.value.strip("0"):
            frame.serial = _hex_text(ident.value)
        stamp = frame.values.get("0-0:1.0.0")
        if stamp is not None and stamp.timestamp is not None:
            frame.timestamp = stamp.timestamp
        return frame

    def _collect(self, items: Telegram | MbusDevice, frame: DecodedFrame) -> None:
        for name, obj in items:
            if isinstance(obj, list):  # MBUS_DEVICES
                for device in obj:
                    if isinstance(device, MbusDevice):
                        self._collect(device, frame)
                continue
            cde = self._codes.get(name)
            if cde is None or not isinstance(obj, DSMRObject):
                continue
            a, b = obj.obis_id_code
            value = _plain(getattr(obj, "value", None))
            unit = getattr(obj, "unit", None)
            when = getattr(obj, "datetime", None)
            if isinstance(value, datetime):
                frame.add(ObisValue(f"{a}-{b}:{cde}", value.isoformat(), None, timestamp=value))
            elif value is not None:
                frame.add(ObisValue(f"{a}-{b}:{cde}", value, unit or None,
                                    timestamp=when if isinstance(when, datetime) else None))


def _plain(value: object) -> float | str | datetime | None:
    if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str | datetime):
        return value
    return None


def _hex_text(value: str) -> str:
    """DSMR sends the equipment id as hex-encoded ASCII (`4530303...` -> `E00...`)."""
    try:
        text = bytes.fromhex(value).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return value
    return text if text.isprintable() and text else value
