"""The service: a finder per ECU identifies it (waiting out its quiet times and a late start), the
toolkit polls it on the ECU's schedule and routes `restart`. Configured ECUs win over announced
ones, which are polled with the `[ecu-bridge.adopted]` settings; one poller per ECU, since an ECU
serves one client at a time (a move stops the old poller first)."""

from __future__ import annotations

import msgspec
from wattbus import apsystems
from wattbus.adoption import Adoption, Decision
from wattbus.bridge import CommandRouter, Fleet
from wattbus.bridge.poller import worth_logging
from wattbus.runner import ServiceContext

from . import apsout
from .adapter import EcuAdapter
from .client import EcuUnreachable
from .config import Config, EcuConfig
from .poller import EcuPoller


async def find(ctx: ServiceContext[Config], fleet: Fleet, cfg: EcuConfig, adopted_as: str | None = None) -> None:
    """Identify the ECU, then poll it."""
    adapter = EcuAdapter(ctx, cfg)
    address = f"{cfg.host}:{cfg.port}"
    waits = failures = 0
    while True:
        pause = adapter.quiet_time()
        if pause is None:
            try:
                await adapter.identify()
                break
            except adapter.errors as exc:
                # The bridge and the ECU often start together (`make run`; a house after a power cut): an
                # ECU that refuses connections is asked again soon, doubling, before that counts as failing.
                pause = 0.25 * 2.0 ** waits
                if isinstance(exc, EcuUnreachable) and pause < cfg.retry_after_failure_s:
                    if waits == 0:
                        adapter.log.info("ECU not accepting connections yet, retrying shortly", error=str(exc))
                    waits += 1
                    ctx.counters.inc("connect_waits")
                else:
                    failures += 1
                    ctx.counters.inc("frames_rejected" if isinstance(exc, apsystems.EcuFrameError) else "polls_failed")
                    if worth_logging(failures):
                        adapter.log.warning("poll failed", error=str(exc), failures=failures)
                    ctx.device_error(address, str(exc), cfg.name)
                    pause = cfg.retry_after_failure_s
        if not await ctx.sleep(pause):
            return
    ctx.clear_device_error(address)
    if adopted_as is None:
        fleet.pin(adapter.ecu_id)
    fleet.start(EcuPoller(ctx, adapter), adopted_as)


async def run(ctx: ServiceContext[Config]) -> None:
    if not ctx.config.ecus and not ctx.config.adopt:
        ctx.log.error("no ECU configured: add [[ecu-bridge.ecus]] host = ... (or set APS_ECU_IP)")
        await ctx.stopping.wait()
        return
    fleet = Fleet(ctx, Adoption(["aps-ecu"], enabled=ctx.config.adopt, deny=ctx.config.deny,
                                counters=ctx.counters, log=ctx.log.child("adoption")))
    for cfg in ctx.config.ecus:
        fleet.pin(f"{cfg.host}:{cfg.port}")
        fleet.spawn(find(ctx, fleet, cfg), f"ecu-{cfg.host}:{cfg.port}")

    async def adopt(decision: Decision) -> None:
        ann, target = decision.announcement, decision.target
        cfg = EcuConfig(host=target.host, port=target.port or 8899, name=ann.model,
                        **msgspec.structs.asdict(ctx.config.adopted))
        await find(ctx, fleet, cfg, ann.device_id)

    CommandRouter(ctx, fleet).subscribe()
    fleet.adopt(adopt)
    try:
        await fleet.run()
    finally:
        if ctx.config.aps2mqtt_topics or ctx.config.aps2mqtt_discovery:
            ctx.bus.publish(apsout.status_topic(ctx.config.aps2mqtt_prefix), "offline", retain=True)
