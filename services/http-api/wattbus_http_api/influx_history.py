"""The history read back from InfluxDB: what the influx-writer stored, by its `site_role` points.

The writer tags every point of a device in a counted role (grid, pv, battery, charger) into one
`site_role` measurement with the role's power and the device's lifetime totals (lineproto.py). From
those this module computes what the local store (energy.py) records live, by the same rules:

- energy per series from the lifetime counters where every device of the role has one: the last
  value per device and grain minus the one before it (the value before the range is looked up
  too), so a bucket gets what the counter counted up to its last reading, as energy.py credits
  each step to the bucket of its later reading; a step above MAX_SITE_W is a reset, not energy;
- else the role's power integrated over each grain (InfluxQL `integral`, between the readings
  inside it), queried only for those roles; grid and battery are split by the sign of each
  reading ((|p| + p) / 2 integrated in a subquery), not by a grain's net;
- home (no meter measures it) from the flow of the roles' energies in each grain, pv + grid +
  battery - ev (flows.py), only where the grid has a value;
- the day's power curve as the mean of each role's per-minute power (summed over its devices)
  over each 5 minutes, as the local store keeps minutes and history_api averages them.

Bucket edges are the local midnights computed here, not InfluxQL's tz(): grains (15 min; an hour
for a year, shifted by the zone's odd minutes) nest in local days in every zone, DST included, and
tz() is not confirmed on InfluxDB 2.x's InfluxQL. InfluxQL over HTTP (`/query`) serves both APIs:
1.x with database, retention policy and Basic auth, 2.x's 1.x-compatible `/query` with the bucket
as database and its token. aiohttp, as the rest of the service. A database that does not answer,
refuses the login or answers with an error raises InfluxUnavailable with the reason (never the
secret); the caller then answers from the local store.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

from .config import HistoryInflux
from .energy import COUNTERS, MAX_SITE_W, SERIES, parts
from .flows import Flow
from .store import CURVE

MEASUREMENT = "site_role"
# A counter's last value before the range is looked for this far back (energy.py's BRIDGE_MAX_S).
LOOKBACK_S = 31 * 86400
ROLE_OF = {"pv": "pv", "grid": "grid", "battery": "battery", "ev": "charger"}  # energy.py's role -> the writer's tag
CURVE_ROLE = {"pv_w": "pv", "grid_w": "grid", "battery_w": "battery", "ev_w": "charger"}
TOTALS = sorted({name for _role, name in COUNTERS.values()})


class InfluxUnavailable(Exception):
    """The database could not answer the history; str() says why, for the page."""


@dataclass
class _Device:
    role: str
    grains: dict[int, dict[str, float]] = field(default_factory=dict)  # grain start -> field -> value
    before: dict[str, float] = field(default_factory=dict)  # the counters' last values before the range


def grain_for(span_s: float, first: float) -> tuple[int, int]:
    """(grain, offset) in seconds: 15 minutes up to a month, an hour for a year, shifted so that
    the grains start on the zone's quarter hours (India's +05:30 has no hours at local midnight)."""
    if span_s <= 32 * 86400:
        return 900, 0
    offset = datetime.fromtimestamp(first).astimezone().utcoffset()
    return 3600, int(offset.total_seconds()) % 3600 if offset is not None else 0


class InfluxHistory:
    def __init__(self, cfg: HistoryInflux) -> None:
        self.cfg = cfg

    def _request(self) -> tuple[dict[str, str], dict[str, str]]:
        """The query parameters and headers that say where and who."""
        cfg = self.cfg
        if cfg.api == "v2":  # the 1.x-compatible /query of InfluxDB 2.x: the bucket by name, its token
            token = cfg.resolved_token()
            return {"db": cfg.bucket}, ({"Authorization": f"Token {token}"} if token else {})
        params = {"db": cfg.database}
        if cfg.retention_policy:
            params["rp"] = cfg.retention_policy
        if not cfg.username:
            return params, {}
        return params, {"Authorization": aiohttp.encode_basic_auth(cfg.username, cfg.resolved_password() or "")}

    async def query(self, statements: list[str]) -> list[list[dict[str, Any]]]:
        """The series of each statement, in order."""
        params, headers = self._request()
        params = {**params, "epoch": "s", "q": ";".join(statements)}
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout_s)
        where = self.cfg.target
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
                    f"{self.cfg.url.rstrip('/')}/query", data=params, headers=headers) as resp:
                text = await resp.text()
                if resp.status in (401, 403):
                    raise InfluxUnavailable(f"InfluxDB at {where} refused the login ({resp.status})")
                if resp.status != 200:
                    raise InfluxUnavailable(f"InfluxDB at {where} answered {resp.status}: {text.strip()[:200]}")
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise InfluxUnavailable(f"InfluxDB at {where} did not answer: {type(exc).__name__} {exc}") from exc
        if not isinstance(body, dict) or body.get("error"):
            why = body.get("error") if isinstance(body, dict) else body
            raise InfluxUnavailable(f"InfluxDB at {where}: {str(why)[:200]}")
        results = body.get("results") or []
        out: list[list[dict[str, Any]]] = [[] for _ in statements]
        for result in results:
            if result.get("error"):
                raise InfluxUnavailable(f"InfluxDB at {where}: {str(result['error'])[:200]}")
            if result.get("partial") or any(series.get("partial") for series in result.get("series") or []):
                raise InfluxUnavailable(f"InfluxDB at {where} answered part of the history only (its max-row-limit)")
            index = result.get("statement_id", 0)
            if 0 <= index < len(out):
                out[index] = result.get("series") or []
        return out

    async def energy(self, edges: list[float]) -> dict[str, list[float]]:
        """Wh per series for each bucket [edges[i], edges[i+1])."""
        start, end = edges[0], edges[-1]
        grain, offset = grain_for(end - start, start)
        by = '"role", "source", "device_id", "site"'
        span = f"WHERE time >= {int(start)}s AND time < {int(end)}s"
        where = f'FROM "{MEASUREMENT}" {span}'
        earlier = f'FROM "{MEASUREMENT}" WHERE time >= {int(start) - LOOKBACK_S}s AND time < {int(start)}s'
        group = f"GROUP BY time({grain}s, {offset}s), {by} fill(none)"
        # One statement per field: influxd 1.6 answers several last() in one statement with nulls
        # for the series of some devices (seen with this measurement's mixed devices).
        statements = []
        for name in TOTALS:
            statements += [f'SELECT last("{name}") AS "{name}" {where} {group}',
                           # no value before the range (a new device, a new database): count from
                           # the first one in it; a value before the range wins (listed after)
                           f'SELECT first("{name}") AS "{name}" {where} GROUP BY {by}',
                           f'SELECT last("{name}") AS "{name}" {earlier} GROUP BY {by}']
        # every device with readings in the range, those without counters too (a battery)
        present = f'SELECT first("power_w") AS "first_power_w" {where} GROUP BY {by}'
        answers = await self.query([*statements, present])
        counters, firsts = answers[:-1], answers[-1]
        devices = _devices([s for i, a in enumerate(counters) if i % 3 == 0 for s in a],
                           [*firsts, *(s for i, a in enumerate(counters) if i % 3 for s in a)])
        counted = _counted(devices)
        # Power is integrated only for the roles whose counters do not cover them (most often the
        # battery): integrals scan every reading, a year of 30-s readings of 4 devices takes influxd
        # 1.6 seconds per statement where last() per hour takes a tenth.
        roles = sorted({ROLE_OF[role] for series, (role, _name) in COUNTERS.items() if series not in counted}
                       & {d.role for d in devices.values()})
        if roles:
            which = " OR ".join(f'"role" = \'{role}\'' for role in roles)
            span_roles = f"{span} AND ({which})"
            answers = await self.query([
                f'SELECT integral("power_w", 1h) AS "wh" FROM "{MEASUREMENT}" {span_roles} {group}',
                # the positive part alone (grid import, battery discharge): (|p| + p) / 2 per reading
                f'SELECT integral("pos", 1h) AS "pos_wh" FROM (SELECT (abs("power_w") + "power_w") / 2 AS "pos" '
                f'FROM "{MEASUREMENT}" {span_roles}) {span} {group}'])
            _devices([s for a in answers for s in a], [], devices)
        return _buckets(devices, counted, edges, grain)

    async def curve(self, start: float, end: float, step: int) -> dict[str, Any]:
        """Each role's power per minute (the mean of its readings, summed over its devices), then
        the mean of the minutes in each step: what the local store keeps and history_api draws."""
        (series,) = await self.query([
            f'SELECT mean("power_w") AS "power_w" FROM "{MEASUREMENT}" WHERE time >= {int(start)}s AND '
            f'time < {int(end)}s GROUP BY time(60s), "role", "source", "device_id", "site" fill(none)'])
        devices = _devices(series, [])
        roles = {d.role for d in devices.values()}
        slots: dict[int, dict[str, list[float]]] = {}
        for t in sorted({t for d in devices.values() for t in d.grains}):
            power = _role_power(devices, t)
            flow = _flow(power, roles)
            values = {"pv_w": flow.pv_w, "grid_w": flow.grid_w, "battery_w": flow.battery_w, "ev_w": flow.ev_w,
                      "home_w": flow.home_w}
            acc = slots.setdefault(int(start + (t - start) // step * step), {name: [] for name in CURVE})
            for name in CURVE:
                value = values[name] if name == "home_w" or CURVE_ROLE[name] in power else None
                if value is not None:
                    acc[name].append(value)
        times = sorted(slots)
        out: dict[str, Any] = {"step_s": step, "t": times}
        for name in CURVE:
            out[name] = [round(sum(v) / len(v)) if (v := slots[t][name]) else None for t in times]
        return out


def _devices(grains: Iterable[dict[str, Any]], previous: Iterable[dict[str, Any]],
             devices: dict[tuple[str, ...], _Device] | None = None) -> dict[tuple[str, ...], _Device]:
    devices = {} if devices is None else devices

    def device(tags: dict[str, str]) -> _Device:
        key = tuple(tags.get(k, "") for k in ("role", "source", "device_id", "site"))
        return devices.setdefault(key, _Device(tags.get("role", "")))

    for series in grains:
        dev, columns = device(series.get("tags") or {}), series["columns"]
        for row in series["values"]:
            dev.grains.setdefault(int(row[0]), {}).update(
                {c: float(v) for c, v in zip(columns[1:], row[1:], strict=True) if isinstance(v, int | float)})
    for series in previous:
        dev, columns = device(series.get("tags") or {}), series["columns"]
        for row in series["values"]:
            dev.before.update({c: float(v) for c, v in zip(columns[1:], row[1:], strict=True)
                               if isinstance(v, int | float)})
    return devices


def _role_power(devices: dict[tuple[str, ...], _Device], t: int, name: str = "power_w") -> dict[str, float]:
    """The roles' sum of a per-device value in grain t (mean power, or the energy `wh`)."""
    power: dict[str, float] = {}
    for dev in devices.values():
        value = dev.grains.get(t, {}).get(name)
        if value is not None:
            power[dev.role] = power.get(dev.role, 0.0) + value
    return power


def _flow(power: dict[str, float], roles: set[str]) -> Flow:
    """flows.flow() on a grain's mean powers: a role without devices is 0 W, one whose devices sent
    nothing in the grain is missing, and home needs the grid and every role that has devices."""
    got = {role: power.get(role, None if role in roles else 0.0) for role in ("pv", "grid", "battery", "charger")}
    home = None
    if "grid" in power and all(v is not None for v in got.values()):
        home = max(0.0, (got["pv"] or 0.0) + (got["grid"] or 0.0) + (got["battery"] or 0.0) - (got["charger"] or 0.0))
    return Flow(pv_w=got["pv"], grid_w=power.get("grid"), battery_w=got["battery"], ev_w=got["charger"],
                home_w=home, battery_soc_pct=None)


def _counted(devices: dict[tuple[str, ...], _Device]) -> set[str]:
    """The series counted by counters: as energy.py, where every device of the role has one."""
    out = set()
    for series, (role, name) in COUNTERS.items():
        members = [d for d in devices.values() if d.role == ROLE_OF[role]]
        if members and all(any(name in g for g in d.grains.values()) for d in members):
            out.add(series)
    return out


def _deltas(devices: dict[tuple[str, ...], _Device], counted: set[str], first: float,
            grain: int) -> dict[int, dict[str, float]]:
    """Per grain, what each counted series' counters counted up to its last reading in it."""
    out: dict[int, dict[str, float]] = {}
    for series in counted:
        role, name = COUNTERS[series]
        for dev in (d for d in devices.values() if d.role == ROLE_OF[role]):
            last = dev.before.get(name)
            last_t = first - grain
            for t in sorted(dev.grains):
                value = dev.grains[t].get(name)
                if value is None:
                    continue
                # a step above the site's maximum power is a reset or a swap (energy.py)
                if last is not None and 0 <= value - last <= MAX_SITE_W * (t + grain - last_t) / 3600:
                    acc = out.setdefault(t, {})
                    acc[series] = acc.get(series, 0.0) + value - last
                last, last_t = value, t
    return out


# A role's net energy (flows.py's signs) from its counted series: (role, plus series, minus series)
_NET = (("pv", "pv_wh", None), ("grid", "grid_import_wh", "grid_export_wh"),
        ("battery", "battery_discharge_wh", "battery_charge_wh"), ("charger", "ev_wh", None))


def _buckets(devices: dict[tuple[str, ...], _Device], counted: set[str], edges: list[float],
             grain: int) -> dict[str, list[float]]:
    out = {name: [0.0] * (len(edges) - 1) for name in SERIES}
    deltas = _deltas(devices, counted, edges[0], grain)
    roles = {d.role for d in devices.values()}
    for t in sorted({t for d in devices.values() for t in d.grains}):
        index = bisect.bisect_right(edges, t) - 1
        if not 0 <= index < len(edges) - 1:
            continue
        counts = deltas.get(t, {})
        # Each role's energy in the grain: its counters' where they count it, else its power
        # integrated; their flow (flows.py's sums are linear in Wh as in W) gives home, and the
        # series without counters, grid and battery split by the sign of each reading (pos_wh).
        energies = _role_power(devices, t, "wh")
        present = {d.role for d in devices.values() if t in d.grains}
        for role, plus, minus in _NET:
            if plus in counted and role in present:
                energies[role] = counts.get(plus, 0.0) - (counts.get(minus, 0.0) if minus else 0.0)
        split = parts(_flow(energies, roles))
        positive = _role_power(devices, t, "pos_wh")
        for role, plus, minus in _NET[1:3]:
            if role in energies and role in positive and minus is not None:
                split[plus], split[minus] = positive[role], max(positive[role] - energies[role], 0.0)
        for series in SERIES:
            wh = counts.get(series, 0.0) if series in counted else split.get(series)
            if wh:
                out[series][index] += wh
    return out
