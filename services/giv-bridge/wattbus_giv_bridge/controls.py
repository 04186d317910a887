"""Bus commands to holding-register writes: validate, write, read back, confirm.

Every control in GivTCP's table maps to a contract command (see docs in README of the service):
enable/disableChargeTarget -> set_charge_target_enabled, pause/resume(Dis)ChargeSchedule ->
set_schedule, setChargeTarget, setBatteryReserve, setChargeSlot1/2, setDischargeSlot1/2,
setBatteryMode 1-4, setDateTime -> set_clock, charge/discharge rate -> set_battery_power_limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from wattbus import messages as m

from .plant import Plant

CAPABILITIES = ("set_charge_target_enabled", "set_schedule", "set_charge_target", "set_battery_reserve",
                "set_charge_slot", "set_discharge_slot", "set_battery_mode", "set_clock", "set_battery_power_limit",
                "restart")

RESERVE_MIN_PCT = 4  # the inverter refuses (or misbehaves) below 4 %
CHARGE_SLOTS = {1: (94, 95), 2: (31, 32)}
DISCHARGE_SLOTS = {1: (56, 57), 2: (44, 45)}
# Battery modes are register recipes (GivTCP modes 1-4); eco restores the 4 % reserve.
MODES: dict[str, dict[int, int]] = {
    "eco": {27: 1, 59: 0, 110: RESERVE_MIN_PCT},
    "eco_paused": {27: 1, 59: 0, 110: 100},
    "timed_demand": {27: 1, 59: 1},
    "timed_export": {27: 0, 59: 1},
}
REBOOT_REGISTER, REBOOT_VALUE = 163, 100
WRITABLE = {20, 27, 31, 32, 35, 36, 37, 38, 39, 40, 44, 45, 56, 57, 59, 94, 95, 96, 110, 111, 112, 114, 116, 163}


class CommandInvalid(ValueError):
    """A request that is well-formed JSON but not acceptable for this device."""


def hhmm(text: str, what: str) -> int:
    if len(text) != 4 or not text.isdigit() or int(text[:2]) > 23 or int(text[2:]) > 59:
        raise CommandInvalid(f"{what} {text!r}: use hhmm, hours 00-23 and minutes 00-59")
    return int(text)


def percent(value: float, what: str, minimum: int = 0) -> int:
    if not minimum <= value <= 100 or value != int(value):
        raise CommandInvalid(f"{what} {value!r}: a whole percent between {minimum} and 100")
    return int(value)


def mode_of(values: Mapping[str, object]) -> str | None:
    """Which battery mode the registers describe (the reverse of MODES)."""
    eco, discharge, reserve = values.get("battery_power_mode"), values.get("enable_discharge"), \
        values.get("battery_reserve_pct")
    if eco == 1 and discharge is False:
        return "eco_paused" if reserve == 100 else "eco"
    if discharge is True:
        return "timed_demand" if eco == 1 else "timed_export"
    return None


def plan(command: m.CommandBase, plant: Plant, now: datetime | None = None) -> dict[int, int]:
    """The holding-register writes for one command, in order; raises CommandInvalid."""
    match command:
        case m.SetChargeTargetEnabled(enabled=enabled):
            return {20: int(enabled)}
        case m.SetSchedule(which=which, enabled=enabled):
            return {96 if which == "charge" else 59: int(enabled)}
        case m.SetChargeTarget(soc_pct=soc):
            soc = percent(soc, "charge target")
            return {20: 0, 116: 100} if soc == 100 else {20: 1, 116: soc}
        case m.SetBatteryReserve(soc_pct=soc):
            return {110: percent(soc, "battery reserve", RESERVE_MIN_PCT)}
        case m.SetChargeSlot(slot=slot, start=start, end=end, target_soc_pct=target):
            start_reg, end_reg = CHARGE_SLOTS[slot]
            writes = {start_reg: hhmm(start, "slot start"), end_reg: hhmm(end, "slot end")}
            if target is not None:
                writes.update({20: 1, 116: percent(target, "charge target")})
            return writes
        case m.SetDischargeSlot(slot=slot, start=start, end=end, reserve_soc_pct=reserve):
            start_reg, end_reg = DISCHARGE_SLOTS[slot]
            writes = {start_reg: hhmm(start, "slot start"), end_reg: hhmm(end, "slot end")}
            if reserve is not None:
                writes[110] = percent(reserve, "discharge reserve", RESERVE_MIN_PCT)
            return writes
        case m.SetBatteryMode(mode=mode):
            if mode not in MODES:
                raise CommandInvalid(f"battery mode {mode!r}: one of {', '.join(MODES)}")
            return dict(MODES[mode])
        case m.SetClock(time=when):
            local = when.astimezone() if when.tzinfo else when
            if not 2000 <= local.year <= 2099:
                raise CommandInvalid(f"clock {when.isoformat()}: the inverter keeps years 2000-2099")
            return {35: local.year - 2000, 36: local.month, 37: local.day, 38: local.hour, 39: local.minute,
                    40: local.second}
        case m.SetBatteryPowerLimit(direction=direction, power_w=power):
            limit = plant.max_rate_w()
            if power > limit:
                raise CommandInvalid(f"{direction} power {power:g} W: this battery allows at most {limit:g} W")
            return {111 if direction == "charge" else 112: plant.rate_register(power)}
        case m.Restart():
            return {REBOOT_REGISTER: REBOOT_VALUE}
    raise CommandInvalid(f"command {type(command).__name__} is not supported by a GivEnergy inverter")


async def execute(plant: Plant, command: m.CommandBase) -> dict[str, m.ExtraValue]:
    """Write the plan, read the holding registers back, return {register: value} as confirmed."""
    return await write_confirmed(plant, plan(command, plant))


CLOCK_REGISTERS = range(35, 41)
CLOCK_SLACK_S = 5  # the inverter's clock runs on between the write and the read-back


def clock_time(words: Sequence[object]) -> datetime | None:
    """HR 35-40 (year - 2000, month, day, hour, minute, second) as the inverter's local time."""
    y, mo, d, h, mi, s = words
    if not all(isinstance(w, int) and not isinstance(w, bool) for w in words):
        return None
    try:
        return datetime(2000 + int(y), int(mo), int(d), int(h), int(mi), int(s))  # type: ignore[call-overload]
    except ValueError:
        return None


async def write_confirmed(plant: Plant, writes: Mapping[int, int]) -> dict[str, m.ExtraValue]:
    """Write registers in order, read the inverter's holding registers back, return what it holds.

    Only registers on the safe list are written; a value the inverter does not echo or does not
    hold afterwards fails the command (the clock may have run on by a few seconds)."""
    address = plant.config.address
    for register, value in writes.items():
        if register not in WRITABLE:
            raise CommandInvalid(f"register {register} is not on the list of safe registers")
        answer = await plant.dongle.write(address, register, value)
        if answer.value != value:
            raise RuntimeError(f"register {register}: wrote {value}, the inverter echoed {answer.value}")
    if REBOOT_REGISTER in writes:
        return {"hr_163": REBOOT_VALUE}
    await plant.read_map(address, "inverter")  # the read-back: only what the inverter now holds counts
    cache = plant.cache(address)
    applied: dict[str, m.ExtraValue] = {f"hr_{register}": cache.get("hr", register) for register in writes}
    clock = [r for r in writes if r in CLOCK_REGISTERS]
    if len(clock) == len(CLOCK_REGISTERS):
        wrote = clock_time([writes[r] for r in CLOCK_REGISTERS])
        holds = clock_time([cache.get("hr", r) for r in CLOCK_REGISTERS])
        if wrote is None or holds is None or abs((holds - wrote).total_seconds()) > CLOCK_SLACK_S:
            raise RuntimeError(f"clock: wrote {wrote}, read back {holds}")
    for register, value in writes.items():
        if register not in clock and applied[f"hr_{register}"] != value:
            raise RuntimeError(f"register {register}: wrote {value}, read back {applied[f'hr_{register}']}")
    return applied
