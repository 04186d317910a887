"""Structured logging that stays readable at a console.

    2026-11-25T12:00:00.123Z WARNING sml-reader  frame rejected  reason="crc mismatch" port=/dev/ttyUSB0

Set WATTBUS_LOG_FORMAT=json for one JSON object per line (for log shippers).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="\n'):
        return json.dumps(text, ensure_ascii=False)
    return text


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        fields: dict[str, Any] = getattr(record, "fields", {})
        line = f"{ts} {record.levelname:<7} {record.name:<18} {record.getMessage()}"
        if fields:
            line += "  " + " ".join(f"{k}={_quote(v)}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(getattr(record, "fields", {}))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


class Logger:
    """A thin wrapper: log.info("frame rejected", reason="crc", port=port)."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(name)

    def _log(self, level: int, msg: str, exc_info: bool, fields: dict[str, Any]) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, msg, extra={"fields": fields}, exc_info=exc_info, stacklevel=3)

    def debug(self, msg: str, **fields: Any) -> None:
        self._log(logging.DEBUG, msg, False, fields)

    def info(self, msg: str, **fields: Any) -> None:
        self._log(logging.INFO, msg, False, fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self._log(logging.WARNING, msg, False, fields)

    def error(self, msg: str, exc_info: bool = False, **fields: Any) -> None:
        self._log(logging.ERROR, msg, exc_info, fields)

    def exception(self, msg: str, **fields: Any) -> None:
        self._log(logging.ERROR, msg, True, fields)

    def child(self, suffix: str) -> Logger:
        return Logger(f"{self._logger.name}.{suffix}")


def get_logger(name: str) -> Logger:
    return Logger(name)


def setup_logging(level: str | None = None, fmt: str | None = None) -> None:
    level = (level or os.environ.get("WATTBUS_LOG_LEVEL") or "INFO").upper()
    fmt = fmt or os.environ.get("WATTBUS_LOG_FORMAT") or "console"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # paho and pymodbus are chatty at INFO; their problems surface through our own logs.
    for noisy in ("pymodbus", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.getLogger().level, logging.WARNING))
