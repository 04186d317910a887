"""wattbus-ecu-bridge: APsystems ECUs (ECU-R, ECU-B, ECU-C) to the bus; `decode FILE` for captures."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from wattbus import apsystems
from wattbus.config import ConfigError, LoadedConfig
from wattbus.runner import Service, Subcommand

from . import aps2mqtt
from .config import Config
from .decode import decode_any
from .service import run


def _decode_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="a captured ECU answer: raw bytes, or hex text ('-' for stdin)")


def _decode(args: argparse.Namespace, _loaded: LoadedConfig) -> int:
    try:
        content = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"wattbus-ecu-bridge decode: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        frame, decoded = decode_any(apsystems.parse_hex_or_raw(content))
    except apsystems.EcuFrameError as exc:
        print(f"wattbus-ecu-bridge decode: {args.file}: invalid ECU answer: {exc}", file=sys.stderr)
        return 1
    body: dict[str, Any] = asdict(decoded)
    doc = {"command": frame.command, "answer": frame.name, "version": frame.version, "length": len(frame.data),
           "decoded": body}
    print(json.dumps(doc, indent=2, default=str))
    for problem in body.get("problems") or []:
        print(f"wattbus-ecu-bridge decode: warning: {problem}", file=sys.stderr)
    return 0


SERVICE = Service("ecu-bridge", Config, run, "APsystems ECU-R/ECU-B/ECU-C microinverter arrays to the bus",
                  subcommands=(Subcommand("decode", "decode a captured ECU answer to JSON", _decode_args, _decode),))


def main(argv: list[str] | None = None) -> int:
    try:
        os.environ.update(aps2mqtt.overrides(os.environ))
    except ConfigError as exc:
        print(f"wattbus-ecu-bridge: {exc}", file=sys.stderr)
        return 2
    return SERVICE.main(argv)


if __name__ == "__main__":
    sys.exit(main())
