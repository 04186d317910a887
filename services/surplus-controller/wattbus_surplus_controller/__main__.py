"""`wattbus-surplus-controller`: PV-surplus EV charging and surplus relays on the bus."""

from __future__ import annotations

import argparse
import sys

import msgspec
from wattbus.config import ConfigError, LoadedConfig
from wattbus.runner import Service, ServiceContext, Subcommand
from wattbus.site import load_site

from .config import Config, resolve
from .persist import StateFile
from .service import Controller

NOT_CONFIGURED = "not configured: no grid meter chosen yet (setup page, or [site] grid)"


async def run(ctx: ServiceContext[Config]) -> None:
    for warning in load_site(ctx.loaded).warnings:
        ctx.log.warning("old config layout", problem=warning)
    orphans = sorted(set(ctx.config.tuning) - {lp.id for lp in ctx.config.loadpoints})
    if orphans:
        ctx.log.warning("tuning for no loadpoint", problem=f"[surplus-controller] tuning.{orphans[0]}: no "
                        "[[site.loadpoints]] entry has this id; the tuning is not used")
    if ctx.config.grid_meter is None:
        # A first run: staying up (not exiting) keeps run-many and supervisors calm, and the status
        # tells every consumer why nothing is controlled; `reload_config` restarts us once it is set.
        ctx.log.warning("idle until configured", problem=NOT_CONFIGURED)
        ctx.device_error("grid_meter", NOT_CONFIGURED)
        await ctx.stopping.wait()
        return
    if not ctx.config.loadpoints and not ctx.config.relays:
        ctx.log.warning("no loadpoints or relays configured: nothing to control")
    controller = Controller(ctx)
    controller.start()
    try:
        await controller.watchdog()
    finally:
        controller.judged.stop()  # its lease timer must not outlive us (run-many keeps the loop)


def _show_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-file", help="state file to show (default: the configured one)")


def _show(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    try:
        path = args.state_file or loaded.section("surplus-controller", Config).state_file
    except ConfigError as exc:
        print(f"wattbus-surplus-controller: {exc}", file=sys.stderr)
        return 2
    stored, problem = StateFile(path).load()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    print(msgspec.json.format(msgspec.json.encode(stored)).decode() if stored else f"{path}: no saved settings")
    return 0


SERVICE = Service("surplus-controller", Config, run, "PV-surplus EV charging and surplus relays",
                  subcommands=(Subcommand("show-state", "print the saved loadpoint modes and limits",
                                          _show_args, _show),), resolve=resolve)


def main() -> int:
    return SERVICE.main()


if __name__ == "__main__":
    sys.exit(main())
