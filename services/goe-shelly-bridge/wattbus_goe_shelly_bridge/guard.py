"""The bridge's own safety limits, checked before anything is written to a device.

Whatever the controller asks, a charger never gets more than its configured (and device) maximum
or less than the configured minimum, and a contactor, relay or phase switch waits its interval.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Limits:
    max_current_a: float
    min_current_a: float
    min_switch_interval_s: float
    min_phase_switch_interval_s: float


@dataclass
class Guard:
    limits: Limits
    clock: Callable[[], float] = time.monotonic
    _last: dict[str, float] = field(default_factory=dict)

    def current_range_a(self, device_max_a: float | None) -> tuple[int, int]:
        """The whole amps current_a accepts: published with each reading, so that Home Assistant
        and others offer only these."""
        ceiling = self.limits.max_current_a if device_max_a is None else min(self.limits.max_current_a, device_max_a)
        return math.ceil(self.limits.min_current_a), math.floor(ceiling)

    def current_a(self, requested: float, device_max_a: float | None) -> tuple[int | None, str]:
        """The whole amps to write, or None and why not. Rounds down so a limit is never exceeded."""
        ceiling = self.limits.max_current_a if device_max_a is None else min(self.limits.max_current_a, device_max_a)
        if requested > ceiling:
            which = "device" if device_max_a is not None and device_max_a < self.limits.max_current_a else "configured"
            return None, f"{requested:g} A is above the {which} maximum of {ceiling:g} A"
        if requested < self.limits.min_current_a:
            return None, f"{requested:g} A is below the configured minimum of {self.limits.min_current_a:g} A"
        amps = math.floor(requested)
        if amps < self.limits.min_current_a:
            return None, (f"{requested:g} A rounds down to {amps} A, below the configured minimum of "
                          f"{self.limits.min_current_a:g} A")
        return amps, ""

    def _interval(self, what: str) -> float:
        return self.limits.min_phase_switch_interval_s if what == "phases" else self.limits.min_switch_interval_s

    def switch_allowed(self, what: str) -> str:
        """'' if `what` (charging, phases, relay:N) may switch now, else why not."""
        last = self._last.get(what)
        interval = self._interval(what)
        if last is None:
            return ""
        ago = self.clock() - last
        if ago >= interval:
            return ""
        return (f"last {what} switch was {ago:.0f} s ago; the minimum interval is {interval:g} s "
                f"(retry in {math.ceil(interval - ago)} s)")

    def note_switch(self, what: str) -> None:
        self._last[what] = self.clock()
