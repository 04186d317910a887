"""The service: one task per endpoint finds its units, one task per unit polls it."""

from __future__ import annotations

import asyncio
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.adoption import Adoption, Decision
from wattbus.bus import Message
from wattbus.commands import RecentCommands, request_key
from wattbus.runner import ServiceContext

from . import commands
from .config import Config, DeviceConfig
from .devices import Device, ProfileDevice, SunSpecDevice, poll_forever
from .link import Endpoint, Link, LinkError
from .profile import ProfileError, load_profile, read_serial
from .scan import DEFAULT_UNITS, NotSunSpec, scan


def endpoint_of(cfg: DeviceConfig) -> Endpoint:
    return Endpoint(cfg.host, cfg.port, cfg.serial_port, cfg.baudrate, cfg.parity, cfg.stopbits)


class Bridge:
    def __init__(self, ctx: ServiceContext[Config]) -> None:
        self.ctx = ctx
        self.devices: dict[str, Device] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.pollers: dict[str, asyncio.Task[None]] = {}
        self.adopted: dict[str, asyncio.Task[None]] = {}  # announced device id -> its endpoint task
        self.polled_as: dict[str, str] = {}  # announced device id -> id the device reported itself
        self.recent = RecentCommands(ctx.counters)  # a redelivered request is answered, not executed again
        self.adoption = Adoption(["sunspec"], enabled=ctx.config.adopt, deny=ctx.config.deny,
                                 counters=ctx.counters, log=ctx.log.child("adoption"))

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def _start(self, device: Device, adopted_as: str | None = None) -> None:
        if adopted_as is None:
            # A configured device: config wins over any announcement of the same id.
            self.adoption.pin(device.device_id)
            self._drop_adopted(device.device_id)
        else:
            if self.adoption.is_pinned(device.device_id):
                self.ctx.log.info("announced device is configured: config wins", device=device.device_id)
                self.adopted.pop(adopted_as, None)  # its endpoint task ends by itself: nothing left to probe
                self.adoption.forget(adopted_as)
                return
            if device.device_id != adopted_as:
                self.ctx.log.warning("announced device reports another id", announced=adopted_as,
                                     device=device.device_id)
            self.polled_as[adopted_as] = device.device_id
        old = self.pollers.pop(device.device_id, None)
        if old is not None:
            old.cancel()
        self.devices[device.device_id] = device
        self.pollers[device.device_id] = self._spawn(poll_forever(device), f"poll-{device.device_id}")

    def _drop_adopted(self, device_id: str) -> None:
        if self._stop_adopted(device_id):
            self.adoption.forget(device_id)

    def _stop_adopted(self, announced_id: str) -> bool:
        task = self.adopted.pop(announced_id, None)
        if task is None:
            return False
        task.cancel()
        poller = self.pollers.pop(self.polled_as.pop(announced_id, announced_id), None)
        if poller is not None:
            poller.cancel()
        return True

    def adopt(self, decision: Decision) -> None:
        """Poll an announced device; on a move (DHCP) the old endpoint and poller stop first."""
        ann, target = decision.announcement, decision.target
        self._stop_adopted(ann.device_id)
        cfg = DeviceConfig(host=target.host, port=target.port or 502,
                           unit_ids=[target.unit_id] if target.unit_id is not None else list(DEFAULT_UNITS))
        self.adopted[ann.device_id] = self._spawn(self.endpoint(cfg, ann.device_id), f"adopted-{ann.device_id}")

    async def _probe(self, cfg: DeviceConfig, link: Link, unit: int) -> Device | None:
        if cfg.protocol != "sunspec":
            profile = load_profile(cfg.protocol, self.ctx.config.profiles_dir)
            serial = cfg.serial or await read_serial(link, unit, profile)
            return ProfileDevice(self.ctx, cfg, link, unit, profile, serial or f"{link.endpoint}-{unit}")
        dmap = await scan(link, unit, tuple(cfg.base_addresses), cfg.probe_timeout_s)
        device = SunSpecDevice(self.ctx, cfg, link, dmap)
        await device.poll()  # announces the device (id from its common model) and publishes a first reading
        device.succeeded()
        return device

    async def endpoint(self, cfg: DeviceConfig, adopted_as: str | None = None) -> None:
        """Probe every configured unit id; probe the missing ones again every rescan interval."""
        link = Link(endpoint_of(cfg), cfg.timeout_s)
        units = cfg.unit_ids if cfg.protocol == "sunspec" else cfg.unit_ids[:1]
        found: set[int] = set()
        delay = self.ctx.config.poll_interval_s
        while True:
            for unit in units:
                if unit in found:
                    continue
                try:
                    device = await self._probe(cfg, link, unit)
                except NotSunSpec as exc:
                    self.ctx.log.info("no SunSpec device", address=f"{link.endpoint}/{unit}", reason=str(exc))
                    continue
                except LinkError as exc:
                    self.ctx.counters.inc("probe_failures")
                    self.ctx.log.warning("probe failed", address=f"{link.endpoint}/{unit}", error=str(exc))
                    if exc.exception_code is None and not found:
                        break  # nothing answers on this endpoint: back off instead of timing out per unit
                    continue
                if device is not None:
                    found.add(unit)
                    self.ctx.log.info("device found", device=device.device_id, address=f"{link.endpoint}/{unit}")
                    self._start(device, adopted_as)
            if len(found) == len(units):
                return
            # Nothing (or not everything) answered: retry sooner while nothing works, slowly later.
            wait = self.ctx.config.rescan_interval_s if found else delay
            delay = min(delay * 2, self.ctx.config.max_backoff_s)
            if not await self.ctx.sleep(wait):
                return

    async def on_command(self, msg: Message[Any]) -> None:
        parsed = topics.parse(msg.topic)
        target = parsed.ident or ""
        command = msg.payload
        device = self.devices.get(target)
        if not isinstance(device, SunSpecDevice):
            self.ctx.counters.inc("commands_refused")
            tag = command.__struct_config__.tag
            result = m.CommandResult(status="refused", command=tag if isinstance(tag, str) else None, target=target,
                                     request_id=command.request_id,
                                     message=f"{target!r} is not a SunSpec device of this bridge")
        else:
            sunspec = device
            result, _ = await self.recent.once(request_key(msg, command.request_id),
                                               lambda: commands.execute(sunspec, command))
        self.ctx.bus.respond(msg, result, topics.device_result(self.ctx.name, topics.slug(target) or "unknown"))


async def run(ctx: ServiceContext[Config]) -> None:
    bridge = Bridge(ctx)
    for cfg in ctx.config.devices:
        if cfg.protocol != "sunspec":
            try:
                load_profile(cfg.protocol, ctx.config.profiles_dir)
            except ProfileError as exc:
                ctx.counters.inc("config_errors")
                ctx.log.error("device skipped", error=str(exc))
                continue
        if not cfg.host and not cfg.serial_port:
            ctx.counters.inc("config_errors")
            ctx.log.error("device skipped: set host or serial_port", device=str(cfg))
            continue
        if cfg.host:
            bridge.adoption.pin(f"{cfg.host}:{cfg.port}", cfg.serial)
        bridge._spawn(bridge.endpoint(cfg), f"endpoint-{cfg.host or cfg.serial_port}")
    ctx.bus.subscribe(topics.commands_for(ctx.name), m.Command, bridge.on_command)
    bridge.adoption.subscribe(ctx.bus, bridge.adopt)
    if not ctx.config.devices and not ctx.config.adopt:
        ctx.log.warning("no devices configured: add [[sunspec-bridge.devices]] entries")
    await ctx.stopping.wait()
    for task in list(bridge.tasks):
        task.cancel()
