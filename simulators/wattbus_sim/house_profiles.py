"""Day profiles for the simulated house: data files under data/house_day_<name>.json.

A profile is data, not code: the PV peak and daylight window of the clear-sky curve, how often
and how deep cloud shadows come (expanded into a fixed, seeded list of transients, so a day
replays identically), the household's base load and appliance events, and the starting state of
the home battery and the EV.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta, Struct

DATA_DIR = Path(__file__).parent / "data"
PREFIX = "house_day_"

ClockText = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Fraction = Annotated[float, Meta(ge=0, le=1)]


class CloudSpec(Struct, frozen=True, forbid_unknown_fields=True):
    seed: int = 0
    per_hour: Annotated[float, Meta(ge=0)] = 0.0  # cloud shadows per hour of daylight
    mean_length_s: Annotated[float, Meta(ge=0)] = 0.0
    transmission: Fraction = 1.0  # share of the light that gets through a shadow
    edge_s: Annotated[float, Meta(ge=1)] = 20.0  # how long the shadow's edge takes to pass


class Appliance(Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    start: ClockText
    minutes: Annotated[float, Meta(gt=0)]
    power_w: Annotated[float, Meta(ge=0)]
    peak_w: Annotated[float, Meta(ge=0)] | None = None  # e.g. a washing machine's heating phase
    peak_minutes: Annotated[float, Meta(ge=0)] = 0.0


class BatterySpec(Struct, frozen=True, forbid_unknown_fields=True):
    capacity_wh: Annotated[float, Meta(gt=0)]
    soc_pct: Annotated[float, Meta(ge=0, le=100)]
    max_charge_w: Annotated[float, Meta(ge=0)]
    max_discharge_w: Annotated[float, Meta(ge=0)]
    min_soc_pct: Annotated[float, Meta(ge=0, le=100)] = 5.0
    efficiency: Annotated[float, Meta(gt=0, le=1)] = 0.95


class EvSpec(Struct, frozen=True, forbid_unknown_fields=True):
    capacity_wh: Annotated[float, Meta(gt=0)]
    soc_pct: Annotated[float, Meta(ge=0, le=100)]
    connected_from: ClockText = "00:00"
    connected_until: ClockText = "23:59"
    max_current_a: Annotated[float, Meta(ge=6, le=32)] = 16.0
    max_phases: Annotated[int, Meta(ge=1, le=3)] = 3


class DayProfile(Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    pv_peak_w: Annotated[float, Meta(ge=0)]
    sunrise_h: Annotated[float, Meta(ge=0, le=24)]
    sunset_h: Annotated[float, Meta(ge=0, le=24)]
    base_load_w: Annotated[float, Meta(ge=0)]
    battery: BatterySpec | None = None
    ev: EvSpec | None = None
    description: str = ""
    shape_exponent: Annotated[float, Meta(gt=0)] = 1.25
    clouds: CloudSpec = CloudSpec()
    haze: Fraction = 1.0
    load_noise_w: Annotated[float, Meta(ge=0)] = 0.0
    appliances: list[Appliance] = []


class ProfileError(ValueError):
    """A day profile file that cannot be used; the message names the file and the field."""


def clock_s(text: str) -> float:
    hours, minutes = text.split(":")
    return int(hours) * 3600.0 + int(minutes) * 60.0


def available() -> list[str]:
    return sorted(p.stem.removeprefix(PREFIX) for p in DATA_DIR.glob(f"{PREFIX}*.json"))


def load_profile(name_or_path: str | Path) -> DayProfile:
    """Load `clear`, `broken`, `overcast` (or any file path) into a checked DayProfile."""
    path = Path(name_or_path)
    if not path.suffix:
        path = DATA_DIR / f"{PREFIX}{name_or_path}.json"
    try:
        profile = msgspec.json.decode(path.read_bytes(), type=DayProfile)
    except OSError as exc:
        raise ProfileError(f"day profile {path}: cannot read it ({exc.strerror}); known: {available()}") from exc
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ProfileError(f"day profile {path}: {exc}") from exc
    if profile.sunset_h <= profile.sunrise_h:
        raise ProfileError(f"day profile {path}: sunset_h {profile.sunset_h} is not after sunrise_h"
                           f" {profile.sunrise_h}")
    return profile


@dataclass(frozen=True, slots=True)
class Shadow:
    start_s: float
    length_s: float


class Sky:
    """PV production over a day: clear-sky curve × haze × cloud transients (deterministic)."""

    def __init__(self, profile: DayProfile) -> None:
        self.profile = profile
        self._rise = profile.sunrise_h * 3600.0
        self._set = profile.sunset_h * 3600.0
        self.shadows = self._draw_shadows(profile.clouds)
        self._starts = [s.start_s for s in self.shadows]

    def _draw_shadows(self, spec: CloudSpec) -> list[Shadow]:
        if spec.per_hour <= 0 or spec.mean_length_s <= 0:
            return []
        rng = random.Random(spec.seed)  # seeded: the same profile always gives the same day
        shadows: list[Shadow] = []
        t = self._rise
        while True:
            t += rng.expovariate(spec.per_hour / 3600.0)
            if t >= self._set:
                return shadows
            length = max(spec.edge_s, rng.expovariate(1.0 / spec.mean_length_s))
            shadows.append(Shadow(t, length))
            t += length

    def clear_sky_w(self, t_s: float) -> float:
        if t_s <= self._rise or t_s >= self._set:
            return 0.0
        x = math.sin(math.pi * (t_s - self._rise) / (self._set - self._rise))
        return float(self.profile.pv_peak_w * x ** self.profile.shape_exponent)

    def cloud_factor(self, t_s: float) -> float:
        spec = self.profile.clouds
        edge = spec.edge_s
        index = bisect.bisect_right(self._starts, t_s + edge) - 1
        cover = 0.0
        # only the last shadow whose front reached the roof and the one before it can overlap t
        for shadow in self.shadows[max(0, index - 1): index + 1]:
            end = shadow.start_s + shadow.length_s
            # a linear edge while the shadow front passes over the roof, then full shade
            part = min(1.0, (t_s - (shadow.start_s - edge)) / edge, ((end + edge) - t_s) / edge)
            cover = max(cover, part)
        return 1.0 - (1.0 - spec.transmission) * cover

    def pv_w(self, t_s: float) -> float:
        return self.clear_sky_w(t_s) * self.profile.haze * self.cloud_factor(t_s)


class Household:
    """Base load with a little noise plus the profile's appliance events."""

    def __init__(self, profile: DayProfile, seed: int = 11) -> None:
        self.profile = profile
        self._rng = random.Random(seed)
        self._events = [(clock_s(a.start), a) for a in profile.appliances]

    def load_w(self, t_s: float) -> float:
        load = self.profile.base_load_w
        if self.profile.load_noise_w:
            load += self._rng.uniform(-1.0, 1.0) * self.profile.load_noise_w
        for start, app in self._events:
            if start <= t_s < start + app.minutes * 60.0:
                peak_end = start + app.peak_minutes * 60.0
                load += app.peak_w if app.peak_w is not None and t_s < peak_end else app.power_w
        return max(0.0, load)
