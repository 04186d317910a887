"""The loadpoint's charge plan: a target SoC by a time of day, and a minimum SoC at full power.

The plan needs the vehicle's state of charge on the bus (a VehicleReading of the loadpoint's
`vehicle`) and its usable capacity (from the vehicle, else `vehicle_capacity_wh`). From those,
the charge power at the loadpoint's maximum current and the time left it works out the latest
moment it must start charging from the grid to finish `plan_margin_s` before the target time:

    energy = (target - soc) / 100 x capacity / efficiency
    latest start = target time - energy / max power - margin

Until then the mode decides (PV-only charging may well reach the target first, and every kWh it
charges moves the latest start later). From the latest start the plan takes over: it charges at
the power still needed to finish by the target time less the margin (never less than the surplus
or the minimum current, never more than the maximum), grid allowed, until the target SoC is
reached; then the mode decides again. Below the minimum SoC it charges at full power. Without a
SoC the plan is unavailable and its status says so; it never charges blind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from wattbus import messages as m

from .config import LoadpointConfig
from .model import LoadpointChoices
from .strategy import Loadpoint


@dataclass
class VehicleView:
    """The latest VehicleReading of a loadpoint's vehicle."""

    soc_pct: float | None = None
    capacity_wh: float | None = None
    limit_soc_pct: float | None = None


@dataclass(frozen=True)
class PlanDecision:
    active: bool = False  # the plan decides the charge now
    power_w: float = 0.0  # what it needs while active
    start: datetime | None = None  # the latest start (or when it took over)
    status: str | None = None  # for a person; None without a plan


def target_time(now: datetime, hhmm: str) -> datetime:
    """The next hh:mm (local, as `now`) at or after now."""
    at = now.replace(hour=int(hhmm[:2]), minute=int(hhmm[2:]), second=0, microsecond=0)
    return at if at >= now else at + timedelta(days=1)


def energy_needed_wh(soc_pct: float, target_pct: float, capacity_wh: float, efficiency: float) -> float:
    """AC energy to go from soc to target (what the charger draws, losses included)."""
    return max(0.0, target_pct - soc_pct) / 100.0 * capacity_wh / efficiency


def latest_start(target: datetime, energy_wh: float, max_power_w: float, margin_s: float) -> datetime:
    return target - timedelta(seconds=energy_wh / max_power_w * 3600.0 + margin_s)


def needed_power_w(energy_wh: float, seconds_left: float, margin_s: float) -> float:
    """The power that finishes margin_s before the target (at least a minute's worth of charging left)."""
    return energy_wh * 3600.0 / max(60.0, seconds_left - margin_s)


class Planner:
    """One loadpoint's plan over time: once it took over, it keeps the charge until the target
    SoC or the target time (a car that charges a little faster than planned must not hand back to
    PV and take over again at every reading)."""

    def __init__(self, cfg: LoadpointConfig) -> None:
        self.cfg = cfg
        self._took_over: tuple[datetime, datetime] | None = None  # (target time, when) while it charges

    def decide(self, now: datetime, settings: LoadpointChoices, vehicle: VehicleView | None,
               max_power_w: float, plugged: bool = True) -> PlanDecision:
        """plugged: the charger does not report an empty socket (a car's SoC comes from its telematics
        wherever it is parked; only a plugged-in car can follow the plan here)."""
        target, by, minimum = settings.plan_soc_pct, settings.plan_time, settings.plan_min_soc_pct
        if (target is None or by is None) and not minimum:
            self._took_over = None
            return PlanDecision()
        soc = vehicle.soc_pct if vehicle is not None else None
        if soc is None:
            self._took_over = None
            why = "no SoC from vehicle" if self.cfg.vehicle else "no vehicle configured for this loadpoint"
            return PlanDecision(status=why)
        if not plugged:
            self._took_over = None
            return PlanDecision(status="plan: waiting for the car to be plugged in")
        if minimum and soc < minimum:
            return PlanDecision(True, max_power_w, now, f"plan: charging at full power to the minimum {minimum} %")
        if target is None or by is None:
            return PlanDecision(status=f"plan: minimum {minimum} % reached")
        capacity = vehicle.capacity_wh if vehicle is not None and vehicle.capacity_wh else self.cfg.vehicle_capacity_wh
        if capacity is None:
            self._took_over = None
            return PlanDecision(status="no battery capacity from vehicle: set vehicle_capacity_wh")
        limit = vehicle.limit_soc_pct if vehicle is not None else None
        goal = min(float(target), limit) if limit is not None else float(target)
        until = " (the car's own limit)" if goal < target else ""
        at = target_time(now, by)
        if self._took_over is not None and self._took_over[0] != at:
            self._took_over = None  # the target time passed: tomorrow's plan starts afresh
        if soc >= goal:
            self._took_over = None
            return PlanDecision(status="plan met")
        energy = energy_needed_wh(soc, goal, capacity, self.cfg.charge_efficiency)
        start = latest_start(at, energy, max_power_w, self.cfg.plan_margin_s)
        if self._took_over is None and now < start:
            return PlanDecision(start=start, status=f"plan: {goal:g} %{until} by {at:%H:%M}; from the grid from "
                                                    f"{start:%H:%M} unless the sun gets there first")
        if self._took_over is None:
            self._took_over = (at, now)
        power = min(max_power_w, needed_power_w(energy, (at - now).total_seconds(), self.cfg.plan_margin_s))
        return PlanDecision(True, power, self._took_over[1],
                            f"plan: charging from the grid from {self._took_over[1]:%H:%M} to reach {goal:g} %"
                            f"{until} by {at:%H:%M}")


def plan_phases(lp: Loadpoint) -> int:
    """The phases the plan charges on: 3 unless the loadpoint is fixed to 1 (as mode now does)."""
    return 1 if lp.cfg.phases == 1 else 3


def max_power_w(lp: Loadpoint) -> float:
    return lp.power_at(lp.settings.max_current_a, plan_phases(lp))


def plan_current_a(lp: Loadpoint, power_w: float, available_w: float | None) -> float:
    """Whole amps for the larger of what the plan needs and the surplus, within the loadpoint's range."""
    wanted = max(power_w, available_w or 0.0)
    amps = math.ceil(wanted / (lp.cfg.voltage_v * plan_phases(lp)) - 1e-9)
    return float(min(lp.settings.max_current_a, max(lp.settings.min_current_a, amps)))


def takes_over(plan: PlanDecision, mode: str) -> bool:
    """The plan charges in the surplus modes; `off` stays off and `now` already charges at full power."""
    return plan.active and mode in ("pv", "minpv")


def as_now(settings: LoadpointChoices, current_a: float) -> LoadpointChoices:
    """The settings the strategy decides with while the plan charges: mode now, capped at the plan's
    current (the strategy's own phase budget and settle times still apply)."""
    return replace(settings, mode="now", max_current_a=current_a)


def set_plan(settings: LoadpointChoices, command: m.SetLoadpointPlan) -> str | None:
    """Apply a set_loadpoint_plan command; why it is invalid, else None."""
    if (command.soc_pct is None) != (command.time is None):
        return "give soc_pct and time together (or neither, to clear the target)"
    settings.plan_soc_pct, settings.plan_time, settings.plan_min_soc_pct = (
        command.soc_pct, command.time, command.min_soc_pct or None)
    return None


def state_fields(lp_cfg: LoadpointConfig, settings: LoadpointChoices, vehicle: VehicleView | None,
                 plan: PlanDecision) -> dict[str, Any]:
    """The plan's part of the LoadpointState."""
    active, text = takes_over(plan, settings.mode), plan.status
    if plan.active and not active:
        text = f"{text} (mode {settings.mode}: the plan does not charge)" if settings.mode == "off" else \
            f"{text} (mode now charges at full power anyway)"
    return {"vehicle_id": lp_cfg.vehicle.split("/", 1)[1] if lp_cfg.vehicle else None,
            "vehicle_soc_pct": vehicle.soc_pct if vehicle is not None else None,
            "plan_soc_pct": settings.plan_soc_pct, "plan_time": settings.plan_time,
            "plan_min_soc_pct": settings.plan_min_soc_pct, "plan_active": active,
            "plan_start": plan.start, "plan_status": text}
