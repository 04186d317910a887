"""The service: a finder per endpoint identifies its units, the toolkit polls each and routes commands."""

from __future__ import annotations

from wattbus import sunspec
from wattbus.adoption import Adoption, Decision
from wattbus.bridge import CommandRouter, Fleet, Poller
from wattbus.runner import ServiceContext

from .adapter import Unit, open_unit
from .config import Config, DeviceConfig
from .link import Endpoint, Link, LinkError
from .profile import ProfileError, load_profile


def endpoint_of(cfg: DeviceConfig) -> Endpoint:
    return Endpoint(cfg.host, cfg.port, cfg.serial_port, cfg.baudrate, cfg.parity, cfg.stopbits)


def units_of(cfg: DeviceConfig) -> list[int]:
    """SunSpec devices share an endpoint by unit id; a profile meter is the one unit given first."""
    return list(cfg.unit_ids) if cfg.protocol == "sunspec" else list(cfg.unit_ids[:1])


def poller(ctx: ServiceContext[Config], cfg: DeviceConfig, adapter: Unit) -> Poller:
    return Poller(ctx, adapter, interval_s=cfg.poll_interval_s or ctx.config.poll_interval_s,
                  offline_after=ctx.config.offline_after_failures, max_backoff_s=ctx.config.max_backoff_s,
                  identified=True)


async def find(ctx: ServiceContext[Config], fleet: Fleet, cfg: DeviceConfig, adopted_as: str | None = None) -> None:
    """Identify every configured unit id and start its poller; look again for the missing ones
    every rescan interval."""
    link = Link(endpoint_of(cfg), cfg.timeout_s)
    units = units_of(cfg)
    found: set[int] = set()
    delay = ctx.config.poll_interval_s
    while True:
        why = ""  # the last reason a unit was not found, for the service status
        for unit in units:
            if unit in found:
                continue
            address = f"{link.endpoint}/{unit}"
            try:
                adapter = await open_unit(ctx, cfg, link, unit)
            except sunspec.NotSunSpec as exc:
                why = str(exc)
                ctx.log.info("no SunSpec device", address=address, reason=str(exc))
                continue
            except LinkError as exc:
                why = str(exc)
                ctx.counters.inc("probe_failures")
                ctx.log.warning("probe failed", address=address, error=str(exc))
                if exc.exception_code is None and not found:
                    break  # nothing answers on this endpoint: back off instead of timing out per unit
                continue
            except (ValueError, KeyError, IndexError) as exc:  # a decoder tripped over garbage
                why = f"unusable answer ({exc})"
                ctx.counters.inc("probe_failures")
                ctx.log.warning("probe failed: unusable answer", address=address, error=str(exc))
                continue
            found.add(unit)
            ctx.log.info("device found", device=adapter.metas[0].device_id, address=address)
            # A unit on this host's serial port is this replica's alone (`--scale`: wattbus.bridge.ownership).
            fleet.start(poller(ctx, cfg, adapter), adopted_as, local=bool(cfg.serial_port))
        if found:
            ctx.clear_device_error(str(link.endpoint))
        elif why:  # nothing has an id yet: the endpoint's address carries the error
            ctx.device_error(str(link.endpoint), why, cfg.name)
        if len(found) == len(units):
            return
        # Nothing (or not everything) answered: retry sooner while nothing works, slowly later.
        wait = ctx.config.rescan_interval_s if found else delay
        delay = min(delay * 2, ctx.config.max_backoff_s)
        if not await ctx.sleep(wait):
            return


async def run(ctx: ServiceContext[Config]) -> None:
    fleet = Fleet(ctx, Adoption(["sunspec"], enabled=ctx.config.adopt, deny=ctx.config.deny,
                                counters=ctx.counters, log=ctx.log.child("adoption")))
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
            fleet.pin(f"{cfg.host}:{cfg.port}", cfg.serial)
        fleet.spawn(find(ctx, fleet, cfg), f"endpoint-{cfg.host or cfg.serial_port}")

    async def adopt(decision: Decision) -> None:
        target = decision.target
        cfg = DeviceConfig(host=target.host, port=target.port or 502,
                           unit_ids=[target.unit_id] if target.unit_id is not None else list(sunspec.DEFAULT_UNITS))
        await find(ctx, fleet, cfg, decision.announcement.device_id)

    CommandRouter(ctx, fleet).subscribe()
    fleet.adopt(adopt)
    if not ctx.config.devices and not ctx.config.adopt:
        ctx.log.warning("no devices configured: add [[sunspec-bridge.devices]] entries")
    await fleet.run()
