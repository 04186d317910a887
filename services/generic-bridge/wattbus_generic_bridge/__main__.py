"""wattbus-generic-bridge: devices without a bridge of their own, mapped onto the contract by description.

    wattbus-generic-bridge                    run the bridge (config section [generic-bridge])
    wattbus-generic-bridge templates          list the shipped device descriptions
    wattbus-generic-bridge read ID            read one configured device once, print its reading as JSON
"""

from __future__ import annotations

import sys

from wattbus.runner import Service, Subcommand

from . import cli
from .config import Config
from .service import run

SERVICE = Service("generic-bridge", Config, run, "HTTP/JSON, MQTT and Modbus devices mapped by description",
                  subcommands=(Subcommand("templates", "list the shipped device descriptions", cli.templates_args,
                                          cli.templates_cmd),
                               Subcommand("read", "read one configured device once (HTTP or Modbus)",
                                          cli.read_args, cli.read_cmd)))


def main() -> int:
    return SERVICE.main()


if __name__ == "__main__":
    sys.exit(main())
