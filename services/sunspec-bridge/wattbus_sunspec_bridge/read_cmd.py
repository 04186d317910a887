"""`wattbus-sunspec-bridge read HOST[:PORT] [--unit N]`: the first thing to run against new hardware."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from wattbus.config import LoadedConfig
from wattbus.sunspec import DEFAULT_BASES, DEFAULT_UNITS, NotSunSpec

from .link import Endpoint, Link, LinkError
from .scan import read_models, scan


def add_read_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="HOST[:PORT] (Modbus TCP, port 502 by default) or a serial device path")
    parser.add_argument("--unit", type=int, action="append", help="unit id (repeatable); default: probe "
                        + ", ".join(str(u) for u in DEFAULT_UNITS))
    parser.add_argument("--baudrate", type=int, default=9600, help="for a serial device")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per request")


def _endpoint(target: str, baudrate: int) -> Endpoint:
    if target.startswith("/"):
        return Endpoint(serial_port=target, baudrate=baudrate)
    host, _, port = target.rpartition(":") if target.count(":") == 1 else (target, "", "")
    return Endpoint(host=host, port=int(port) if port else 502)


async def _read(endpoint: Endpoint, units: list[int], timeout: float) -> tuple[list[dict[str, Any]], list[str]]:
    link = Link(endpoint, timeout)
    found: list[dict[str, Any]] = []
    reasons: list[str] = []
    try:
        for unit in units:
            try:
                dmap = await scan(link, unit, DEFAULT_BASES, timeout)
                decoded, problems = await read_models(link, dmap, None, timeout)
            except NotSunSpec as exc:
                reasons.append(str(exc))
                continue
            except LinkError as exc:
                reasons.append(str(exc))
                if exc.exception_code is None and not found:
                    break
                continue
            found.append({"address": f"{endpoint}/{unit}", "unit": unit, "base": dmap.base,
                          "requests": link.requests, "problems": problems,
                          "models": [{"id": d.model_id, "name": d.name, "address": d.address, "length": d.length,
                                      "values": d.values} for d in decoded]})
    finally:
        link.close()
    return found, reasons


def read_command(args: argparse.Namespace, _loaded: LoadedConfig) -> int:
    try:
        endpoint = _endpoint(args.target, args.baudrate)
    except ValueError:
        print(f"wattbus-sunspec-bridge read: {args.target!r} is not HOST[:PORT]", file=sys.stderr)
        return 2
    units = args.unit or list(DEFAULT_UNITS)
    found, reasons = asyncio.run(_read(endpoint, units, args.timeout))
    if not found:
        print(f"wattbus-sunspec-bridge read: no SunSpec device at {endpoint} (units {units})", file=sys.stderr)
        for reason in reasons:
            print(f"  {reason}", file=sys.stderr)
        return 1
    print(json.dumps(found, indent=2, default=str))
    return 0
