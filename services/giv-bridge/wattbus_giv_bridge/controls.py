"""Bus commands to holding-register writes: validate, write, read back, confirm.

Every control in GivTCP's table maps to a contract command (see docs in README of the service):
enable/disableChargeTarget -> set_charge_target_enabled, pause/resume(Dis)ChargeSchedule ->
set_schedule, setChargeTarget, setBatteryReserve, setChargeSlot1/2, setDischargeSlot1/2,
setBatteryMode 1-4, setDateTime -> set_clock, charge/discharge rate -> set_battery_power_limit.
A plan is {point name: raw word} over the names data/inverter.toml defines; the battery modes and
the restart are recipes there, and only the points it lists as writable are ever written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from wattbus import messages as m

from . import regmap
from .plant import Plant

COMMANDS: tuple[type[m.CommandBase], ...] = (
    m.SetChargeTargetEnabled, m.SetSchedule, m.SetChargeTarget, m.SetBatteryReserve, m.SetChargeSlot,
    m.SetDischargeSlot, m.SetBatteryMode, m.SetClock, m.SetBatteryPowerLimit, m.Restart)
RESERVE_MIN_PCT = 4  # the inverter refuses (or misbehaves) below 4 % (the eco recipe puts it back)
CLOCK = ("clock_year", "clock_month", "clock_day", "clock_hour", "clock_minute", "clock_second")
RESTART = "restart"


def inverter_map() -> regmap.RegisterMap:
    return regmap.load("inverter")


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
    """Which battery mode the registers describe (the reverse of the mode recipes)."""
    eco, discharge, reserve = values.get("battery_power_mode"), values.get("enable_discharge"), \
        values.get("battery_reserve_pct")
    if eco == 1 and discharge is False:
        return "eco_paused" if reserve == 100 else "eco"
    if discharge is True:
        return "timed_demand" if eco == 1 else "timed_export"
    return None


def _slot(kind: str, slot: int, start: str, end: str) -> dict[str, int]:
    return {f"{kind}_slot_{slot}_start": hhmm(start, "slot start"), f"{kind}_slot_{slot}_end": hhmm(end, "slot end")}


def plan(command: m.CommandBase, plant: Plant, now: datetime | None = None) -> dict[str, int]:
    """The writes for one command, {point: raw word} in order; raises CommandInvalid."""
    match command:
        case m.SetChargeTargetEnabled(enabled=enabled):
            return {"enable_charge_target": int(enabled)}
        case m.SetSchedule(which=which, enabled=enabled):
            return {"enable_charge" if which == "charge" else "enable_discharge": int(enabled)}
        case m.SetChargeTarget(soc_pct=soc):
            soc = percent(soc, "charge target")
            return {"enable_charge_target": int(soc != 100), "charge_target_pct": soc}
        case m.SetBatteryReserve(soc_pct=soc):
            return {"battery_reserve_pct": percent(soc, "battery reserve", RESERVE_MIN_PCT)}
        case m.SetChargeSlot(slot=slot, start=start, end=end, target_soc_pct=target):
            writes = _slot("charge", slot, start, end)
            if target is not None:
                writes.update({"enable_charge_target": 1, "charge_target_pct": percent(target, "charge target")})
            return writes
        case m.SetDischargeSlot(slot=slot, start=start, end=end, reserve_soc_pct=reserve):
            writes = _slot("discharge", slot, start, end)
            if reserve is not None:
                writes["battery_reserve_pct"] = percent(reserve, "discharge reserve", RESERVE_MIN_PCT)
            return writes
        case m.SetBatteryMode(mode=mode):
            if mode not in inverter_map().recipes:
                raise CommandInvalid(f"battery mode {mode!r}: one of eco, eco_paused, timed_demand, timed_export")
            return inverter_map().recipe(mode)
        case m.SetClock(time=when):
            local = when.astimezone() if when.tzinfo else when
            if not 2000 <= local.year <= 2099:
                raise CommandInvalid(f"clock {when.isoformat()}: the inverter keeps years 2000-2099")
            words = (local.year - 2000, local.month, local.day, local.hour, local.minute, local.second)
            return dict(zip(CLOCK, words, strict=True))
        case m.SetBatteryPowerLimit(direction=direction, power_w=power):
            limit = plant.max_rate_w()
            if power > limit:
                raise CommandInvalid(f"{direction} power {power:g} W: this battery allows at most {limit:g} W")
            point = "battery_charge_limit" if direction == "charge" else "battery_discharge_limit"
            return {point: plant.rate_register(power)}
        case m.Restart():
            return inverter_map().recipe(RESTART)
    raise CommandInvalid(f"command {type(command).__name__} is not supported by a GivEnergy inverter")


async def execute(plant: Plant, command: m.CommandBase) -> dict[str, m.ExtraValue]:
    """Write the plan, read the holding registers back, return {register: value} as confirmed."""
    return await write_confirmed(plant, plan(command, plant))


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


async def write_confirmed(plant: Plant, writes: Mapping[str, int]) -> dict[str, m.ExtraValue]:
    """Write points in order, read the inverter's holding registers back, return what it holds
    ({"hr_<register>": word}, GivTCP's register view).

    Only points the map lists as writable are written; a value the inverter does not echo or does
    not hold afterwards fails the command (the clock may have run on by a few seconds)."""
    address, registers = plant.config.address, _registers(writes)
    for name, value in writes.items():
        answer = await plant.dongle.write(address, registers[name], value)
        if answer.value != value:
            raise RuntimeError(f"{name} (register {registers[name]}): wrote {value}, the inverter echoed "
                               f"{answer.value}")
    if RESTART in writes:  # the inverter restarts: nothing to read back
        return {f"hr_{registers[RESTART]}": writes[RESTART]}
    await plant.read_map(address, "inverter")  # the read-back: only what the inverter now holds counts
    cache = plant.cache(address)
    applied: dict[str, m.ExtraValue] = {f"hr_{registers[name]}": cache.get("hr", registers[name]) for name in writes}
    clock = [name for name in writes if name in CLOCK]
    if len(clock) == len(CLOCK):
        wrote = clock_time([writes[name] for name in CLOCK])
        holds = clock_time([cache.get("hr", registers[name]) for name in CLOCK])
        if wrote is None or holds is None or abs((holds - wrote).total_seconds()) > CLOCK_SLACK_S:
            raise RuntimeError(f"clock: wrote {wrote}, read back {holds}")
    for name, value in writes.items():
        held = applied[f"hr_{registers[name]}"]
        if name not in clock and held != value:
            raise RuntimeError(f"{name} (register {registers[name]}): wrote {value}, read back {held}")
    return applied


def _registers(writes: Mapping[str, int]) -> dict[str, int]:
    """Each point's holding register; CommandInvalid for a point that is not on the safe list."""
    table = inverter_map()
    for name in writes:
        if name not in table.writable:
            raise CommandInvalid(f"{name!r} is not on the inverter map's list of writable points")
    return {name: table.point(name).address for name in writes}
