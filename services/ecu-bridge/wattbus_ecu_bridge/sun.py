"""Sunrise and sunset computed locally (NOAA's simplified solar equations), and the ECU's quiet times.

No network: the bridge must know when to stop polling even when the internet is down. Accuracy is
about a minute at mid latitudes, plenty for deciding when an ECU has nothing to say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from .config import minutes

ZENITH_DEG = 90.833  # the sun's upper limb on the horizon, with refraction


@dataclass(frozen=True, slots=True)
class SunTimes:
    sunrise: datetime | None  # UTC; None in polar night or polar day
    sunset: datetime | None
    polar_day: bool = False


def sun_times(day: date, latitude: float, longitude: float) -> SunTimes:
    noon = datetime.combine(day, time(12), UTC)
    # Fractional year (radians), equation of time (min) and declination (rad), NOAA.
    gamma = 2 * math.pi / 365 * (day.timetuple().tm_yday - 1)
    eqtime = 229.18 * (0.000075 + 0.001868 * math.cos(gamma) - 0.032077 * math.sin(gamma)
                       - 0.014615 * math.cos(2 * gamma) - 0.040849 * math.sin(2 * gamma))
    decl = (0.006918 - 0.399912 * math.cos(gamma) + 0.070257 * math.sin(gamma) - 0.006758 * math.cos(2 * gamma)
            + 0.000907 * math.sin(2 * gamma) - 0.002697 * math.cos(3 * gamma) + 0.00148 * math.sin(3 * gamma))
    lat = math.radians(latitude)
    cos_ha = (math.cos(math.radians(ZENITH_DEG)) / (math.cos(lat) * math.cos(decl))) - math.tan(lat) * math.tan(decl)
    if cos_ha > 1:
        return SunTimes(None, None, polar_day=False)
    if cos_ha < -1:
        return SunTimes(None, None, polar_day=True)
    ha = math.degrees(math.acos(cos_ha))
    solar_noon_min = 720 - 4 * longitude - eqtime
    start = noon.replace(hour=0) + timedelta(minutes=solar_noon_min - 4 * ha)
    end = noon.replace(hour=0) + timedelta(minutes=solar_noon_min + 4 * ha)
    return SunTimes(start, end)


def solar_date(when: datetime, longitude: float) -> date:
    """The calendar day at the place (by mean solar time), so far-west evenings stay on their own day."""
    return (when.astimezone(UTC) + timedelta(hours=longitude / 15)).date()


def is_night(now: datetime, latitude: float, longitude: float, margin: timedelta) -> bool:
    """True between sunset + margin and sunrise - margin (now must be aware)."""
    when = now.astimezone(UTC)
    times = sun_times(solar_date(when, longitude), latitude, longitude)
    if times.sunrise is None or times.sunset is None:
        return not times.polar_day
    return when < times.sunrise - margin or when > times.sunset + margin


def next_sunrise(now: datetime, latitude: float, longitude: float, margin: timedelta) -> datetime | None:
    when = now.astimezone(UTC)
    for days in range(0, 200):
        times = sun_times(solar_date(when, longitude) + timedelta(days=days), latitude, longitude)
        if times.sunrise is not None and times.sunrise - margin > when:
            return times.sunrise - margin
        if times.polar_day:
            return when
    return None


def in_window(now: datetime, start: str | None, end: str | None, zone: tzinfo) -> bool:
    """Whether local `now` lies in [start, end) (HH:MM, may wrap over midnight)."""
    if start is None or end is None:
        return False
    local = now.astimezone(zone)
    t, a, b = local.hour * 60 + local.minute, minutes(start), minutes(end)
    return a <= t < b if a <= b else (t >= a or t < b)


def window_end(now: datetime, end: str, zone: tzinfo) -> datetime:
    local = now.astimezone(zone)
    e = minutes(end)
    candidate = local.replace(hour=e // 60, minute=e % 60, second=0, microsecond=0)
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate
