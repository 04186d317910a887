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


async def subscriptions_active(bus: Bus, timeout: float = 10.0) -> None:
    """Wait until the broker applies the bus's earlier subscriptions.

    The broker handles one client's SUBSCRIBEs in order, so a probe subscribed afterwards that
    receives its own message proves the earlier ones are active too. The probe lives in the
    client's own service space, which every broker user may read and write.
    """
    probe = f"wattbus/v1/service/{bus.service}/{bus.instance}/probe"
    echoed = asyncio.Event()
    bus.subscribe(probe, bytes, lambda _msg: echoed.set())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not echoed.is_set():
        if loop.time() > deadline:
            raise AssertionError(f"subscriptions of {bus.client_id} not active within {timeout} s")
        bus.publish(probe, b"probe", qos=0)
        try:
            await asyncio.wait_for(echoed.wait(), 0.2)
        except TimeoutError:
            continue
