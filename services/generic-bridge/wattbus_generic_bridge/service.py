"""The bridge service: an adapter per configured device, polled and commanded by the bridge toolkit."""

from __future__ import annotations

from wattbus.bridge import CommandRouter, Fleet, Poller
from wattbus.runner import ServiceContext

from . import families
from .adapter import DescribedDevice
from .brokers import Brokers
from .config import Config, resolve_all


async def run(ctx: ServiceContext[Config]) -> None:
    # Every description is resolved and checked before anything starts: a bad one stops the service
    # with the device, the key and what is wrong (a ConfigError, printed by the runner).
    resolved = resolve_all(ctx.config)
    if not resolved:
        ctx.log.warning("no devices configured",
                        hint='add [[generic-bridge.devices]] id = "...", template = "...", host = "..."')
    fleet = Fleet(ctx)
    brokers = Brokers(ctx.instance, ctx.log)  # MQTT devices on other brokers: one connection each
    for dev, desc in resolved:
        adapter = DescribedDevice(ctx.name, dev, desc, ctx.counters, ctx.log, ctx.bus, brokers)
        # An MQTT device is offline after one silent stale_after_s; a polled one after some failed polls.
        fleet.start(Poller(ctx, adapter, interval_s=adapter.interval_s, max_backoff_s=ctx.config.max_backoff_s,
                           offline_after=1 if adapter.push else ctx.config.offline_after_failures,
                           push=adapter.push), local=adapter.local)  # a serial port: this replica's alone
    for dev in ctx.config.devices:  # entries of a device family (families/), checked by resolve_all
        if dev.template in families.FAMILIES:
            family = families.adapter(dev.template, ctx.name, dev)
            fleet.start(Poller(ctx, family, interval_s=family.interval_s, max_backoff_s=ctx.config.max_backoff_s,
                               offline_after=ctx.config.offline_after_failures))
    CommandRouter(ctx, fleet).subscribe()
    try:
        await fleet.run()
    finally:
        await brokers.close()
