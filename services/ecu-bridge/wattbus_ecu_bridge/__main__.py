"""wattbus-ecu-bridge: APsystems ECUs (ECU-R, ECU-B, ECU-C) to the bus; `decode FILE` for captures."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import msgspec
from wattbus import apsystems, topics
from wattbus import messages as m
from wattbus.bus import Message
from wattbus.config import ConfigError, LoadedConfig
from wattbus.runner import Service, ServiceContext, Subcommand

from . import aps2mqtt, apsout
from .adopt import Fleet
from .config import Config
from .decode import decode_any


async def run(ctx: ServiceContext[Config]) -> None:
    if not ctx.config.ecus and not ctx.config.adopt:
        ctx.log.error("no ECU configured: add [[ecu-bridge.ecus]] host = ... (or set APS_ECU_IP)")
        await ctx.stopping.wait()
        return
    fleet = Fleet(ctx)
    pollers = fleet.pollers

    async def on_command(msg: Message[m.Command]) -> None:
        parsed = topics.parse(msg.topic)
        target = parsed.ident or ""
        poller = next((p for p in pollers if p.ecu_id and apsystems.ecu_device_id(p.ecu_id) == target), None)
        if isinstance(msg.payload, m.Restart) and poller is not None:
            result = await poller.restart()
        else:
            ctx.counters.inc("commands_refused")
            result = m.CommandResult(status="refused", target=target, message=(
                "only `restart` on an ECU (gateway) device is supported" if poller or not isinstance(
                    msg.payload, m.Restart) else f"{target} is not an ECU of this bridge"))
        tag = msg.payload.__struct_config__.tag
        result = msgspec.structs.replace(result, request_id=msg.payload.request_id,
                                         command=tag if isinstance(tag, str) else None)
        ctx.bus.respond(msg, result, topics.device_result(ctx.name, target))

    ctx.bus.subscribe(topics.commands_for(ctx.name), m.Command, on_command)
    fleet.adoption.subscribe(ctx.bus, fleet.adopt)
    try:
        await fleet.wait()
    finally:
        if ctx.config.aps2mqtt_topics or ctx.config.aps2mqtt_discovery:
            ctx.bus.publish(apsout.status_topic(ctx.config.aps2mqtt_prefix), "offline", retain=True)


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
