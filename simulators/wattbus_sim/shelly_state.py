"""What a simulated Shelly is: its model, relays, loads, meters, settings and protection limits.

A metered relay protects itself as the real firmware does: switched onto a load above its power
(Gen1 `max_power`, Gen2 `power_limit`) or current limit (Gen2 `current_limit`), it opens again at
once and reports `overpower`; a command cannot keep it on.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

VOLTAGE_V = 231.4
# model -> (generation, relays, metered relays, energy-meter phases, mDNS/id prefix)
MODELS: dict[str, tuple[int, int, bool, int, str]] = {
    "SHSW-1": (1, 1, False, 0, "shelly1"),
    "SHSW-PM": (1, 1, True, 0, "shelly1pm"),
    "SHPLG-S": (1, 1, True, 0, "shellyplug-s"),
    "SHSW-25": (1, 2, True, 0, "shellyswitch25"),
    "SHEM-3": (1, 1, False, 3, "shellyem3"),
    "Plus1PM": (2, 1, True, 0, "shellyplus1pm"),
    "Plus2PM": (2, 2, True, 0, "shellyplus2pm"),
    "Pro4PM": (2, 4, True, 0, "shellypro4pm"),
    "Pro3EM": (2, 0, False, 3, "shellypro3em"),
    "1PMG3": (3, 1, True, 0, "shelly1pmg3"),
}
GEN2_MODEL_IDS = {"Plus1PM": "SNSW-001P16EU", "Plus2PM": "SNSW-102P16EU", "Pro4PM": "SPSW-104PE16EU",
                  "Pro3EM": "SPEM-003CEBEU", "1PMG3": "S3SW-001P16EU"}
# Factory protection of a metered output: (power limit W, current limit A or None on Gen1).
LIMITS: dict[str, tuple[float, float | None]] = {
    "SHSW-PM": (3500.0, None), "SHPLG-S": (2500.0, None), "SHSW-25": (2300.0, None),
    "Plus1PM": (4480.0, 16.0), "Plus2PM": (2800.0, 10.0), "Pro4PM": (4480.0, 16.0), "1PMG3": (4480.0, 16.0),
}


@dataclass
class ShellyState:
    """Relays switching resistive loads, plus a 3-phase grid meter whose power the house may set."""

    model: str
    mac: str = "A8032AB12345"
    load_w: float = 1500.0
    grid_w: tuple[float, float, float] = (400.0, -150.0, 250.0)
    relays: list[bool] = field(default_factory=list)
    energy_wh: list[float] = field(default_factory=list)
    grid_import_wh: float = 5_432_100.0
    grid_export_wh: float = 1_234_500.0
    switches: int = 0
    name: str | None = None
    relay_names: list[str | None] = field(default_factory=list)
    power_limit_w: list[float | None] = field(default_factory=list)
    current_limit_a: list[float | None] = field(default_factory=list)
    overpower: list[bool] = field(default_factory=list)
    cfg_rev: int = 10  # Gen2: bumped by every configuration change
    _last: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        n = MODELS[self.model][1]
        power, current = LIMITS.get(self.model, (None, None))
        self.relays = [False] * n
        self.energy_wh = [12_345.0] * n
        self.relay_names = [None] * n
        self.power_limit_w = [power] * n
        self.current_limit_a = [current] * n
        self.overpower = [False] * n

    @property
    def gen(self) -> int:
        return MODELS[self.model][0]

    @property
    def metered(self) -> bool:
        return MODELS[self.model][2]

    @property
    def device_id(self) -> str:
        return f"{MODELS[self.model][4]}-{self.mac.lower()}"

    def power_w(self, channel: int) -> float:
        if not (self.metered and self.relays[channel]):
            return 0.0
        return round(self.load_w * (1 + 0.01 * math.sin(time.monotonic())), 2)

    def step(self) -> None:
        now = time.monotonic()
        dt_h = (now - self._last) / 3600.0
        self._last = now
        for ch in range(len(self.relays)):
            self.energy_wh[ch] += self.power_w(ch) * dt_h
        total = sum(self.grid_w) if MODELS[self.model][3] else 0.0
        if total >= 0:
            self.grid_import_wh += total * dt_h
        else:
            self.grid_export_wh -= total * dt_h

    def over_limit(self, channel: int) -> bool:
        """Would the load behind this output trip its protection?"""
        if not self.metered:
            return False
        power, current = self.power_limit_w[channel], self.current_limit_a[channel]
        return (power is not None and self.load_w > power) or \
            (current is not None and self.load_w / VOLTAGE_V > current)

    def switch(self, channel: int, on: bool) -> bool:
        self.step()
        was = self.relays[channel]
        tripped = on and self.over_limit(channel)
        self.overpower[channel] = tripped
        on = on and not tripped  # the protection opens the relay again before the next reading
        if was != on or tripped:
            self.switches += 1
        self.relays[channel] = on
        return was
