"""Measured 1-minute irradiance for the surplus benchmark: days, sky types and 10 kWp PV power.

Source: the test data pvlib ships in its 0.10.5 wheel on PyPI (pvlib is BSD-3-Clause; the
measurements belong to their networks and are used here unchanged, read only, not redistributed:
the wheel is fetched into a cache with `pip download` on first use and read in place).
- Payerne, Switzerland (46.815 N, 6.944 E, 491 m; BSRN station PAY, MeteoSwiss), June 2016,
  `bsrn-pay0616.dat.gz`, logical record LR0100, global horizontal 1-minute means, UTC.
- Continental US (a second climate, high plains and desert), one day per file:
  `midc_20181014.txt` (NREL NWTC, 39.91 N 105.23 W, MST, 14 Oct 2018, Global PSP),
  `midc_raw_20181018.txt` (NREL MIDC, file's MST clock, 18 Oct 2018, platform global; treated as
  Tucson 32.23 N 110.95 W for the sun position — only the window's centre and the clear-sky
  reference use it), `surfrad-slv16001.dat` (Alamosa, Colorado, 37.70 N 105.92 W, 1 Jan 2016, UTC).

Sky type of a day, over the simulated 8-hour window centred on solar noon, against the
Haurwitz clear-sky model: k = sum(GHI) / sum(GHI_clear) and Stein's variability index
VI = sum|dGHI| / sum|dGHI_clear| (1-minute steps). clear: VI < 3 and k >= 0.75;
overcast: k < 0.45 and VI < 8 (grey all day); broken: every other day.

PV power: a 10 kWp horizontal array, P = 10 kW x GHI / 1000 W/m2 x 0.85 (performance ratio:
inverter, wiring, temperature, soiling), capped at 9 kW (inverter). Minute means are
interpolated linearly to seconds (transients shorter than a minute are not in the data).
"""

from __future__ import annotations

import gzip
import io
import itertools
import math
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

WHEEL = "pvlib==0.10.5"
CACHE = Path.home() / ".cache" / "wattbus-bench"
WINDOW_H = 8.0
KWP, PR, CAP_W = 10.0, 0.85, 9000.0


@dataclass(frozen=True)
class Day:
    name: str  # e.g. "PAY-2016-06-12"
    climate: str  # "Payerne" or "US"
    ghi: list[float]  # W/m2 for each minute of the window
    k: float  # clear-sky index
    vi: float  # variability index

    @property
    def sky(self) -> str:
        if self.vi < 3.0 and self.k >= 0.75:
            return "clear"
        if self.k < 0.45 and self.vi < 8.0:
            return "overcast"
        return "broken"

    def pv_w(self, t_s: float) -> float:
        """PV power t_s seconds into the window (linear between minute means)."""
        i = min(len(self.ghi) - 2, max(0, int(t_s // 60)))
        frac = min(1.0, max(0.0, t_s / 60.0 - i))
        ghi = self.ghi[i] + (self.ghi[i + 1] - self.ghi[i]) * frac
        return min(CAP_W, max(0.0, KWP * ghi * PR))


def wheel_path() -> Path:
    found = sorted(CACHE.glob("pvlib-0.10.5-*.whl"))
    if found:
        return found[0]
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", str(CACHE)], check=True)
    found = sorted(CACHE.glob("pvlib-0.10.5-*.whl"))
    if not found:
        raise RuntimeError(f"pip download {WHEEL} left no wheel in {CACHE}")
    return found[0]


def clear_ghi(lat: float, lon: float, tz_h: float, doy: int, clock_h: float) -> float:
    """Haurwitz clear-sky GHI at a clock time (hours, in a zone tz_h hours from UTC)."""
    decl = math.radians(23.45) * math.sin(2 * math.pi * (284 + doy) / 365)
    solar_h = clock_h - tz_h + lon / 15.0
    hour_angle = math.radians(15.0 * (solar_h - 12.0))
    phi = math.radians(lat)
    cos_z = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(hour_angle)
    return 1098.0 * cos_z * math.exp(-0.059 / cos_z) if cos_z > 0.01 else 0.0


def _day(name: str, climate: str, minutes: dict[int, float], lat: float, lon: float, tz_h: float,
         doy: int) -> Day | None:
    """The window centred on solar noon; None when minutes are missing in it."""
    noon_min = round((12.0 + tz_h - lon / 15.0) * 60)
    first = noon_min - int(WINDOW_H * 30)
    ghi = [minutes.get(first + i, math.nan) for i in range(int(WINDOW_H * 60) + 1)]
    if any(math.isnan(g) for g in ghi):
        return None
    clear = [clear_ghi(lat, lon, tz_h, doy, (first + i) / 60.0) for i in range(len(ghi))]
    k = sum(ghi) / sum(clear)
    vi = sum(abs(b - a) for a, b in itertools.pairwise(ghi)) / \
        sum(abs(b - a) for a, b in itertools.pairwise(clear))
    return Day(name, climate, [max(0.0, g) for g in ghi], k, vi)


def payerne(zf: zipfile.ZipFile) -> list[Day]:
    text = gzip.decompress(zf.read("pvlib/data/bsrn-pay0616.dat.gz")).decode("ascii")
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("*U0100") or line.startswith("*C0100"))
    by_day: dict[int, dict[int, float]] = {}
    i = start + 1
    while i < len(lines) and not lines[i].startswith("*"):
        parts = lines[i].split()
        day, minute, ghi = int(parts[0]), int(parts[1]), float(parts[2])
        if ghi > -999:
            by_day.setdefault(day, {})[minute] = ghi
        i += 2  # each minute is two lines; the second holds diffuse, longwave and met values
    days = [_day(f"PAY-2016-06-{d:02d}", "Payerne", mins, 46.815, 6.944, 0.0, 152 + d)
            for d, mins in sorted(by_day.items())]
    return [d for d in days if d is not None]


def _midc(zf: zipfile.ZipFile, path: str, column: str, clock_col: str) -> dict[int, float]:
    rows = io.StringIO(zf.read(path).decode("ascii")).read().splitlines()
    head = rows[0].split(",")
    g, c = head.index(column), head.index(clock_col)
    out: dict[int, float] = {}
    for row in rows[1:]:
        cells = row.split(",")
        clock = cells[c]
        minute = int(clock[:2]) * 60 + int(clock[3:5]) if ":" in clock else int(clock) // 100 * 60 + int(clock) % 100
        out[minute] = float(cells[g])
    return out


def us_days(zf: zipfile.ZipFile) -> list[Day]:
    days = [
        _day("NWTC-2018-10-14", "US", _midc(zf, "pvlib/data/midc_20181014.txt", "Global PSP [W/m^2]", "MST"),
             39.91, -105.23, -7.0, 287),
        _day("MIDC-2018-10-18", "US", _midc(zf, "pvlib/data/midc_raw_20181018.txt",
                                            "Global Horiz (platform) [W/m^2]", "MST"), 32.23, -110.95, -7.0, 291),
    ]
    surf: dict[int, float] = {}
    for line in zf.read("pvlib/data/surfrad-slv16001.dat").decode("ascii").splitlines()[2:]:
        parts = line.split()
        ghi = float(parts[8])
        if ghi > -9999 and parts[9] == "0":  # a QC flag 0: good
            surf[int(parts[4]) * 60 + int(parts[5])] = ghi
    days.append(_day("SLV-2016-01-01", "US", surf, 37.70, -105.92, 0.0, 1))
    return [d for d in days if d is not None]


def all_days() -> list[Day]:
    with zipfile.ZipFile(wheel_path()) as zf:
        return payerne(zf) + us_days(zf)


if __name__ == "__main__":
    for d in all_days():
        print(f"{d.name:16} {d.climate:8} k={d.k:5.2f} VI={d.vi:5.1f} {d.sky}")
