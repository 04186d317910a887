"""Is the sky broken? The recent surplus distribution decides how a loadpoint rides clouds.

On a cumulus day the surplus jumps between "sun" (enough for 3p) and "shadow" (below even the 1p
minimum) every few minutes. Riding such a shadow at the 3p minimum (4.1 kW at 6 A) takes ~3 kW
from the home battery or the grid for minutes; at the 1p minimum (1.4 kW) it takes a tenth of
that. Switching phases at every shadow would wear the contactors and pause charging each time,
so the choice is made for the weather, not for the cloud: while the last `window_s` of surplus
crossed the 3p minimum several times and spent a good part of the time below it, the loadpoint
charges on 1p (when the part of the sun it cannot take on 1p has somewhere to go: the home
battery has room). A steady sky, sunny or grey, lets the normal phase logic decide.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from itertools import pairwise


@dataclass
class SkyWatch:
    window_s: float = 1800.0
    sample_s: float = 10.0  # one sample per 10 s: a 30 min window is 180 samples
    min_crossings: int = 4  # shadows (down-crossings) within the window
    below_share: tuple[float, float] = (0.15, 0.85)  # share of the time below the threshold
    samples: deque[tuple[float, float]] = field(default_factory=deque)
    _last_at: float = float("-inf")

    def note(self, now: float, available_w: float) -> None:
        if now - self._last_at < self.sample_s:
            return
        self._last_at = now
        self.samples.append((now, available_w))
        while self.samples and now - self.samples[0][0] > self.window_s:
            self.samples.popleft()

    def broken(self, threshold_w: float) -> bool:
        """Several shadows below threshold_w, with sun between them, within the window."""
        if len(self.samples) < 2 or self.samples[-1][0] - self.samples[0][0] < self.window_s / 2:
            return False  # not enough history to tell
        below = [w < threshold_w for _, w in self.samples]
        share = sum(below) / len(below)
        crossings = sum(1 for a, b in pairwise(below) if b and not a)
        low, high = self.below_share
        return crossings >= self.min_crossings and low <= share <= high
