"""`wattbus-giv-bridge`: GivEnergy inverters and batteries on the bus, read and control (GivTCP
compatible); `decode FILE` turns captured dongle frames into JSON lines."""

from __future__ import annotations

import sys

from wattbus.runner import Service, Subcommand

from . import cli, givtcp
from .config import Config
from .service import run

SERVICE = Service("giv-bridge", Config, run, "GivEnergy inverters and batteries to the bus (GivTCP compatible)",
                  subcommands=(Subcommand("decode", "decode captured dongle frames to JSON lines",
                                          cli.add_arguments, cli.run),))


def main() -> int:
    try:
        notes = givtcp.apply_env()  # GivTCP's environment (INVERTOR_IP...) as wattbus settings
    except ValueError as exc:
        print(f"wattbus-giv-bridge: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"wattbus-giv-bridge: GivTCP setting {note}", file=sys.stderr)
    code: int = SERVICE.main()
    return code


if __name__ == "__main__":
    sys.exit(main())
