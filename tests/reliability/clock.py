"""A wall clock that the test steps while a service runs: libfaketime (Debian package `faketime`)
preloaded into the service process, its offset read from a file on every call, so writing "+1h"
to the file is the service's NTP step or RTC-less boot. CLOCK_MONOTONIC is left alone, as a real
wall-clock step leaves it alone.

libfaketime 0.9.10 with the monotonic clock unfaked fails clock_nanosleep (time.sleep raises
EINVAL); no service calls time.sleep (asyncio waits in epoll, and the Bus drives paho from the
service's loop, shared/wattbus/mqtt_loop.py), so the services run unchanged under it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


class SteppedClock:
    def __init__(self, directory: Path) -> None:
        if not LIB.exists():
            pytest.fail(f"{LIB} not found: `make test` installs the Debian package faketime")
        self.file = directory / "faketime-offset"
        self.offset = timedelta(0)
        self.step(timedelta(0))

    def env(self) -> dict[str, str]:
        return {"LD_PRELOAD": str(LIB), "FAKETIME_TIMESTAMP_FILE": str(self.file), "FAKETIME_NO_CACHE": "1",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1"}

    def step(self, offset: timedelta) -> None:
        """Set the service's wall clock to real time + offset (takes effect at its next clock read)."""
        self.offset = offset
        seconds = int(offset.total_seconds())
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(f"{seconds:+d}\n")
        tmp.replace(self.file)  # atomically: the service never reads a half-written offset

    def service_now(self) -> datetime:
        return datetime.now(UTC) + self.offset
