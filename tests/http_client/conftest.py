"""aiohttp.web servers on free loopback ports (tests may keep using aiohttp; the services may not)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

ServeApp = Callable[..., Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[ServeApp]:
    """serve(app, tls=None) -> base URL of the running app."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application, tls: ssl.SSLContext | None = None) -> str:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"{'https' if tls else 'http'}://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()
