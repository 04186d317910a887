"""wattbus-sml-reader: smart meters (SML, DSMR P1, IEC 62056-21) on serial lines to the bus."""

from __future__ import annotations

import asyncio
import sys

from wattbus.bridge import Poller
from wattbus.runner import Service, ServiceContext, Subcommand

from . import decode_cmd
from .config import Config
from .mapping import Mapper
from .meter import MAX_RETRY_S, RETRY_S, Meter


async def run(ctx: ServiceContext[Config]) -> None:
    if not ctx.config.meters:
        ctx.log.warning("no meters configured: add [[sml-reader.meters]] entries with key, format and port")
    keys = [meter.key for meter in ctx.config.meters]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValueError(f"[sml-reader] meters: key {duplicates[0]!r} is used more than once")
    mapper = Mapper()
    # The toolkit's poll loop in push mode: a read waits for the meter's frames; a failed or silent
    # line is one failure (offline at once, as a pulled cable is), and reopening backs off.
    pollers = [Poller(ctx, Meter(ctx, config, mapper), interval_s=RETRY_S, offline_after=1, max_backoff_s=MAX_RETRY_S,
                      push=True, push_backoff=True) for config in ctx.config.meters]
    tasks = [asyncio.create_task(poller.run(), name=f"meter-{config.key}")
             for poller, config in zip(pollers, ctx.config.meters, strict=True)]
    try:
        await ctx.stopping.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


SERVICE = Service(
    "sml-reader", Config, run, "SML/DSMR/IEC 62056-21 meters to the bus",
    subcommands=(Subcommand("decode", "print the readings of a capture file as JSON lines",
                            decode_cmd.add_arguments, decode_cmd.handle),),
)


def main() -> int:
    code: int = SERVICE.main()
    return code


if __name__ == "__main__":
    sys.exit(main())
