"""GivTCP's control functions: payloads to contract commands, and GivTCP's own timed functions.

A GivTCP-shaped request on the device's command topic (`{"givtcp": "setChargeSlot1", "start":
"0100", "finish": "0400"}`, numbers as text as GivTCP sends them; http-api's GivTCP REST sends
these) becomes a contract command where one exists. GivTCP's functions without a contract
counterpart run here: `enableDischarge` (reserve 100 % pauses discharge, the saved reserve
resumes it) and the timed ones `forceCharge`, `forceExport`, `tempPauseCharge`,
`tempPauseDischarge` ({"duration": minutes or "Cancel"}): they write their registers, and after
the duration write back what the inverter held before. Writes are {point name: word} over the
inverter map's names; every one goes through controls.write_confirmed (writable points only, read
back).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from wattbus import messages as m
from wattbus.log import Logger

from .controls import RESERVE_MIN_PCT, CommandInvalid, clock_time, hhmm, inverter_map, percent
from .dongle import DongleError
from .givtcp import MODE_NAMES, MODE_NUMBERS
from .plant import MAX_RATE, Plant

TIMED_FUNCTIONS = {"forceCharge": "Force_Charge", "forceExport": "Force_Export",
                   "tempPauseCharge": "Temp_Pause_Charge", "tempPauseDischarge": "Temp_Pause_Discharge"}
MAX_DURATION_MIN = 1440
REVERT_RETRIES, REVERT_RETRY_S = 5, 30.0


class GivAction(m.CommandBase, frozen=True, tag="givtcp"):
    """A GivTCP function the bridge runs itself (no contract command carries it); only this
    bridge's decoder makes one, the contract's command union does not know it."""

    name: str
    enable: bool = True  # enableDischarge
    minutes: int | None = None  # timed functions; None = Cancel


def _text(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if value is None:
        raise CommandInvalid(f"{key} is required")
    return str(value).strip()


def _text_percent(payload: Mapping[str, Any], key: str, what: str, minimum: int = 0) -> int:
    raw = _text(payload, key)
    try:
        number = float(raw)
    except ValueError:
        raise CommandInvalid(f"{key} {raw!r}: {what} must be a number") from None
    return percent(number, what, minimum)


def _state(payload: Mapping[str, Any], default: str | None = None) -> bool:
    """GivTCP's {"state": "enable" | "disable"}."""
    raw = payload.get("state", default)
    if raw not in ("enable", "disable"):
        raise CommandInvalid(f"state {raw!r}: \"enable\" or \"disable\"")
    return bool(raw == "enable")


def _mode(payload: Mapping[str, Any]) -> m.BatteryMode:
    """GivTCP's mode names ("Eco", "Timed Export"...) and its old numbers 1-4."""
    raw = _text(payload, "mode")
    by_name = {name.lower(): mode for mode, name in MODE_NAMES.items()}
    if raw.lower() in by_name:
        return by_name[raw.lower()]  # type: ignore[return-value]
    if raw.isdigit() and int(raw) in MODE_NUMBERS:
        return MODE_NUMBERS[int(raw)]  # type: ignore[return-value]
    raise CommandInvalid(f"mode {raw!r}: battery mode must be one of {', '.join(MODE_NAMES.values())} "
                         "(or 1, 2, 3, 4)")


def _duration(payload: Mapping[str, Any]) -> int | None:
    raw = _text(payload, "duration")
    if raw.lower() == "cancel":
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_DURATION_MIN:
        raise CommandInvalid(f"duration {raw!r}: whole minutes from 1 to {MAX_DURATION_MIN}, or \"Cancel\"")
    return int(raw)


def _slot(payload: Mapping[str, Any], name: str, rid: str | None) -> m.CommandBase:
    start = f"{hhmm(_text(payload, 'start').replace(':', ''), 'start'):04d}"
    end = f"{hhmm(_text(payload, 'finish').replace(':', ''), 'finish'):04d}"
    slot = int(name[-1])
    if name.startswith("setCharge"):
        target = _text_percent(payload, "chargeToPercent", "charge target", 4) if "chargeToPercent" in payload \
            else None
        return m.SetChargeSlot(slot=slot, start=start, end=end, target_soc_pct=target, request_id=rid)
    reserve = _text_percent(payload, "dischargeToPercent", "discharge reserve", 4) \
        if "dischargeToPercent" in payload else None
    return m.SetDischargeSlot(slot=slot, start=start, end=end, reserve_soc_pct=reserve, request_id=rid)


def from_givtcp(payload: Mapping[str, Any]) -> m.CommandBase | GivAction:
    """Translate a GivTCP control request; raises CommandInvalid naming the field."""
    name = payload.get("givtcp")
    rid = payload.get("request_id") if isinstance(payload.get("request_id"), str) else None
    simple: dict[str, m.CommandBase] = {
        "disableChargeTarget": m.SetChargeTargetEnabled(enabled=False, request_id=rid),
        "pauseChargeSchedule": m.SetSchedule(which="charge", enabled=False, request_id=rid),
        "resumeChargeSchedule": m.SetSchedule(which="charge", enabled=True, request_id=rid),
        "pauseDischargeSchedule": m.SetSchedule(which="discharge", enabled=False, request_id=rid),
        "resumeDischargeSchedule": m.SetSchedule(which="discharge", enabled=True, request_id=rid),
    }
    if isinstance(name, str) and name in simple:
        return simple[name]
    if isinstance(name, str) and name in TIMED_FUNCTIONS:
        return GivAction(name, minutes=_duration(payload), request_id=rid)
    match name:
        case "enableChargeTarget":  # GivTCP 1.x had no payload; later {"state": ...}
            return m.SetChargeTargetEnabled(enabled=_state(payload, "enable"), request_id=rid)
        case "enableChargeSchedule" | "enableDischargeSchedule":
            return m.SetSchedule(which="charge" if name == "enableChargeSchedule" else "discharge",
                                 enabled=_state(payload), request_id=rid)
        case "enableDischarge":
            return GivAction(name, enable=_state(payload), request_id=rid)
        case "setChargeTarget":
            return m.SetChargeTarget(soc_pct=_text_percent(payload, "chargeToPercent", "charge target", 4),
                                     request_id=rid)
        case "setBatteryReserve":  # GivTCP 2+: reservePercent; 1.x: dischargeToPercent
            key = "reservePercent" if "reservePercent" in payload else "dischargeToPercent"
            return m.SetBatteryReserve(soc_pct=_text_percent(payload, key, "battery reserve", RESERVE_MIN_PCT),
                                       request_id=rid)
        case "setChargeSlot1" | "setChargeSlot2" | "setDischargeSlot1" | "setDischargeSlot2":
            return _slot(payload, name, rid)
        case "setBatteryMode":
            return m.SetBatteryMode(mode=_mode(payload), request_id=rid)
        case "setDateTime":
            text = _text(payload, "dateTime")
            try:
                when = datetime.strptime(text, "%d/%m/%Y %H:%M:%S")
            except ValueError:
                raise CommandInvalid(f"dateTime {text!r}: use dd/mm/yyyy hh:mm:ss") from None
            return m.SetClock(time=when, request_id=rid)
        case "setChargeRate" | "setDischargeRate":
            key = "chargeRate" if name == "setChargeRate" else "dischargeRate"
            try:
                watts = float(_text(payload, key))
            except ValueError:
                raise CommandInvalid(f"{key}: the rate must be a number of watts") from None
            if not 0 <= watts <= 20000:
                raise CommandInvalid(f"{key} {watts:g} W: between 0 and 20000 W")
            return m.SetBatteryPowerLimit(direction="charge" if name == "setChargeRate" else "discharge",
                                          power_w=watts, request_id=rid)
    raise CommandInvalid(f"givtcp function {name!r} is not one of GivTCP's control functions")


# --------------------------------------------------------------------------- the bridge's own functions

Writer = Callable[[Plant, Mapping[str, int]], Awaitable[dict[str, m.ExtraValue]]]
Guard = Callable[[Plant], AbstractAsyncContextManager[object]]


def _hhmm(when: datetime) -> int:
    return when.hour * 100 + when.minute


def _inverter_now(plant: Plant) -> datetime:
    """The inverter's clock (slots run on it); the host's local time when it cannot be read."""
    v = plant.inverter_values()
    clock = clock_time([v[f"clock_{k}"] for k in ("year", "month", "day", "hour", "minute", "second")])
    return clock if clock is not None and clock.year != 2000 else datetime.now()


def timed_writes(name: str, plant: Plant, minutes: int) -> dict[str, int]:
    """The points one timed function sets (what it overrides is saved before)."""
    start = _inverter_now(plant)
    slot = (_hhmm(start), _hhmm(start + timedelta(minutes=minutes)))
    match name:
        case "forceCharge":  # charge slot 1 from now, to 100 %, at the full rate
            return {"charge_slot_1_start": slot[0], "charge_slot_1_end": slot[1], "enable_charge_target": 0,
                    "charge_target_pct": 100, "battery_charge_limit": MAX_RATE, "enable_charge": 1}
        case "forceExport":  # discharge slot 1 from now, timed export at the full rate
            return {"discharge_slot_1_start": slot[0], "discharge_slot_1_end": slot[1],
                    "battery_discharge_limit": MAX_RATE, "battery_power_mode": 0, "enable_discharge": 1}
        case "tempPauseCharge":
            return {"battery_charge_limit": 0}
    return {"battery_discharge_limit": 0}  # tempPauseDischarge


@dataclass
class Running:
    plant: Plant
    restore: dict[str, int]
    until: datetime
    task: asyncio.Task[None] | None = None


@dataclass
class GivFunctions:
    """The timed functions running per inverter, and the reserve enableDischarge restores.

    `write` is called with the plant's poll lock already held when a command runs; the later
    restore takes it through `guard` (a poll and a write never interleave)."""

    write: Writer
    log: Logger
    guard: Guard | None = None
    running: dict[tuple[int, str], Running] = field(default_factory=dict)
    saved_reserve: dict[int, int] = field(default_factory=dict)

    def minutes_left(self, plant: Plant) -> dict[str, int]:
        now = datetime.now()
        return {TIMED_FUNCTIONS[name]: max(0, round((run.until - now).total_seconds() / 60))
                for (pid, name), run in self.running.items() if pid == id(plant)}

    async def run(self, plant: Plant, action: GivAction) -> tuple[dict[str, m.ExtraValue], str]:
        """Execute one action; returns the registers read back and what happened."""
        if action.name == "enableDischarge":
            return await self._enable_discharge(plant, action.enable)
        key = (id(plant), action.name)
        current = self.running.get(key)
        if action.minutes is None:
            if current is None:
                return {}, f"{action.name} was not running"
            return await self._stop(plant, action.name, current), f"{action.name} cancelled, settings restored"
        writes = timed_writes(action.name, plant, action.minutes)
        restore = current.restore if current else self._saved(plant, writes)  # a rerun keeps the first state
        applied = await self.write(plant, writes)
        if current and current.task:
            current.task.cancel()
        run = Running(plant, restore, datetime.now() + timedelta(minutes=action.minutes))
        self.running[key] = run
        run.task = asyncio.create_task(self._revert_later(plant, action.name, run, action.minutes * 60.0))
        return applied, f"{action.name} for {action.minutes} minutes"

    def _saved(self, plant: Plant, writes: Mapping[str, int]) -> dict[str, int]:
        cache, table = plant.cache(plant.config.address), inverter_map()
        saved = {name: cache.get("hr", table.point(name).address) for name in writes}
        missing = [r for r, v in saved.items() if v is None]
        if missing:
            raise CommandInvalid(f"{missing} not read from the inverter yet: cannot save them for later")
        return {r: v for r, v in saved.items() if v is not None}

    async def _enable_discharge(self, plant: Plant, enable: bool) -> tuple[dict[str, m.ExtraValue], str]:
        reserve = plant.inverter_values().get("battery_reserve_pct")
        if not enable:
            if isinstance(reserve, int) and reserve < 100:
                self.saved_reserve[id(plant)] = reserve  # what enable restores, as GivTCP does
            return await self.write(plant, {"battery_reserve_pct": 100}), "discharge paused (reserve 100 %)"
        back = self.saved_reserve.get(id(plant), RESERVE_MIN_PCT)
        return await self.write(plant, {"battery_reserve_pct": back}), f"discharge enabled (reserve {back} %)"

    async def _stop(self, plant: Plant, name: str, run: Running) -> dict[str, m.ExtraValue]:
        if run.task and run.task is not asyncio.current_task():
            run.task.cancel()
        applied = await self.write(plant, run.restore)
        self.running.pop((id(plant), name), None)
        return applied

    async def _revert_later(self, plant: Plant, name: str, run: Running, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        for attempt in range(1, REVERT_RETRIES + 1):
            try:
                async with self._guarded(plant):
                    await self._stop(plant, name, run)
                self.log.info("GivTCP timed function over, settings restored", function=name)
                return
            except (RuntimeError, CommandInvalid, DongleError) as exc:
                self.log.warning("restoring after a timed function failed", function=name, attempt=attempt,
                                 error=str(exc))
                await asyncio.sleep(REVERT_RETRY_S)
        self.log.error("settings not restored after a timed function", function=name, registers=run.restore)

    def _guarded(self, plant: Plant) -> AbstractAsyncContextManager[object]:
        return self.guard(plant) if self.guard is not None else contextlib.nullcontext()

    async def close(self) -> None:
        """On shutdown the inverter gets its settings back (it would stay forced otherwise); the
        dongle connections this opened again after the pollers stopped are closed."""
        plants = {id(run.plant): run.plant for run in self.running.values()}
        for (_pid, name), run in list(self.running.items()):
            try:
                async with self._guarded(run.plant):
                    await self._stop(run.plant, name, run)
            except (RuntimeError, CommandInvalid, DongleError) as exc:
                self.log.warning("settings not restored at shutdown", function=name, registers=run.restore,
                                 error=str(exc))
        for plant in plants.values():
            await plant.dongle.close()
