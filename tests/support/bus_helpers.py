"""Small async helpers for tests that talk to the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from wattbus.bus import Bus

from tests.support.servers import Mosquitto


async def started_bus(broker: Mosquitto, user: str, instance: str = "t") -> Bus:
    """A connected Bus logged in as `user` (a service name from mosquitto/users.txt, or test-admin)."""
    bus = Bus(broker.bus_config(user), user, instance)
    await bus.start()
    assert await bus.wait_connected(10), f"{user} could not connect to the test broker"
    return bus


async def until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Wait for predicate() to become true; fail with `what` after timeout seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.02)
