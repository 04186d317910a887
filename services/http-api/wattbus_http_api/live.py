"""Is what the page shows live, and if not, why: the broker, a silent bridge, a device and its error.

The web UI used to say "live" whenever its event stream was open, so a stopped broker left the
last power flow on screen, animated, for as long as the browser stayed open. Here every summary
carries a verdict judged on our own clock: `offline` while the http-api has no broker connection,
`stale` while a device the power flow needs is silent, offline or failing, `live` otherwise; each
with the reasons a person can act on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import msgspec
from wattbus import messages as m
from wattbus.bus import Bus

from .flows import Member, Roles
from .state import DeviceRecord, SiteState, silent

LiveState = Literal["live", "stale", "offline"]
ROLE_NAMES = {"pv": "PV", "grid": "grid", "battery": "battery", "ev": "EV"}


class Live(msgspec.Struct, frozen=True, kw_only=True):
    state: LiveState
    reasons: list[str] = []  # why the flow is not live, one line each
    warnings: list[str] = []  # failing devices outside the power flow (an inverter that never answered)
    stale_nodes: list[str] = []  # flow nodes (pv, grid, battery, ev) whose value is not current
    ages_s: dict[str, float | None] = {}  # per flow node: the oldest reading behind it, seconds


@dataclass
class BusWatch:
    """When the http-api's own broker connection went away (the bus only says whether it is up)."""

    bus: Bus
    down_since: float | None = field(default_factory=time.monotonic)  # not connected yet at start

    def down_for(self, now: float) -> float | None:
        if self.bus.connected:
            self.down_since = None
            return None
        if self.down_since is None:
            self.down_since = now
        return now - self.down_since


def _name(rec: DeviceRecord) -> str:
    meta = rec.meta
    return (meta.name or meta.model or rec.device_id) if meta else rec.device_id


def _since(error: m.DeviceError) -> str:
    return error.since.astimezone().strftime("%H:%M:%S") if isinstance(error.since, datetime) else "?"


def error_name(state: SiteState, ref: str, error: m.DeviceError) -> str:
    """A failing device as a person knows it: its name, else what its service's config calls it."""
    if ref in state.devices:
        return _name(state.devices[ref])
    return f"{ref.split('/', 1)[0]} {error.name or error.address or error.device_id}"


def error_text(error: m.DeviceError) -> str:
    return f"{error.error} (since {_since(error)})"


def member_problem(state: SiteState, rec: DeviceRecord, now: float, stale_s: float,
                   errors: dict[str, m.DeviceError]) -> str | None:
    """Why this device's value is not current, or None when it is."""
    name, error = _name(rec), errors.get(rec.ref)
    service_up = state.service_online(rec.source)
    age = rec.age_s(now)
    quiet = silent(rec.reading_at, rec.interval_s, now)
    if error is not None:
        return f"{name}: {error_text(error)}"
    if rec.online is False:
        return f"{name} is offline ({state.offline_reason(rec) or f'{rec.source} cannot read it'})"
    if service_up is False:
        return f"{rec.source} is not running: {name} has sent nothing for {age or 0:.0f} s"
    if rec.reading is None:
        return f"{name}: no reading yet from {rec.source}"
    if quiet is not None:
        return f"{rec.source} silent: no reading from {name} for {quiet:.0f} s (usually every {rec.interval_s:.0f} s)"
    if age is not None and age > stale_s:
        return f"{name}: no reading for {age:.0f} s"
    return None


def judge(state: SiteState, roles: Roles, watch: BusWatch, now: float, stale_s: float) -> Live:
    errors = state.device_errors()
    groups: dict[str, list[Member]] = {"pv": roles.pv(), "grid": roles.grid(), "battery": roles.battery(),
                                       "ev": roles.chargers()}
    ages: dict[str, float | None] = {}
    for node, members in groups.items():
        known = [a for member in members if (a := member.record.age_s(now)) is not None]
        ages[node] = round(max(known), 1) if known and len(known) == len(members) else None
    in_flow = {member.record.ref for members in groups.values() for member in members}
    warnings = [f"{error_name(state, ref, error)}: {error_text(error)}"
                for ref, error in sorted(errors.items()) if ref not in in_flow]
    down = watch.down_for(now)
    if down is not None:
        host, port = watch.bus.config.host, watch.bus.config.port
        return Live(state="offline", stale_nodes=sorted(groups), ages_s=ages, warnings=warnings, reasons=[
            f"no connection to the broker at {host}:{port} for {down:.0f} s: the values shown are the last "
            "ones received (the http-api reconnects every few seconds)"])
    reasons: list[str] = []
    stale_nodes: list[str] = []
    configured = {"pv": roles.cfg.pv, "grid": [roles.cfg.grid] if roles.cfg.grid else [],
                  "battery": roles.cfg.battery, "ev": roles.cfg.chargers}
    for node, members in groups.items():
        problems = [p for member in members if (p := member_problem(state, member.record, now, stale_s, errors))]
        # A role set in the config whose device never appeared (its bridge cannot reach it, or is not running).
        problems += [f"{ref} is configured but not on the bus (is its bridge running and the device reachable?)"
                     for ref in configured[node] if ref.partition(":")[0] not in state.devices]
        if problems:
            stale_nodes.append(node)
            reasons += [f"{ROLE_NAMES[node]}: {p}" for p in problems if f"{ROLE_NAMES[node]}: {p}" not in reasons]
    if state.loadpoints and (why := loadpoint_problem(state, now)) is not None:
        reasons.append(f"charging: {why}")
    return Live(state="stale" if reasons else "live", reasons=reasons, warnings=warnings,
                stale_nodes=stale_nodes, ages_s=ages)


def loadpoint_problem(state: SiteState, now: float) -> str | None:
    """Why the controller's word on the loadpoints is old, or None. Judged on its heartbeat: it
    publishes a loadpoint's state when it decides, and it decides when readings come."""
    if state.service_online("surplus-controller") is False:
        return "surplus-controller is not running: its state is from before it stopped"
    quiet = state.service_silent("surplus-controller", now)
    if quiet is not None:
        return f"surplus-controller silent for {quiet:.0f} s"
    return None
