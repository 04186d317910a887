"""`wattbus-http-api`: the site over HTTP (MeterHub, GivTCP, REST + OpenAPI) and the live web UI."""

from __future__ import annotations

import sys
import time

from wattbus.config import ConfigError
from wattbus.runner import Service, ServiceContext
from wattbus.site import load_site

from . import meterhub, server
from .config import Config, resolve
from .site import Site


async def run(ctx: ServiceContext[Config]) -> None:
    problems = [p for key, src in ctx.config.mapping().items() if (p := meterhub.check_source(key, src))]
    if problems:
        raise ConfigError("; ".join(problems))
    for warning in load_site(ctx.loaded).warnings:
        ctx.log.warning("old config layout", problem=warning)
    site = Site.build(ctx)
    site.state.subscribe(ctx.bus)
    site.setup.subscribe(ctx.bus)
    try:
        listening = await server.start(site)
    except OSError as exc:
        ctx.log.error("cannot listen", host=ctx.config.host, ports=ctx.config.ports, error=str(exc))
        raise
    for port in ctx.config.ports:
        ctx.log.info("listening", url=f"http://{ctx.config.host}:{port}/ui/", max_connections=listening.guard.cap,
                     token=site.token is not None, trusted_networks=ctx.config.trusted_networks)
    try:
        while await ctx.sleep(1.0):
            site.history.sample()  # keeps integrating while the bus is quiet
            site.limiter.flush()  # the count of refusals left out of the log, once their interval is over
            if site.posted_on_bus and set(site.state.external_values(time.monotonic())) != site.posted_on_bus:
                meterhub.publish_externals(site)  # a posted value timed out: the bus sees it go
                site.state.touch()
    finally:
        await listening.stop()
        site.history.close()  # what was recorded since the last write


# People watch this one: back within seconds of the broker, not after the bridges' 60 s backoff.
SERVICE = Service("http-api", Config, run, "MeterHub JSON, GivTCP REST, wattbus REST/OpenAPI and the web UI",
                  reconnect_max_s=2.0, resolve=resolve)


def main() -> int:
    code: int = SERVICE.main()
    return code


if __name__ == "__main__":
    sys.exit(main())
