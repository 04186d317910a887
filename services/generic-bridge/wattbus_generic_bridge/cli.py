"""The bridge's tools: list the shipped descriptions, read a configured device once."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tomllib

from wattbus import codec
from wattbus import messages as m
from wattbus.bridge.probe import sample
from wattbus.config import ConfigError, LoadedConfig
from wattbus.counters import Counters
from wattbus.log import get_logger

from . import families
from .adapter import DescribedDevice
from .config import Config, DeviceConfig, resolve_all, templates
from .fetch import FetchError
from .modbus import ModbusError
from .spec import Description, MqttSource


def templates_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--show", metavar="NAME", help="print one description's TOML")


def templates_cmd(args: argparse.Namespace, _loaded: LoadedConfig) -> int:
    shipped = templates()
    if args.show:
        if args.show not in shipped:
            print(f"wattbus-generic-bridge templates: no {args.show!r}; known: {', '.join(sorted(shipped))}",
                  file=sys.stderr)
            return 2
        print(shipped[args.show], end="")
        return 0
    for name, text in sorted(shipped.items()):
        doc = tomllib.loads(text)
        print(f"{name:22} {doc.get('kind', '?'):8} {doc.get('source', {}).get('type', '?'):7} {doc.get('about', '')}")
    for name, folder in sorted(families.FAMILIES.items()):  # several devices each: an adapter and data
        print(f"{name:22} {'family':8} {'http':7} families/{folder}/ (adapter.py and its data)")
    return 0


def read_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="the device's id in [[generic-bridge.devices]]")


async def read_once(source_name: str, dev: DeviceConfig, desc: Description) -> tuple[m.ReadingBase, list[str]]:
    """One reading of an HTTP or Modbus device through its adapter, and the values that did not match."""
    adapter = DescribedDevice(source_name, dev, desc, Counters(), get_logger(source_name))
    _metas, readings = await sample(adapter)
    return readings[0], adapter.last_misses


def read_cmd(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    try:
        config = loaded.section("generic-bridge", Config)
    except ConfigError as exc:
        print(f"wattbus-generic-bridge read: {exc}", file=sys.stderr)
        return 2
    found = [(dev, desc) for dev, desc in resolve_all(config) if dev.id == args.id]
    family = [dev for dev in config.devices if dev.id == args.id and dev.template in families.FAMILIES]
    if family:
        return read_family(family[0])
    if not found:
        known = ", ".join(d.id for d in config.devices) or "none configured"
        print(f"wattbus-generic-bridge read: no device {args.id!r} (configured: {known})", file=sys.stderr)
        return 2
    dev, desc = found[0]
    if isinstance(desc.source, MqttSource):
        print(f"wattbus-generic-bridge read: {args.id} listens on MQTT ({desc.source.topic}); watch it with "
              "mosquitto_sub instead", file=sys.stderr)
        return 2
    try:
        reading, misses = asyncio.run(read_once("generic-bridge", dev, desc))
    except (FetchError, ModbusError) as exc:
        print(f"wattbus-generic-bridge read: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"device": dev.id, "reading": json.loads(codec.encode(reading)), "misses": misses}, indent=2))
    return 0 if not misses else 3


def read_family(dev: DeviceConfig) -> int:
    """Every device behind a family entry's address, read once (families/)."""
    try:
        metas, readings = asyncio.run(sample(families.adapter(str(dev.template), "generic-bridge", dev)))
    except FetchError as exc:
        print(f"wattbus-generic-bridge read: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"device": dev.id, "devices": [json.loads(codec.encode(x)) for x in metas],
                      "readings": [json.loads(codec.encode(x)) for x in readings]}, indent=2))
    return 0
