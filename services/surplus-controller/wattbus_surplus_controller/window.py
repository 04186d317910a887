"""The grid-import allowance as a hard limit: import energy over a rolling window.

The strategy's ride-through budget (`Loadpoint._deficit_wh`) is an estimate from the surplus and
refills while the sun shines; it cannot promise anything about a fixed stretch of time. This
window books what the grid meter actually showed while the loadpoint charged in pv mode, second by
second, and answers "how much of the allowance is left in the window ending now". The strategy
cuts to a level that imports nothing (or stops) before the next reading plus the charger's
reaction time could use up the rest.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class ImportWindow:
    window_s: float
    # (end time, Wh) slices; one per reading, so a 600 s window at 1-2 s readings holds a few hundred
    slices: deque[tuple[float, float]] = field(default_factory=deque)
    total_wh: float = 0.0

    def book(self, now: float, import_w: float, dt_s: float) -> None:
        """Import of import_w (W, >= 0) for the dt_s seconds up to now."""
        wh = max(0.0, import_w) * max(0.0, dt_s) / 3600.0
        if wh > 0.0:
            self.slices.append((now, wh))
            self.total_wh += wh
        self._expire(now)

    def used_wh(self, now: float) -> float:
        self._expire(now)
        return max(0.0, self.total_wh)

    def _expire(self, now: float) -> None:
        while self.slices and now - self.slices[0][0] >= self.window_s:
            self.total_wh -= self.slices.popleft()[1]
        if not self.slices:
            self.total_wh = 0.0  # no float drift once the window is empty
