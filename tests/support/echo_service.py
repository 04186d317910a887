"""A minimal real service for the foundation tests: owns one device, counts the readings it sees.

Run as `python -m tests.support.echo_service`; it goes through the same runner, bus client and
config loader as every wattbus service.
"""

from __future__ import annotations

import sys

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Message
from wattbus.config import ServiceCommon
from wattbus.runner import Service, ServiceContext


class EchoConfig(ServiceCommon, kw_only=True, forbid_unknown_fields=True):
    device_serial: str = "E-0001"
    listen: str = topics.ALL_READINGS


async def run(ctx: ServiceContext[EchoConfig]) -> None:
    device_id = topics.slug("echo", ctx.config.device_serial)
    channel = ctx.device(m.DeviceMeta(device_id=device_id, kind="meter", source="sml-reader", protocol="simulated",
                                      serial=ctx.config.device_serial, manufacturer="wattbus"))
    channel.set_online(True)

    def seen(msg: Message[m.Reading]) -> None:
        ctx.counters.inc("readings_seen")
        ctx.publish_status()

    ctx.bus.subscribe(ctx.config.listen, m.Reading, seen)
    await ctx.stopping.wait()


SERVICE = Service("sml-reader", EchoConfig, run, "foundation test service")

if __name__ == "__main__":
    sys.exit(SERVICE.main())


