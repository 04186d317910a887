"""`wattbus-surplus-controller`: PV-surplus EV charging and surplus relays on the bus."""

from __future__ import annotations

import argparse
import sys

import msgspec
from wattbus.config import ConfigError, LoadedConfig
from wattbus.runner import Service, ServiceContext, Subcommand

from .config import Config
from .persist import StateFile
from .service import Controller


async def run(ctx: ServiceContext[Config]) -> None:
    if not ctx.config.loadpoints and not ctx.config.relays:
        ctx.log.warning("no loadpoints or relays configured: nothing to control")
    controller = Controller(ctx)
    controller.start()
    await controller.watchdog()


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
                                          _show_args, _show),))


def main() -> int:
    return SERVICE.main()


if __name__ == "__main__":
    sys.exit(main())
