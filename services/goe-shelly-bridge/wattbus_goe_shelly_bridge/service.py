"""The service: a finder per device URL identifies what answers there, the toolkit polls it and
routes its commands. Configured devices win over the go-e chargers and Shellies that discovery
announces (adopted with the default limits; one announced at a new address moves there)."""

from __future__ import annotations

from urllib.parse import urlsplit

from wattbus.adoption import Adoption, Decision
from wattbus.bridge import CommandRouter, Fleet, Poller
from wattbus.bridge.poller import worth_logging
from wattbus.config import ConfigError
from wattbus.runner import ServiceContext

from .adapter import HttpAdapter
from .config import Config, DeviceConfig
from .transport import DeviceError


async def find(ctx: ServiceContext[Config], fleet: Fleet, cfg: DeviceConfig, password: str | None,
               adopted_as: str | None = None) -> None:
    """Identify the device at the URL (again and again, backing off, while nothing usable answers),
    then poll it."""
    adapter = HttpAdapter(ctx, cfg, password)
    interval = cfg.poll_interval_s or ctx.config.poll_interval_s
    delay, failures = interval, 0
    while True:
        try:
            await adapter.identify()
            break
        except DeviceError as exc:
            failures += 1
            total = ctx.counters.inc("poll_failures")
            if worth_logging(failures):
                ctx.log.warning("device poll failed", url=cfg.url, error=str(exc), failures=failures, total=total)
            ctx.device_error(cfg.url, str(exc))
        if not await ctx.sleep(delay):
            await adapter.close()
            return
        delay = min(delay * 2, ctx.config.max_backoff_s)
    ctx.clear_device_error(cfg.url)
    poller = Poller(ctx, adapter, interval_s=interval, offline_after=ctx.config.offline_after_failures,
                    max_backoff_s=ctx.config.max_backoff_s, identified=True)
    if not fleet.start(poller, adopted_as):
        await adapter.close()


def shelly_password(ctx: ServiceContext[Config], decision: Decision) -> tuple[bool, str | None]:
    """(adopt it?, its password): a Shelly announced with authentication on needs shelly_password."""
    ann = decision.announcement
    if ann.protocol != "shelly" or ann.extra.get("auth") is not True:
        return True, None
    password: str | None = None
    try:
        password = DeviceConfig(url="http://x", password=ctx.config.shelly_password,
                                password_file=ctx.config.shelly_password_file).resolved_password()
    except ConfigError as exc:
        ctx.log.error("announced Shelly skipped", device=ann.device_id, error=str(exc))
    if password is None:
        ctx.counters.inc("adopt_skipped_auth")
        ctx.log.warning("announced Shelly has authentication on: set shelly_password to adopt it",
                        device=ann.device_id, address=decision.target.host)
        return False, None
    return True, password


async def run(ctx: ServiceContext[Config]) -> None:
    fleet = Fleet(ctx, Adoption(["goe", "shelly"], enabled=ctx.config.adopt, deny=ctx.config.deny,
                                counters=ctx.counters, log=ctx.log.child("adoption")))
    # Every password file is read before anything starts: one that cannot be read stops the service.
    configured = [(cfg, cfg.resolved_password()) for cfg in ctx.config.devices]
    for cfg, password in configured:
        url = urlsplit(cfg.url)
        fleet.pin(f"{url.hostname}:{url.port or 80}")
        fleet.spawn(find(ctx, fleet, cfg, password), f"device-{cfg.url}")

    async def adopt(decision: Decision) -> None:
        target = decision.target
        host = f"[{target.host}]" if ":" in target.host else target.host
        cfg = DeviceConfig(url=f"http://{host}:{target.port or 80}")
        await find(ctx, fleet, cfg, shelly_password(ctx, decision)[1], decision.announcement.device_id)

    CommandRouter(ctx, fleet).subscribe()
    fleet.adopt(adopt, accept=lambda decision: shelly_password(ctx, decision)[0])
    if not configured and not ctx.config.adopt:
        ctx.log.warning("no devices configured", hint="add [[goe-shelly-bridge.devices]] url = \"http://...\"")
    await fleet.run()
