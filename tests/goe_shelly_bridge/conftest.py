"""Simulated devices (the real HTTP simulators) on free loopback ports, inside the test's loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from aiohttp import web

from tests.support.servers import free_port


@dataclass
class Served:
    url: str
    port: int
    runner: web.AppRunner

    async def stop(self) -> None:
        await self.runner.cleanup()


ServeApp = Callable[..., Awaitable[Served]]


async def serve_app(app: web.Application, port: int | None = None) -> Served:
    port = port or free_port()
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return Served(f"http://127.0.0.1:{port}", port, runner)


@pytest.fixture
async def serve() -> AsyncIterator[ServeApp]:
    started: list[Served] = []

    async def start(app: web.Application, port: int | None = None) -> Served:
        served = await serve_app(app, port)
        started.append(served)
        return served

    yield start
    for served in started:
        await served.stop()
