"""The aiohttp application: MeterHub, GivTCP and own REST routes, the web UI, one or more ports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from . import api, givtcp, meterhub, setup_api, setup_probe
from .site import Site
from .web import MAX_BODY, SITE, ApiError, reject

STATIC = Path(__file__).parent / "static"


async def ui_index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def ui_setup(request: web.Request) -> web.FileResponse:
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


def build_app(site: Site) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[errors])
    app[SITE] = site
    app.add_routes(api.routes())
    app.add_routes(setup_api.routes())
    app.add_routes(setup_probe.routes(setup_api.BASE))
    app.add_routes([web.get("/ui", ui_redirect), web.get("/ui/", ui_index), web.get("/ui/setup", ui_setup),
                    web.static("/ui/static", STATIC)])
    app.add_routes(givtcp.routes())
    app.add_routes(meterhub.routes())
    return app


async def start(site: Site) -> web.AppRunner:
    runner = web.AppRunner(build_app(site), access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    for port in site.config.ports:
        await web.TCPSite(runner, site.config.host, port, reuse_address=True).start()
    return runner
