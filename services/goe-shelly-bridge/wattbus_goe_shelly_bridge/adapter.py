"""The bridge's adapter (wattbus.bridge.Adapter): the go-e Charger or Shelly at one URL.

`identify` asks the URL what answers there (detect.py); a Shelly's devices (its relay block and
each meter) are known from its status, so identifying reads it once and the first `read` returns
that. Commands pass the bridge's own limits first (guard.py: charge current range, switch and
phase-switch intervals), then are written and confirmed by reading back; a Shelly output that
opens again reports its fault (overpower) and the command fails naming it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from wattbus import messages as m
from wattbus.bridge import answer
from wattbus.runner import ServiceContext

from .config import Config, DeviceConfig
from .detect import NotSupported, detect
from .goe import GoeCharger, charging_requested
from .guard import Guard, Limits
from .shelly import ShellyDevice
from .transport import DeviceError, HttpDevice, ResponseRejected

T = TypeVar("T")
CHARGER_V2: tuple[type[m.CommandBase], ...] = (m.SetChargeCurrent, m.SetCharging, m.SetPhases)
CHARGER_V1: tuple[type[m.CommandBase], ...] = (m.SetChargeCurrent, m.SetCharging)


class HttpAdapter:
    errors: tuple[type[Exception], ...] = (DeviceError,)

    def __init__(self, ctx: ServiceContext[Config], cfg: DeviceConfig, password: str | None) -> None:
        self.ctx, self.cfg = ctx, cfg
        self.http = HttpDevice(cfg.url, timeout_s=ctx.config.timeout_s, username=cfg.username, password=password)
        self.guard = Guard(Limits(cfg.max_current_a, cfg.min_current_a, cfg.min_switch_interval_s,
                                  cfg.min_phase_switch_interval_s))
        self.device: GoeCharger | ShellyDevice | None = None
        self.commands: tuple[type[m.CommandBase], ...] = ()
        self.metas: list[m.DeviceMeta] = []
        self.relays: set[int] = set()  # the relay channels the Shelly has reported
        self._unread: list[m.ReadingBase] | None = None  # the status identify read, not yet returned

    @property
    def device_id(self) -> str:
        return self.metas[0].device_id if self.metas else ""

    async def identify(self) -> list[m.DeviceMeta]:
        """What answers at the URL; until something does, the metas stay those of the last device."""
        device = await self._counted(detect(self.http))
        readings = await self._counted(device.read()) if isinstance(device, ShellyDevice) else []
        self.ctx.log.info("device detected", url=self.cfg.url, kind=device.kind, api=device.generation,
                          device=device.device_id)
        self.device, self.relays, self.metas = device, set(), []
        if isinstance(device, GoeCharger):
            self.commands = CHARGER_V2 if device.api == "v2" else CHARGER_V1
            self.metas = device.metas(self.ctx.name)
        else:
            self._unread = self._shelly_seen(device, readings)
        return self.metas

    async def read(self) -> list[m.ReadingBase]:
        if self.device is None:  # another device answered at this address: find out which
            await self.identify()
        device = self.device
        assert device is not None
        if self._unread is not None:
            readings, self._unread = self._unread, None
            return readings
        try:
            readings = await self._counted(device.read())
        except DeviceError as exc:
            if isinstance(exc, NotSupported) or "serial changed" in str(exc):
                self.device = None  # detect again at the next poll: maybe another device took the address
            raise
        if isinstance(device, ShellyDevice):
            return self._shelly_seen(device, readings)
        return [self._with_limits(r) if isinstance(r, m.ChargerReading) else r for r in readings]

    async def _counted(self, step: Awaitable[T]) -> T:
        try:
            return await step
        except (ResponseRejected, NotSupported):  # it answered, with something unusable: told apart from silence
            self.ctx.counters.inc("responses_rejected")
            raise

    def _shelly_seen(self, shelly: ShellyDevice, readings: list[m.ReadingBase]) -> list[m.ReadingBase]:
        """Readings of a Shelly, after noting its relay channels and any device id not seen before."""
        self.relays |= {r.channel for r in readings if isinstance(r, m.RelayReading)}
        known = {meta.device_id for meta in self.metas}
        self.metas += [meta for meta in shelly.metas(self.ctx.name, readings) if meta.device_id not in known]
        self.commands = (m.SetRelay,) if self.relays else ()
        return readings

    def _with_limits(self, reading: m.ChargerReading) -> m.ChargerReading:
        """The charge current range this bridge accepts, as extras (limit_min/max_current_a)."""
        device_max = reading.extra.get("max_current_a")
        low, high = self.guard.current_range_a(float(device_max) if isinstance(device_max, int | float)
                                               and not isinstance(device_max, bool) else None)
        return msgspec.structs.replace(reading, extra={**reading.extra, "limit_min_current_a": low,
                                                        "limit_max_current_a": high})

    async def close(self) -> None:
        await self.http.close()

    # ------------------------------------------------------------------ commands

    async def execute(self, command: m.CommandBase) -> m.CommandResult:
        """Within the bridge's limits, written, then confirmed by reading back (DeviceError: failed)."""
        if isinstance(self.device, GoeCharger):
            return await self._charger(self.device, command)
        if isinstance(self.device, ShellyDevice) and isinstance(command, m.SetRelay):
            return await self._relay(self.device, command)
        return answer(command, self.device_id, "refused", f"{self.device_id} does not take this command")

    async def _confirm(self, check: Callable[[], Awaitable[Any]], wanted: Any,
                       given_up: Callable[[], bool] = lambda: False) -> Any:
        """Read back until the device reports `wanted`, `given_up()` (the device said it will not) or
        confirm_timeout_s passes; returns the last value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ctx.config.confirm_timeout_s
        while True:
            value = await check()
            if value == wanted or given_up() or loop.time() >= deadline:
                return value
            await asyncio.sleep(0.2)

    async def _charger(self, goe: GoeCharger, command: m.CommandBase) -> m.CommandResult:
        dev = goe.device_id
        now = await goe.read_charger()
        match command:
            case m.SetChargeCurrent(current_a=requested):
                device_max = now.extra.get("max_current_a")
                amps, why = self.guard.current_a(requested, device_max if isinstance(device_max, float) else None)
                if amps is None:
                    return answer(command, dev, "refused", f"{dev}: {why}")
                if now.set_current_a != amps:
                    await goe.set_current_a(amps)

                async def current() -> float | None:
                    return (await goe.read_charger()).set_current_a
                got = await self._confirm(current, float(amps))
                return _confirmed(command, dev, got == amps, {"set_current_a": got})
            case m.SetCharging(enabled=enabled):
                if charging_requested(now, goe.api) != enabled:
                    if why := self.guard.switch_allowed("charging"):
                        return answer(command, dev, "refused", f"{dev}: {why}")
                    await goe.set_charging(enabled)
                    self.guard.note_switch("charging")

                async def requested_state() -> bool | None:
                    return charging_requested(await goe.read_charger(), goe.api)
                got = await self._confirm(requested_state, enabled)
                return _confirmed(command, dev, got == enabled, {"enabled": got})
            case m.SetPhases(phases=phases):
                if now.phases_active != phases or now.extra.get("phase_mode") not in (1, 2):
                    if why := self.guard.switch_allowed("phases"):
                        return answer(command, dev, "refused", f"{dev}: {why}")
                    await goe.set_phases(phases)
                    self.guard.note_switch("phases")

                async def phase_mode() -> Any:
                    return (await goe.read_charger()).phases_active
                got = await self._confirm(phase_mode, phases)
                return _confirmed(command, dev, got == phases, {"phases": got})
        return answer(command, dev, "refused", f"{dev}: not a charger command")

    async def _relay(self, shelly: ShellyDevice, command: m.SetRelay) -> m.CommandResult:
        dev = shelly.device_id
        if command.channel not in self.relays:
            return answer(command, dev, "refused", f"{dev}: no relay channel {command.channel} "
                          f"(channels: {', '.join(map(str, sorted(self.relays))) or 'none'})")
        what = f"relay:{command.channel}"
        if await shelly.relay_on(command.channel) != command.on:
            if why := self.guard.switch_allowed(what):
                return answer(command, dev, "refused", f"{dev}: {why}")
            await shelly.set_relay(command.channel, command.on)
            self.guard.note_switch(what)

        faults: list[str] = []

        async def state() -> bool:
            on, faults[:] = await shelly.relay_state(command.channel)
            return on
        got = await self._confirm(state, command.on, lambda: bool(faults))
        if got != command.on and faults:
            return answer(command, dev, "failed", f"{dev}: relay {command.channel} did not stay "
                          f"{'on' if command.on else 'off'}: the device reports {', '.join(faults)} "
                          "(its own protection limit)", {"on": got, "channel": command.channel})
        return _confirmed(command, dev, got == command.on, {"on": got, "channel": command.channel})


def _confirmed(command: m.CommandBase, dev: str, ok: bool, applied: dict[str, m.ExtraValue]) -> m.CommandResult:
    if ok:
        return answer(command, dev, "ok", "confirmed by reading back", applied)
    return answer(command, dev, "failed", f"{dev}: the device did not report the new value (read back {applied})",
                  applied)
