"""HTTP push (aiohttp, wattbus.http_session) to a local aiohttp server: delivery, retry, rate limit, dead target."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from wattbus import http_session
from wattbus.counters import Counters
from wattbus.log import get_logger
from wattbus_integrations.http_push import HttpPusher
from wattbus_integrations.render import HttpOut
from wattbus_integrations.rules import HttpTarget

from tests.support.bus_helpers import until
from tests.support.servers import free_port


@dataclass
class Target:
    """A local HTTP endpoint that answers with a scripted list of statuses, then 200."""

    url: str
    script: list[int] = field(default_factory=list)
    received: list[tuple[str, str, str, dict[str, str]]] = field(default_factory=list)
    retry_after: str | None = None


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    port = free_port()
    state = Target(f"http://127.0.0.1:{port}")

    async def handle(request: web.Request) -> web.Response:
        body = await request.text()
        status = state.script.pop(0) if state.script else 200
        state.received.append((request.method, request.path, body, dict(request.headers)))
        headers = {"Retry-After": state.retry_after} if state.retry_after and status in (429, 503) else {}
        return web.Response(status=status, text="ok" if status == 200 else "try later", headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield state
    await runner.cleanup()


def message(url: str, body: str = "{}", key: str = "k", method: str = "POST") -> HttpOut:
    return HttpOut("test", method, url, body, {"Content-Type": "application/json"}, key)


async def pusher_for(session: aiohttp.ClientSession, min_interval_s: float = 0.0, **target: object) -> \
        tuple[HttpPusher, Counters]:
    counters = Counters()
    spec = HttpTarget(url="http://unused", retry_initial_s=0.05, retry_max_s=0.2, timeout_s=5.0, **target)  # type: ignore[arg-type]
    return HttpPusher("test", spec, min_interval_s, session, counters, get_logger("test-http")), counters


async def test_delivers_method_body_and_headers(target: Target) -> None:
    async with http_session.session() as session:
        pusher, counters = await pusher_for(session)
        assert await pusher.send(message(f"{target.url}/rest/items/x/state", "1834.5", method="PUT"))
    method, path, body, headers = target.received[0]
    assert (method, path, body, headers["Content-Type"]) == ("PUT", "/rest/items/x/state", "1834.5",
                                                             "application/json")
    assert counters.get("http_sent") == 1 and counters.get("http_retries") == 0


async def test_server_errors_are_retried_until_accepted(target: Target) -> None:
    target.script = [503, 500, 429]
    target.retry_after = "0"
    async with http_session.session() as session:
        pusher, counters = await pusher_for(session, retries=3)
        assert await pusher.send(message(target.url + "/telemetry", '{"ts":1}'))
    assert len(target.received) == 4 and all(r[2] == '{"ts":1}' for r in target.received)
    assert (counters.get("http_retries"), counters.get("http_sent"), counters.get("http_failed")) == (3, 1, 0)


async def test_gives_up_after_the_last_retry(target: Target) -> None:
    target.script = [502, 502, 502]
    async with http_session.session() as session:
        pusher, counters = await pusher_for(session, retries=2)
        assert not await pusher.send(message(target.url))
    assert len(target.received) == 3
    assert (counters.get("http_retries"), counters.get("http_failed")) == (2, 1)


async def test_client_errors_are_not_retried(target: Target) -> None:
    target.script = [401]
    async with http_session.session() as session:
        pusher, counters = await pusher_for(session, retries=5)
        assert not await pusher.send(message(target.url))
    assert len(target.received) == 1 and counters.get("http_failed") == 1 and counters.get("http_retries") == 0


async def test_dead_target_is_retried_then_counted_as_failed() -> None:
    url = f"http://127.0.0.1:{free_port()}/nobody-listens"
    async with http_session.session() as session:
        pusher, counters = await pusher_for(session, retries=2)
        assert not await pusher.send(message(url))
    assert (counters.get("http_retries"), counters.get("http_failed"), counters.get("http_sent")) == (2, 1, 0)


async def test_rate_limit_sends_the_newest_value_per_url(target: Target) -> None:
    async with http_session.session() as session:
        pusher, counters = await pusher_for(session, min_interval_s=30.0)
        task = asyncio.create_task(pusher.run())
        pusher.submit(message(target.url + "/a", "1"))
        await until(lambda: len(target.received) == 1, 15, "first push")
        for value in range(2, 7):  # within the interval: they wait and replace each other
            pusher.submit(message(target.url + "/a", str(value)))
        pusher.submit(message(target.url + "/b", "other device", key="b"))
        await until(lambda: len(target.received) == 2, 15, "the other URL's push")
        assert [r[2] for r in target.received] == ["1", "other device"]
        assert counters.get("http_coalesced") == 4
        assert list(pusher._pending) == ["k"] and pusher._pending["k"].body == "6"
        task.cancel()


async def test_queue_is_bounded(target: Target) -> None:
    async with http_session.session() as session:
        pusher, counters = await pusher_for(session, queue_max=3)
        for n in range(5):  # no worker running: everything waits
            pusher.submit(message(target.url, str(n), key=f"k{n}"))
    assert counters.get("http_dropped") == 2 and [m.body for m in pusher._pending.values()] == ["2", "3", "4"]
