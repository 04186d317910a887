"""Roles (grid, pv, battery, chargers) and the site's power flow, from the latest fresh readings.

Signs follow the contract: grid + import, battery + discharge, PV + production. Home is what is
left: pv + grid + battery - ev. A role with no device contributes 0; a role whose device is stale
makes the sums that need it None (missing, never 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from wattbus import messages as m
from wattbus.site import SiteConfig

from .state import DeviceRecord, SiteState

SUMMED = ("power_w", "energy", "_wh")  # fields that add up over several devices


@dataclass(frozen=True)
class Member:
    record: DeviceRecord
    field: str  # the reading field that counts as the role's power (power_w, or dc_power_w for hybrids)


def _split(ref: str) -> tuple[str, str]:
    device, _, fld = ref.partition(":")
    return device, fld or "power_w"


class Roles:
    def __init__(self, state: SiteState, cfg: SiteConfig) -> None:
        self.state = state
        self.cfg = cfg

    def _members(self, refs: list[str], kinds: tuple[str, ...]) -> list[Member]:
        if refs:
            out = []
            for ref in refs:
                device, fld = _split(ref)
                rec = self.state.devices.get(device)
                if rec is not None:
                    out.append(Member(rec, fld))
            return out
        return [Member(r, "power_w") for kind in kinds for r in self.state.of_kind(kind)]

    def grid(self) -> list[Member]:
        if self.cfg.grid:
            return self._members([self.cfg.grid], ())
        meters = self.state.of_kind("meter")
        return [Member(meters[0], "power_w")] if len(meters) == 1 else []

    def pv(self) -> list[Member]:
        return self._members(self.cfg.pv, ("inverter", "gateway"))

    def battery(self) -> list[Member]:
        return self._members(self.cfg.battery, ("battery",))

    def chargers(self) -> list[Member]:
        return self._members(self.cfg.charger_refs(), ("charger",))

    def role(self, name: str) -> list[Member] | None:
        """A role by MeterHub-style name: grid, pv, pv1, battery, bat1, car, car1, ...; None = unknown."""
        groups = {"grid": self.grid, "pv": self.pv, "battery": self.battery, "bat": self.battery,
                  "car": self.chargers}
        if name in groups:
            members = groups[name]()
            return members[:1] if name == "car" else members
        base, digits = name.rstrip("0123456789"), name[len(name.rstrip("0123456789")):]
        if digits and base in groups:
            members = groups[base]()
            index = int(digits) - 1
            return members[index:index + 1] if 0 <= index < len(members) else []
        return None


def field_value(reading: m.ReadingBase, name: str) -> m.ExtraValue:
    value = getattr(reading, name, None)
    if value is None and name in reading.extra:
        return reading.extra[name]
    if isinstance(value, float | int | str | bool):
        return value
    return None


def aggregate(state: SiteState, members: list[Member], name: str, now: float, stale_s: float) -> m.ExtraValue:
    """One value over a role: sums for power and energy, the mean for percentages, else the first."""
    if not members:
        return None
    values = []
    for member in members:
        reading = state.fresh(member.record, now, stale_s)
        if reading is None:
            return None  # one stale member makes a sum wrong, so the sum is missing
        values.append(field_value(reading, member.field if name == "power_w" else name))
    if any(v is None for v in values):
        return None
    if len(values) == 1:
        return values[0]
    numbers = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) != len(values):
        return values[0]
    if name.endswith(SUMMED):
        return sum(numbers)
    if name.endswith("_pct"):
        return sum(numbers) / len(numbers)
    return values[0]


class Flow(msgspec.Struct, frozen=True, kw_only=True):
    """The live power flow in W; None = missing or stale."""

    pv_w: float | None
    grid_w: float | None
    battery_w: float | None
    ev_w: float | None
    home_w: float | None
    battery_soc_pct: float | None


def _num(value: m.ExtraValue) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def flow(state: SiteState, roles: Roles, now: float, stale_s: float) -> Flow:
    parts: dict[str, float | None] = {}
    for name, members in (("pv", roles.pv()), ("grid", roles.grid()), ("battery", roles.battery()),
                          ("ev", roles.chargers())):
        # No device in a role: it contributes nothing (a house without a battery), which is 0 W.
        parts[name] = _num(aggregate(state, members, "power_w", now, stale_s)) if members else 0.0
    have_grid = bool(roles.grid())
    home = None
    if have_grid and all(v is not None for v in parts.values()):
        home = max(0.0, (parts["pv"] or 0) + (parts["grid"] or 0) + (parts["battery"] or 0) - (parts["ev"] or 0))
    soc = _num(aggregate(state, roles.battery(), "soc_pct", now, stale_s))
    return Flow(pv_w=parts["pv"], grid_w=parts["grid"] if have_grid else None, battery_w=parts["battery"],
                ev_w=parts["ev"], home_w=home, battery_soc_pct=soc)
