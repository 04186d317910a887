"""`wattbus-discovery` (the service) and `wattbus-discovery sweep` (one sweep, printed, no bus)."""

from __future__ import annotations

import argparse
import asyncio
import sys

import msgspec
from wattbus.config import ConfigError, LoadedConfig
from wattbus.counters import Counters
from wattbus.log import get_logger
from wattbus.runner import Service, Subcommand

from .config import Config, Scope
from .registry import Registry
from .service import run
from .sweep import sweep


def _sweep_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--network", action="append", default=[], help="CIDR to sweep (repeatable; default: config)")
    parser.add_argument("--modbus-port", action="append", type=int, default=[], help="Modbus TCP port (repeatable)")
    parser.add_argument("--aps-giv-port", action="append", type=int, default=[], help="ECU/GivEnergy port (repeatable)")
    parser.add_argument("--json", action="store_true", help="one DeviceAnnouncement JSON per line")


def _sweep_cmd(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    config = loaded.section("discovery", Config)
    overrides: dict[str, object] = {}
    if args.network:
        overrides["networks"] = args.network
    if args.modbus_port:
        overrides["modbus_ports"] = args.modbus_port
    if args.aps_giv_port:
        overrides["aps_giv_ports"] = args.aps_giv_port
    try:
        config = msgspec.convert({**msgspec.to_builtins(config), **overrides}, Config)
        scope = Scope.from_config(config)
    except (msgspec.ValidationError, ValueError) as exc:
        raise ConfigError(f"wattbus-discovery sweep: {exc}") from exc
    counters = Counters()
    result = asyncio.run(sweep(config, scope, counters, get_logger("discovery")))
    registry = Registry(1)
    for found in result.found:
        announcement, _ = registry.seen(found)
        if args.json:
            print(msgspec.json.encode(announcement).decode())
        else:
            where = f"{found.address}:{found.port}" + (f" unit {found.unit_id}" if found.unit_id is not None else "")
            print(f"{found.protocol:10} {where:28} {found.manufacturer or '-'} {found.model or '-'} "
                  f"serial {found.serial or '-'}  id {found.device_id}")
    print(f"{result.candidates} candidates, {result.open_ports} open, {len(result.found)} devices "
          f"in {result.duration_s:.2f} s", file=sys.stderr)
    return 0


SERVICE = Service("discovery", Config, run, "find SunSpec, APsystems ECU, GivEnergy, go-e and Shelly devices",
                  subcommands=(Subcommand("sweep", "sweep the networks once and print what answers",
                                          _sweep_args, _sweep_cmd),))


def main(argv: list[str] | None = None) -> int:
    return SERVICE.main(argv)


if __name__ == "__main__":
    sys.exit(main())
