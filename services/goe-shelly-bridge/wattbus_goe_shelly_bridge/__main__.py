"""wattbus-goe-shelly-bridge: go-e Chargers and Shelly relays/meters over their HTTP APIs.

    wattbus-goe-shelly-bridge            run the bridge (config section [goe-shelly-bridge])
    wattbus-goe-shelly-bridge read URL   print one device's state as JSON
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from wattbus import codec
from wattbus.config import LoadedConfig
from wattbus.runner import Service, Subcommand

from .config import Config
from .detect import NotSupported, detect
from .service import run
from .shelly import ShellyDevice
from .transport import DeviceError, HttpDevice


def _read_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="http://host[:port] of a go-e Charger or Shelly")
    parser.add_argument("--username", help="Shelly user (default admin)")
    parser.add_argument("--password", help="Shelly password (Gen1 basic, Gen2+ digest auth)")
    parser.add_argument("--timeout-s", type=float, default=5.0)


async def read_device(url: str, username: str | None, password: str | None, timeout_s: float) -> dict[str, Any]:
    http = HttpDevice(url, timeout_s=timeout_s, username=username, password=password)
    try:
        adapter = await detect(http)
        readings = await adapter.read()
        metas = (adapter.metas("goe-shelly-bridge", readings) if isinstance(adapter, ShellyDevice)
                 else adapter.metas("goe-shelly-bridge"))
        return {"url": url, "device": adapter.kind, "api": adapter.generation,
                "meta": [json.loads(codec.encode(meta)) for meta in metas],
                "readings": [json.loads(codec.encode(r)) for r in readings]}
    finally:
        await http.close()


def _read(args: argparse.Namespace, _loaded: LoadedConfig) -> int:
    if not args.url.startswith(("http://", "https://")):
        print(f"wattbus-goe-shelly-bridge read: {args.url!r} is not an http:// URL", file=sys.stderr)
        return 2
    try:
        doc = asyncio.run(read_device(args.url, args.username, args.password, args.timeout_s))
    except DeviceError as exc:  # 3: something else answers there; 1: nothing usable answers
        print(f"wattbus-goe-shelly-bridge read: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, NotSupported) else 1
    print(json.dumps(doc, indent=2))
    return 0


SERVICE = Service("goe-shelly-bridge", Config, run, "go-e Chargers and Shelly relays/meters over HTTP",
                  subcommands=(Subcommand("read", "print a device's state as JSON", _read_args, _read),))


def main() -> int:
    return SERVICE.main()


if __name__ == "__main__":
    sys.exit(main())
