"""The aiohttp application: MeterHub, GivTCP and own REST routes, the web UI, one or more ports."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from . import api, givtcp, history_api, meterhub, setup_api, setup_probe
from .connections import ConnectionGuard, connection_cap, listen, tracking
from .ratelog import limit_library_logs
from .security import door
from .site import Site
from .web import MAX_BODY, SITE, ApiError, reject

STATIC = Path(__file__).parent / "static"


async def ui_index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def ui_setup(request: web.Request) -> web.FileResponse:
    """The step-by-step wizard; every setting stays on the advanced page."""
    return web.FileResponse(STATIC / "wizard.html", headers={"Cache-Control": "no-cache"})


async def ui_setup_advanced(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "setup.html", headers={"Cache-Control": "no-cache"})


async def ui_redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ui/")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own 404/405/413 become JSON errors that are counted like ours."""
    try:
        return await handler(request)
    except ApiError:
        raise
    except web.HTTPRequestEntityTooLarge:
        raise reject(request, 413, f"body over the {MAX_BODY} byte limit", "body") from None
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        raise reject(request, 405, f"{request.method} is not allowed here; use {allowed}", "method") from None
    except web.HTTPNotFound:
        raise reject(request, 404, f"no such endpoint {request.path}; see /api/v1/openapi.json", "path") from None


def build_app(site: Site, guard: ConnectionGuard) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[tracking(guard), door, errors])
    app[SITE] = site
    app.add_routes(api.routes())
    app.add_routes(history_api.routes())
    app.add_routes(setup_api.routes())
    app.add_routes(setup_probe.routes(setup_api.BASE))
    app.add_routes([web.get("/ui", ui_redirect), web.get("/ui/", ui_index), web.get("/ui/setup", ui_setup),
                    web.get("/ui/setup/advanced", ui_setup_advanced),
                    web.static("/ui/static", STATIC)])
    app.add_routes(givtcp.routes())
    app.add_routes(meterhub.routes())
    return app


@dataclass
class Listening:
    runner: web.AppRunner
    servers: list[asyncio.Server]
    guard: ConnectionGuard

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        await self.runner.cleanup()


async def start(site: Site) -> Listening:
    limits = site.config.limits
    limit_library_logs(limits.log_interval_s)
    guard = ConnectionGuard(connection_cap(limits.max_connections), site.limiter, site.ctx.counters)
    # keepalive_timeout: aiohttp closes a connection that has not sent a whole request's headers this
    # long after it opened or after its last answer (partial headers do not restart the timer).
    runner = web.AppRunner(build_app(site, guard), access_log=None, handle_signals=False, shutdown_timeout=2.0,
                           keepalive_timeout=limits.header_timeout_s)
    await runner.setup()
    guard.server = runner.server
    try:
        servers = await listen(guard, site.config.host, site.config.ports)
    except OSError:
        await runner.cleanup()
        raise
    return Listening(runner, servers, guard)
