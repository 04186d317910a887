"""Bus commands to devices: check the bridge's limits, write, confirm by reading back, answer.

`ok` is only sent after the device reports the new value; a refused command says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from wattbus import messages as m
from wattbus.messages import CommandResult as Result

from .goe import GoeCharger, charging_requested
from .shelly import ShellyDevice
from .transport import DeviceError
from .worker import DeviceWorker


def tag_of(command: m.CommandBase) -> str:
    return str(command.__struct_config__.tag)


def answer(command: m.CommandBase, device_id: str, status: m.CommandStatus, message: str = "",
           applied: dict[str, m.ExtraValue] | None = None) -> Result:
    return Result(status=status, command=tag_of(command), target=device_id, request_id=command.request_id,
                  message=message, applied=applied or {})


async def confirm(worker: DeviceWorker, check: Callable[[], Awaitable[Any]], wanted: Any,
                  given_up: Callable[[], bool] = lambda: False) -> Any:
    """Read back until the device reports `wanted`, `given_up()` (the device said it will not) or
    confirm_timeout_s passes; returns the last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + worker.ctx.config.confirm_timeout_s
    while True:
        value = await check()
        if value == wanted or given_up() or loop.time() >= deadline:
            return value
        await asyncio.sleep(0.2)


async def execute(worker: DeviceWorker, device_id: str, command: m.CommandBase) -> Result:
    adapter = worker.adapter
    if adapter is None or not worker.online:
        return answer(command, device_id, "failed", f"{device_id} is not reachable: {worker.last_error or 'offline'}")
    if tag_of(command) not in adapter.capabilities or device_id != adapter.device_id:
        kind = "charger" if isinstance(adapter, GoeCharger) else "relay" if device_id == adapter.device_id else "meter"
        caps = ", ".join(adapter.capabilities) if device_id == adapter.device_id else "none"
        return answer(command, device_id, "refused",
                      f"{device_id} is a {kind} ({adapter.kind} {adapter.generation}); {tag_of(command)} is not "
                      f"supported (accepts: {caps})")
    try:
        async with worker.lock:
            if isinstance(adapter, GoeCharger):
                return await _charger(worker, adapter, command)
            assert isinstance(adapter, ShellyDevice) and isinstance(command, m.SetRelay)
            return await _relay(worker, adapter, command)
    except DeviceError as exc:
        worker.ctx.counters.inc("commands_failed")
        return answer(command, device_id, "failed", str(exc))


async def _charger(worker: DeviceWorker, goe: GoeCharger, command: m.CommandBase) -> Result:
    dev = goe.device_id
    now = await goe.read_charger()
    match command:
        case m.SetChargeCurrent(current_a=requested):
            device_max = now.extra.get("max_current_a")
            amps, why = worker.guard.current_a(requested, device_max if isinstance(device_max, float) else None)
            if amps is None:
                return answer(command, dev, "refused", f"{dev}: {why}")
            if now.set_current_a != amps:
                await goe.set_current_a(amps)

            async def current() -> float | None:
                return (await goe.read_charger()).set_current_a
            got = await confirm(worker, current, float(amps))
            return _confirmed(command, dev, got == amps, {"set_current_a": got})
        case m.SetCharging(enabled=enabled):
            if charging_requested(now, goe.api) != enabled:
                if why := worker.guard.switch_allowed("charging"):
                    return answer(command, dev, "refused", f"{dev}: {why}")
                await goe.set_charging(enabled)
                worker.guard.note_switch("charging")

            async def requested_state() -> bool | None:
                return charging_requested(await goe.read_charger(), goe.api)
            got = await confirm(worker, requested_state, enabled)
            return _confirmed(command, dev, got == enabled, {"enabled": got})
        case m.SetPhases(phases=phases):
            if now.phases_active != phases or now.extra.get("phase_mode") not in (1, 2):
                if why := worker.guard.switch_allowed("phases"):
                    return answer(command, dev, "refused", f"{dev}: {why}")
                await goe.set_phases(phases)
                worker.guard.note_switch("phases")

            async def phase_mode() -> Any:
                return (await goe.read_charger()).phases_active
            got = await confirm(worker, phase_mode, phases)
            return _confirmed(command, dev, got == phases, {"phases": got})
    return answer(command, dev, "refused", f"{dev}: {tag_of(command)} is not a charger command")


async def _relay(worker: DeviceWorker, shelly: ShellyDevice, command: m.SetRelay) -> Result:
    dev = shelly.device_id
    channels = {int(k.rsplit("/", 1)[1]) for k in worker.latest if k.startswith(f"{dev}/")}
    if command.channel not in channels:
        return answer(command, dev, "refused", f"{dev}: no relay channel {command.channel} "
                      f"(channels: {', '.join(map(str, sorted(channels))) or 'none'})")
    what = f"relay:{command.channel}"
    if await shelly.relay_on(command.channel) != command.on:
        if why := worker.guard.switch_allowed(what):
            return answer(command, dev, "refused", f"{dev}: {why}")
        await shelly.set_relay(command.channel, command.on)
        worker.guard.note_switch(what)

    faults: list[str] = []

    async def state() -> bool:
        on, faults[:] = await shelly.relay_state(command.channel)
        return on
    got = await confirm(worker, state, command.on, lambda: bool(faults))
    if got != command.on and faults:
        return answer(command, dev, "failed", f"{dev}: relay {command.channel} did not stay "
                      f"{'on' if command.on else 'off'}: the device reports {', '.join(faults)} "
                      "(its own protection limit)", {"on": got, "channel": command.channel})
    return _confirmed(command, dev, got == command.on, {"on": got, "channel": command.channel})


def _confirmed(command: m.CommandBase, dev: str, ok: bool, applied: dict[str, m.ExtraValue]) -> Result:
    if ok:
        return answer(command, dev, "ok", "confirmed by reading back", applied)
    return answer(command, dev, "failed", f"{dev}: the device did not report the new value (read back {applied})",
                  applied)
