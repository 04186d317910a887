"""The bridge's tools: list the shipped descriptions, read a configured device once."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tomllib
from datetime import UTC, datetime

from wattbus import codec
from wattbus import messages as m
from wattbus.config import ConfigError, LoadedConfig

from .adapter import Mapper
from .config import Config, resolve_all, templates
from .fetch import FetchError, HttpDevice
from .modbus import ModbusError, ModbusReader
from .spec import Description, HttpSource, ModbusSource, MqttSource


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
    return 0


def read_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="the device's id in [[generic-bridge.devices]]")


async def read_once(device_id: str, desc: Description, username: str | None,
                    password: str | None) -> tuple[m.ReadingBase, list[str]]:
    """One reading of an HTTP or Modbus device, and the values that did not match."""
    mapper = Mapper(device_id, desc)
    source = desc.source
    if isinstance(source, HttpSource):
        http = HttpDevice(source.timeout_s, username, password, source.auth)
        try:
            raws = mapper.select(await http.get_json(source.url))
        finally:
            await http.close()
    else:
        assert isinstance(source, ModbusSource)
        reader = ModbusReader(source, desc.values)
        try:
            raws = dict(await reader.read())
        finally:
            reader.close()
    return mapper.reading(raws, datetime.now(UTC))


def read_cmd(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    try:
        config = loaded.section("generic-bridge", Config)
    except ConfigError as exc:
        print(f"wattbus-generic-bridge read: {exc}", file=sys.stderr)
        return 2
    found = [(dev, desc) for dev, desc in resolve_all(config) if dev.id == args.id]
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
        reading, misses = asyncio.run(read_once(dev.id, desc, dev.username, dev.resolved_password()))
    except (FetchError, ModbusError) as exc:
        print(f"wattbus-generic-bridge read: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"device": dev.id, "reading": json.loads(codec.encode(reading)), "misses": misses}, indent=2))
    return 0 if not misses else 3
