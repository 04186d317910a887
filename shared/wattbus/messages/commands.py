"""Commands to devices, loadpoints and services, and the result every command gets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta, Struct, field

from .readings import DeviceMeta, Reading
from .values import ExtraValue, Percent, utc_now

# --------------------------------------------------------------------------- commands

ChargeCurrent = Annotated[float, Meta(ge=6, le=32, description="EV charge current per phase, 6-32 A")]
SocTarget = Annotated[int, Meta(ge=4, le=100, description="battery state of charge, 4-100 %")]
ClockTime = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3])[0-5][0-9]$", description="HHMM, local time")]


class CommandBase(Struct, frozen=True, kw_only=True, tag_field="command"):
    """A request to a device. Sent with an MQTT v5 response topic + correlation data; a v3.1.1
    client may set request_id instead and read the answer on the device's result topic."""

    request_id: str | None = None


class SetChargeCurrent(CommandBase, frozen=True, kw_only=True, tag="set_charge_current"):
    current_a: ChargeCurrent


class SetCharging(CommandBase, frozen=True, kw_only=True, tag="set_charging"):
    """Start (enabled=True) or stop charging."""

    enabled: bool


class SetPhases(CommandBase, frozen=True, kw_only=True, tag="set_phases"):
    phases: Literal[1, 3]


class SetRelay(CommandBase, frozen=True, kw_only=True, tag="set_relay"):
    on: bool
    channel: Annotated[int, Meta(ge=0, le=3)] = 0


BatteryMode = Literal["eco", "eco_paused", "timed_demand", "timed_export"]


class SetBatteryMode(CommandBase, frozen=True, kw_only=True, tag="set_battery_mode"):
    mode: BatteryMode


class SetChargeTarget(CommandBase, frozen=True, kw_only=True, tag="set_charge_target"):
    soc_pct: SocTarget


class SetChargeTargetEnabled(CommandBase, frozen=True, kw_only=True, tag="set_charge_target_enabled"):
    """Follow the charge target when charging from the grid (True) or charge to 100 % (False)."""

    enabled: bool


class SetBatteryReserve(CommandBase, frozen=True, kw_only=True, tag="set_battery_reserve"):
    soc_pct: SocTarget


class SetChargeSlot(CommandBase, frozen=True, kw_only=True, tag="set_charge_slot"):
    slot: Annotated[int, Meta(ge=1, le=2)] = 1
    start: ClockTime
    end: ClockTime
    target_soc_pct: SocTarget | None = None


class SetDischargeSlot(CommandBase, frozen=True, kw_only=True, tag="set_discharge_slot"):
    slot: Annotated[int, Meta(ge=1, le=2)] = 1
    start: ClockTime
    end: ClockTime
    reserve_soc_pct: SocTarget | None = None


class SetSchedule(CommandBase, frozen=True, kw_only=True, tag="set_schedule"):
    """Enable or pause the timed charge or discharge schedule."""

    which: Literal["charge", "discharge"]
    enabled: bool


class SetBatteryPowerLimit(CommandBase, frozen=True, kw_only=True, tag="set_battery_power_limit"):
    direction: Literal["charge", "discharge"]
    power_w: Annotated[float, Meta(ge=0, le=20000)]


class SetClock(CommandBase, frozen=True, kw_only=True, tag="set_clock"):
    time: datetime


class Restart(CommandBase, frozen=True, kw_only=True, tag="restart"):
    """Restart the device (ECU, inverter). Bridges refuse it for devices that cannot do it."""


class Rescan(CommandBase, frozen=True, kw_only=True, tag="rescan"):
    """Ask the discovery service for a sweep now."""


LoadpointMode = Literal["off", "now", "minpv", "pv"]


class SetLoadpointMode(CommandBase, frozen=True, kw_only=True, tag="set_loadpoint_mode"):
    mode: LoadpointMode


class SetLoadpointLimits(CommandBase, frozen=True, kw_only=True, tag="set_loadpoint_limits"):
    min_current_a: ChargeCurrent | None = None
    max_current_a: ChargeCurrent | None = None


class SetLoadpointPlan(CommandBase, frozen=True, kw_only=True, tag="set_loadpoint_plan"):
    """The loadpoint's charge plan, as a whole (fields left out clear their part): reach soc_pct by
    `time` (HHMM local, the next such time, every day) from the grid when the sun will not make it
    in time; below min_soc_pct charge at full power. Needs a vehicle that reports its SoC."""

    soc_pct: Annotated[int, Meta(ge=1, le=100)] | None = None
    time: ClockTime | None = None
    min_soc_pct: Annotated[int, Meta(ge=0, le=100)] | None = None


class SetPowerLimit(CommandBase, frozen=True, kw_only=True, tag="set_power_limit"):
    """Limit an inverter's AC output to a share of its rated power (SunSpec model 123 WMaxLimPct);
    limit_pct None lifts the limit."""

    limit_pct: Percent | None = None


class SetConnected(CommandBase, frozen=True, kw_only=True, tag="set_connected"):
    """Connect (True) or disconnect (False) an inverter from the grid (SunSpec model 123 Conn)."""

    connected: bool


class ReloadConfig(CommandBase, frozen=True, kw_only=True, tag="reload_config"):
    """Re-read this service's config section (sent to `service/<name>/<instance>/command`). The runner
    validates it with the service's own config Struct: `invalid` with the message if it does not
    decode, `ok` + a clean exit with RELOAD_EXIT_CODE (the supervisor restarts only this service)
    if it changed, `ok` with "unchanged" otherwise."""


class ProbeDevice(CommandBase, frozen=True, kw_only=True, tag="probe_device"):
    """Read a device once without adopting it (sent to `service/<bridge>/<instance>/command` by the
    setup page before it saves a device added by hand). `entry` is the item the bridge's config list
    would hold (e.g. sunspec-bridge `{host, port, unit_ids}`, sml-reader `{key, format, port}`); the
    bridge validates it with its own config Struct and reads it with the adapter it polls with. The
    answer is `ok` with `devices` + `readings`, or `failed`/`invalid` with the precise reason."""

    entry: dict[str, ExtraValue | list[ExtraValue]]


Command = (
    SetChargeCurrent | SetCharging | SetPhases | SetRelay | SetBatteryMode | SetChargeTarget | SetBatteryReserve
    | SetChargeSlot | SetDischargeSlot | SetSchedule | SetBatteryPowerLimit | SetClock | Restart | Rescan
    | SetLoadpointMode | SetLoadpointLimits | SetPowerLimit | SetConnected | SetChargeTargetEnabled
    | ReloadConfig | ProbeDevice | SetLoadpointPlan
)

CommandStatus = Literal["ok", "refused", "invalid", "failed", "timeout"]


class CommandResult(Struct, frozen=True, kw_only=True):
    """The answer to a command: `ok` only after the bridge read the new value back."""

    status: CommandStatus
    command: str | None = None  # the command's tag; None when the payload could not be decoded
    target: str | None = None  # device id or loadpoint id
    request_id: str | None = None
    message: str = ""  # why it was refused / failed, for a person
    applied: dict[str, ExtraValue] = {}  # the values read back
    timestamp: datetime = field(default_factory=utc_now)
    devices: list[DeviceMeta] = []  # probe_device: who answered (identity as the bridge would announce it)
    readings: list[Reading] = []  # probe_device: what it read, in the contract's units
