"""Log lines that an attacker cannot multiply: one line per kind per interval, with a count.

A flood of refused requests (wrong tokens, slow connections, foreign Host headers) once wrote
257 MB of log in 90 s. Here the first event of a kind is logged at once; the rest of that
interval only counts, and the next line (or `flush`, called every second by the service) says how
many were left out. The same goes for records of aiohttp's and asyncio's own loggers, whose
tracebacks (`socket.accept() out of system resource`) were most of those megabytes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wattbus.log import Logger

# Loggers of the libraries below us that log per connection or per request.
LIBRARY_LOGGERS = ("asyncio", "aiohttp.server", "aiohttp.web", "aiohttp.access", "aiohttp.internal")
MAX_KINDS = 1000  # distinct kinds remembered; a flood of new kinds shares one "other" kind


@dataclass
class _Window:
    started: float
    suppressed: int = 0
    last_fields: dict[str, Any] = field(default_factory=dict)


class RateLimitedLog:
    """`warning(kind, message, **fields)`: at most one line per kind and interval."""

    def __init__(self, log: Logger, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.interval_s = interval_s
        self.clock = clock
        self.windows: dict[str, _Window] = {}

    def _kind(self, kind: str) -> str:
        return kind if kind in self.windows or len(self.windows) < MAX_KINDS else "other"

    def warning(self, kind: str, message: str, **fields: Any) -> bool:
        """Log now (True) or count it for the next line (False)."""
        kind = self._kind(kind)
        now = self.clock()
        window = self.windows.get(kind)
        if window is not None and now - window.started < self.interval_s:
            window.suppressed += 1
            window.last_fields = fields
            return False
        left_out = window.suppressed if window is not None else 0
        self.windows[kind] = _Window(now)
        extra = {"more_since_last_line": left_out} if left_out else {}
        self.log.warning(message, kind=kind, **fields, **extra)
        return True

    def flush(self) -> None:
        """Say how many were left out once their interval is over (a flood that stopped still shows)."""
        now = self.clock()
        for kind, window in list(self.windows.items()):
            if now - window.started < self.interval_s:
                continue
            if window.suppressed:
                self.log.warning("more of the same left out of the log", kind=kind, count=window.suppressed,
                                 interval_s=self.interval_s, last=window.last_fields)
            del self.windows[kind]


class LibraryLogFilter(logging.Filter):
    """The same rule for stdlib records: one per (logger, message template) and interval."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.clock = clock
        self.windows: dict[tuple[str, str], _Window] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg)[:200])
        now = self.clock()
        window = self.windows.get(key)
        if window is not None and now - window.started < self.interval_s:
            window.suppressed += 1
            return False
        if len(self.windows) >= MAX_KINDS:
            self.windows.clear()
        self.windows[key] = _Window(now)
        if window is not None and window.suppressed:
            record.msg = f"{record.msg} ({window.suppressed} more like this left out of the log)"
        return True


def limit_library_logs(interval_s: float) -> LibraryLogFilter:
    """Install the filter on the library loggers (idempotent: a reload does not stack filters)."""
    shared = LibraryLogFilter(interval_s)
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, LibraryLogFilter)]:
            logger.removeFilter(old)
        logger.addFilter(shared)
    return shared
