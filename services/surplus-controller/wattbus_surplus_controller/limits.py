"""The charge current range a loadpoint works in: what the person configured, within what its charger's
bridge accepts.

Charger bridges publish the range they accept on every reading (`extra.limit_min_current_a`,
`extra.limit_max_current_a`: go-e/Shelly, generic). A loadpoint configured for 32 A on a charger the
bridge limits to 16 A would ask for 20 A and be refused (then blocked for `resync_s`); asking for what
the charger refuses gains nothing. So the strategy works in the intersection: the configured range is
the person's (a circuit's fuse, a cable) and is never exceeded; the bridge's range only narrows it.
When nothing is in both (configured 6-8 A, charger 10-16 A) the car cannot charge within what the
person allowed: the loadpoint stays off and its alert says why. Each change is logged once.
"""

from __future__ import annotations

from dataclasses import replace

from wattbus import messages as m
from wattbus.log import Logger

from .model import LoadpointChoices

MIN_KEY, MAX_KEY = "limit_min_current_a", "limit_max_current_a"

Bounds = tuple[float | None, float | None]


def published(extra: dict[str, m.ExtraValue]) -> tuple[Bounds, str | None]:
    """The bridge's (min, max) from a reading's extras, and a problem when one is not usable
    (a non-number, negative, min above max): an unusable limit is ignored, never guessed."""
    bounds: list[float | None] = []
    for key in (MIN_KEY, MAX_KEY):
        value = extra.get(key)
        if value is None:
            bounds.append(None)
        elif isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            return (None, None), f"extra.{key} = {value!r} is not a current in A"
        else:
            bounds.append(float(value))
    low, high = bounds
    if low is not None and high is not None and low > high:
        return (None, None), f"extra.{MIN_KEY} = {low:g} A is above extra.{MAX_KEY} = {high:g} A"
    return (low, high), None


def clamp(low: float, high: float, bridge: Bounds) -> tuple[float, float] | None:
    """config ∩ bridge: the range both allow, None when nothing is in both."""
    bridge_low, bridge_high = bridge
    low = low if bridge_low is None else max(low, bridge_low)
    high = high if bridge_high is None else min(high, bridge_high)
    return (low, high) if low <= high else None


def span(low: float | None, high: float | None) -> str:
    return f"{'?' if low is None else f'{low:g}'}-{'?' if high is None else f'{high:g}'} A"


class ChargerLimits:
    """The last limits each charger's bridge published, and each loadpoint's range within them."""

    def __init__(self, log: Logger) -> None:
        self.log = log
        self.bounds: dict[str, Bounds] = {}  # charger ref -> its bridge's (min, max)
        self._problems: dict[str, str] = {}  # charger ref -> the unusable limit last reported
        self._said: dict[str, str] = {}  # loadpoint -> the note last logged ("" = configured range)
        self.conflicts: dict[str, str] = {}  # loadpoint -> why it cannot charge (no overlap)

    def note(self, ref: str, reading: m.ChargerReading) -> None:
        bounds, problem = published(reading.extra)
        if problem is not None:
            if self._problems.get(ref) != problem:
                self._problems[ref] = problem
                self.log.warning("charger limits not usable: ignored", charger=ref, problem=problem)
            return
        self._problems.pop(ref, None)
        if bounds != (None, None):
            self.bounds[ref] = bounds

    def effective(self, loadpoint: str, ref: str, chosen: LoadpointChoices) -> tuple[LoadpointChoices, str]:
        """The choices the strategy works with, and a note for the loadpoint's reason ("" when the
        configured range stands). With no overlap: mode off, and `conflicts` says why."""
        bridge = self.bounds.get(ref, (None, None))
        both = clamp(chosen.min_current_a, chosen.max_current_a, bridge)
        configured = span(chosen.min_current_a, chosen.max_current_a)
        self.conflicts.pop(loadpoint, None)
        if both is None:
            note = f"charger {ref} accepts {span(*bridge)}, configured {configured}: no current both allow"
            self.conflicts[loadpoint] = note
            result, level = replace(chosen, mode="off"), "error"
        elif both != (chosen.min_current_a, chosen.max_current_a):
            note = f"range {span(*both)} (charger's limits; configured {configured})"
            result, level = replace(chosen, min_current_a=both[0], max_current_a=both[1]), "info"
        else:
            note, result, level = "", chosen, "info"
        if self._said.get(loadpoint, "") != note:
            self._said[loadpoint] = note
            said = note or f"configured {configured} (within the charger's limits)"
            if level == "error":
                self.log.error("loadpoint cannot charge", loadpoint=loadpoint, charger=ref, range=said)
            else:
                self.log.info("loadpoint current range", loadpoint=loadpoint, charger=ref, range=said)
        return result, note
