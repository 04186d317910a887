"""`wattbus-sunspec-bridge`: run the bridge, or `read HOST[:PORT] [--unit N]` to dump a device."""

from __future__ import annotations

import sys

from wattbus.runner import Service, Subcommand

from .config import Config
from .read_cmd import add_read_arguments, read_command
from .service import run

SERVICE = Service(
    "sunspec-bridge", Config, run,
    "SunSpec inverters, meters and batteries (Modbus TCP/RTU) and Eastron SDM meters to the bus",
    subcommands=(Subcommand("read", "print every SunSpec model of a device as JSON", add_read_arguments,
                            read_command),),
)


def main() -> int:
    code: int = SERVICE.main()
    return code


if __name__ == "__main__":
    sys.exit(main())
