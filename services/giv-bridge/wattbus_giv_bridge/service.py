"""The service: a finder per dongle identifies the inverter, the toolkit polls it and routes commands.

Configured dongles are pinned (address, then serial and device id once read): an announcement of
one is not adopted, and an adopted poller of the same inverter stops (the fleet: config wins). An
announced inverter moving to a new address (DHCP) keeps its device id; the fleet stops the old
poller before the new one starts, so the dongle never has two clients of this bridge.
"""

from __future__ import annotations

import asyncio
from typing import Any

from wattbus import codec
from wattbus import messages as m
from wattbus.adoption import Adoption, Decision
from wattbus.bridge import CommandRouter, Fleet, Poller
from wattbus.bridge.poller import GARBAGE, worth_logging
from wattbus.runner import ServiceContext

from . import controls
from .adapter import GivAdapter
from .config import Config, InverterConfig
from .dongle import Dongle, DongleError
from .givtcp_control import GivFunctions, from_givtcp
from .plant import Plant


def decode(payload: bytes) -> m.CommandBase:
    """A contract command, or a GivTCP-shaped request ({"givtcp": "setChargeSlot1", ...})."""
    raw: Any = codec.decode(payload, Any)  # PayloadError for anything that is not JSON text
    if isinstance(raw, dict) and "givtcp" in raw:
        try:
            return from_givtcp(raw)
        except controls.CommandInvalid as exc:
            raise codec.PayloadError(str(exc)) from exc
    command: m.CommandBase = codec.decode_command(payload)
    return command


class GivBridge:
    def __init__(self, ctx: ServiceContext[Config]) -> None:
        self.ctx = ctx
        cfg = ctx.config
        self.fleet = Fleet(ctx, Adoption(["givenergy"], enabled=cfg.adopt, deny=cfg.deny, counters=ctx.counters,
                                         log=ctx.log.child("adoption")))
        self.locks: dict[int, asyncio.Lock] = {}  # id(plant) -> its poller's lock
        # GivTCP's timed functions: a later restore takes the poll lock like a command does
        self.functions = GivFunctions(controls.write_confirmed, ctx.log.child("givtcp"), guard=self.lock_of)

    def lock_of(self, plant: Plant) -> asyncio.Lock:
        return self.locks.setdefault(id(plant), asyncio.Lock())

    def adapter(self, cfg: InverterConfig) -> GivAdapter:
        ctx = self.ctx
        dongle = Dongle(cfg.host, cfg.port, ctx.counters, ctx.log.child(f"{cfg.host}:{cfg.port}"),
                        timeout_s=ctx.config.timeout_s, retries=ctx.config.retries)
        return GivAdapter(ctx, Plant(cfg, dongle), self.functions)

    async def find(self, cfg: InverterConfig, adopted_as: str | None = None) -> None:
        """Identify the inverter behind one dongle (backing off while it does not answer), then poll it."""
        ctx, adapter = self.ctx, self.adapter(cfg)
        started = False
        try:
            if not await self._identify(adapter, cfg):
                return
            if adopted_as is None:
                self.fleet.pin(adapter.plant.serial)
            poller = Poller(ctx, adapter, interval_s=ctx.config.poll_interval_s, identified=True,
                            offline_after=ctx.config.offline_after_failures, max_backoff_s=ctx.config.max_backoff_s)
            self.locks[id(adapter.plant)] = poller.lock
            started = self.fleet.start(poller, adopted_as)
        finally:
            if not started:
                await adapter.close()

    async def _identify(self, adapter: GivAdapter, cfg: InverterConfig) -> bool:
        ctx, failures = self.ctx, 0
        delay = ctx.config.poll_interval_s
        while True:
            try:
                await adapter.identify()
                ctx.clear_device_error(adapter.where)
                return True
            except (DongleError, *GARBAGE) as exc:
                failures += 1
                ctx.counters.inc("poll_failures")
                if worth_logging(failures):
                    ctx.log.warning("poll failed", inverter=adapter.where, error=str(exc), failures=failures)
                ctx.device_error(adapter.where, str(exc), cfg.name)
            if not await ctx.sleep(delay):
                return False
            delay = min(delay * 2, ctx.config.max_backoff_s)

    async def adopt(self, decision: Decision) -> None:
        ann, target = decision.announcement, decision.target
        cfg = InverterConfig(host=target.host, port=target.port or 8899,
                             batteries=self.ctx.config.adopted_batteries, name=ann.model)
        await self.find(cfg, ann.device_id)


async def run(ctx: ServiceContext[Config]) -> None:
    bridge = GivBridge(ctx)
    if not ctx.config.inverters and not ctx.config.adopt:
        ctx.log.error("no inverters configured: set [giv-bridge] inverters = [{ host = ... }] or INVERTOR_IP")
    for cfg in ctx.config.inverters:
        bridge.fleet.pin(f"{cfg.host}:{cfg.port}")
        bridge.fleet.spawn(bridge.find(cfg), f"giv-{cfg.host}:{cfg.port}")
    CommandRouter(ctx, bridge.fleet, decode).subscribe()
    bridge.fleet.adopt(bridge.adopt)
    try:
        await bridge.fleet.run()
    finally:  # the runner cancels run() on SIGTERM: a forced charge or paused battery still gets its settings back
        await bridge.functions.close()
