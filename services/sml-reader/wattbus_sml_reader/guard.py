"""Energy totals only ever grow, and never faster than the meter's rated power allows.

Home Assistant's long-term statistics take a total that dips or spikes as a meter reset or a
huge consumption, so a suspicious total is withheld (the rest of the reading still goes out). A
real meter exchange or a first value that was itself garbage would then block the total for
ever; so after `confirm` consecutive rejected values that agree with each other the new level is
accepted, with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ENERGY_FIELDS = ("energy_import_wh", "energy_export_wh", "energy_import_t1_wh", "energy_import_t2_wh",
                 "energy_export_t1_wh", "energy_export_t2_wh")


@dataclass(slots=True)
class _Track:
    value: float
    at: float  # monotonic seconds
    candidates: list[tuple[float, float]] = field(default_factory=list)


class EnergyGuard:
    def __init__(self, max_power_w: float, slack_wh: float, confirm: int = 3) -> None:
        self.max_power_w = max_power_w
        self.slack_wh = slack_wh
        self.confirm = confirm
        self._tracks: dict[str, _Track] = {}

    def _plausible(self, before: float, at_before: float, value: float, at: float) -> str | None:
        if value < before:
            return f"went backwards from {before:.1f} to {value:.1f} Wh"
        limit = self.max_power_w * max(at - at_before, 0.0) / 3600.0 + self.slack_wh
        if value - before > limit:
            return f"jumped {value - before:.1f} Wh in {at - at_before:.1f} s (at most {limit:.1f} Wh possible)"
        return None

    def check(self, name: str, value: float, at: float) -> tuple[bool, str | None]:
        """(publish it?, why not / what happened) for the total `name` read at monotonic time `at`."""
        if value < 0:
            return False, f"negative total {value:.1f} Wh"
        track = self._tracks.get(name)
        if track is None:
            self._tracks[name] = _Track(value, at)
            return True, None
        reason = self._plausible(track.value, track.at, value, at)
        if reason is None:
            track.value, track.at = value, at
            track.candidates.clear()
            return True, None
        if track.candidates:
            last_value, last_at = track.candidates[-1]
            if self._plausible(last_value, last_at, value, at) is not None:
                track.candidates.clear()
        track.candidates.append((value, at))
        if len(track.candidates) >= self.confirm:
            old = track.value
            track.value, track.at = value, at
            track.candidates.clear()
            return True, (f"accepted a new level {value:.1f} Wh (was {old:.1f} Wh) "
                          f"after {self.confirm} consistent values")
        return False, reason
