"""wattbus.bridge: the poll loop, the fleet and the command router every toolkit bridge shares, on the
real broker. The device is a relay kept in memory (`Relay`), so each failure happens exactly when
the test says; the toolkit, the bus and the broker are the real ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.adoption import Adoption
from wattbus.bridge import CommandRouter, Fleet, Poller, answer, check_capabilities, tags
from wattbus.bridge.poller import worth_logging
from wattbus.config import LoadedConfig, ServiceCommon
from wattbus.counters import Counters
from wattbus.log import get_logger
from wattbus.runner import ServiceContext

from tests.support.bus_helpers import started_bus, subscriptions_active, until
from tests.support.servers import Mosquitto

NAME = "toolkit-test"


class Unreachable(OSError):
    """The relay did not answer."""


class Relay:
    """A relay that answers, or not, as the test sets `down`; switching is `execute(SetRelay)`."""

    errors = (Unreachable,)

    def __init__(self, device_id: str, commands: tuple[type[m.CommandBase], ...] = (m.SetRelay,),
                 capabilities: tuple[str, ...] = ("set_relay",)) -> None:
        self.device_id = device_id
        self.commands = commands
        self.capabilities = list(capabilities)
        self.metas: list[m.DeviceMeta] = []
        self.down = False
        self.on = False
        self.identified = 0
        self.executed = 0
        self.closed = False

    async def identify(self) -> list[m.DeviceMeta]:
        if self.down:
            raise Unreachable(f"{self.device_id}: no answer")
        self.identified += 1
        self.metas = [m.DeviceMeta(device_id=self.device_id, kind="relay", source=NAME, protocol="http",
                                   capabilities=self.capabilities)]
        return self.metas

    async def read(self) -> list[m.ReadingBase]:
        if self.down:
            raise Unreachable(f"{self.device_id}: no answer")
        return [m.RelayReading(device_id=self.device_id, timestamp=m.utc_now(), on=self.on)]

    async def execute(self, command: m.CommandBase) -> m.CommandResult:
        assert isinstance(command, m.SetRelay)
        self.executed += 1
        self.on = command.on
        return answer(command, self.device_id, "ok", applied={"on": self.on})

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
async def ctx(broker: Mosquitto) -> AsyncIterator[ServiceContext[ServiceCommon]]:
    bus = await started_bus(broker, "test-admin")
    context = ServiceContext(NAME, ServiceCommon(), LoadedConfig({}, None, {}), bus, Counters(), get_logger(NAME),
                             asyncio.Event())
    try:
        yield context
    finally:
        await bus.stop()


class Watch:
    def __init__(self) -> None:
        self.availability: dict[str, str] = {}
        self.meta: dict[str, m.DeviceMeta] = {}
        self.readings: dict[str, list[Any]] = {}

    async def attach(self, broker: Mosquitto) -> Any:
        bus = await started_bus(broker, "test-admin", "watch")
        bus.subscribe(f"wattbus/v1/device/{NAME}/+/availability", bytes,
                      lambda msg: self.availability.__setitem__(msg.topic.split("/")[4], msg.payload.decode()))
        bus.subscribe(f"wattbus/v1/device/{NAME}/+/meta", m.DeviceMeta,
                      lambda msg: self.meta.__setitem__(msg.payload.device_id, msg.payload))
        bus.subscribe(f"wattbus/v1/device/{NAME}/+/reading", bytes,
                      lambda msg: self.readings.setdefault(msg.topic.split("/")[4], []).append(msg.payload))
        await subscriptions_active(bus)
        return bus


def test_backoff_doubles_from_the_first_failure_up_to_the_cap() -> None:
    poller = Poller.__new__(Poller)
    poller.interval_s, poller.max_backoff_s, poller.push = 2.0, 10.0, False
    delays = []
    for failures in range(6):
        poller.failures = failures
        delays.append(poller.delay_s())
    assert delays == [2.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert [n for n in range(1, 201) if worth_logging(n)] == [1, 2, 3, 50, 100, 150, 200]
    # push: the next read at once; with push_backoff (a serial line) a failed one waits as above
    poller.push = True
    for push_backoff, expected in ((False, [0.0, 0.0, 0.0, 0.0]), (True, [0.0, 2.0, 4.0, 8.0])):
        poller.push_backoff, delays = push_backoff, []
        for failures in range(4):
            poller.failures = failures
            delays.append(poller.delay_s())
        assert delays == expected, push_backoff


def test_capabilities_must_be_commands_the_adapter_handles() -> None:
    meta = m.DeviceMeta(device_id="r", kind="relay", source=NAME, protocol="http",
                        capabilities=["set_relay", "set_phases"])
    checked, unknown = check_capabilities(meta, (m.SetRelay,))
    assert checked.capabilities == ["set_relay"] and unknown == ["set_phases"]
    assert check_capabilities(meta, (m.SetRelay, m.SetPhases)) == (meta, [])
    assert tags((m.SetPowerLimit, m.SetConnected)) == ["set_power_limit", "set_connected"]


async def test_offline_after_failures_reidentify_and_back_online(ctx: ServiceContext[Any], broker: Mosquitto) -> None:
    watch = Watch()
    watcher = await watch.attach(broker)
    relay = Relay("relay-1", commands=(), capabilities=("set_relay",))  # claims what it cannot do
    poller = Poller(ctx, relay, interval_s=0.05, offline_after=2, max_backoff_s=0.2)
    task = asyncio.create_task(poller.run())
    try:
        await until(lambda: watch.availability.get("relay-1") == "online" and "relay-1" in watch.meta, 10, "online")
        assert watch.meta["relay-1"].capabilities == [] and ctx.counters.get("capability_errors") == 1
        relay.down = True
        await until(lambda: watch.availability.get("relay-1") == "offline", 10, "offline")
        assert poller.failures >= 2 and not poller.online and "no answer" in poller.last_error
        assert [(e.device_id, e.error) for e in ctx.device_errors()] == [("relay-1", "relay-1: no answer")]
        assert relay.identified == 1
        relay.down = False
        await until(lambda: watch.availability.get("relay-1") == "online", 10, "online again")
        assert relay.identified == 2  # identified again after it was lost: it may have been replaced
        assert ctx.counters.get("poll_failures") >= 2 and poller.failures == 0
        assert ctx.device_errors() == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await watcher.stop()
    assert relay.closed


async def test_router_refuses_routes_once_and_answers(ctx: ServiceContext[Any], broker: Mosquitto) -> None:
    fleet = Fleet(ctx)
    relay, sensor = Relay("relay-1"), Relay("sensor-1", commands=(), capabilities=())
    for device in (relay, sensor):
        await device.identify()
        fleet.start(Poller(ctx, device, interval_s=0.05, offline_after=2, max_backoff_s=0.2, identified=True))
    router = CommandRouter(ctx, fleet)
    router.subscribe()
    client = await started_bus(broker, "test-admin", "client")
    await subscriptions_active(ctx.bus)
    try:
        await until(lambda: all(fleet.get(d) and fleet.get(d).online for d in ("relay-1", "sensor-1")), 10,  # type: ignore[union-attr]
                    "both polled")
        first = await client.request(topics.device_command(NAME, "relay-1"), m.SetRelay(on=True, request_id="a"), 10)
        again = await client.request(topics.device_command(NAME, "relay-1"), m.SetRelay(on=True, request_id="a"), 10)
        assert first.status == again.status == "ok" and relay.executed == 1  # the repeat is answered, not run
        other = await client.request(topics.device_command(NAME, "sensor-1"), m.SetRelay(on=True), 10)
        assert other.status == "refused" and "accepts: none" in other.message
        unknown = await client.request(topics.device_command(NAME, "nobody"), m.SetRelay(on=True), 10)
        assert unknown.status == "refused" and "no device 'nobody'" in unknown.message
        garbage = await client.request(topics.device_command(NAME, "relay-1"), b'{"command": "set_relay"}', 10)
        assert garbage.status == "invalid" and "on" in garbage.message
        relay.down = True
        await until(lambda: not fleet.get("relay-1").online, 10, "relay offline")  # type: ignore[union-attr]
        lost = await client.request(topics.device_command(NAME, "relay-1"), m.SetRelay(on=False), 10)
        assert lost.status == "failed" and "not reachable" in lost.message and relay.executed == 1
        assert ctx.counters.get("commands_ok") == 1 and ctx.counters.get("commands_refused") == 2
        assert ctx.counters.get("commands_invalid") == 1 and ctx.counters.get("commands_duplicate") == 1
    finally:
        ctx.stopping.set()
        await fleet.run()
        await client.stop()
    assert relay.closed and sensor.closed


async def test_configured_device_wins_and_a_move_stops_the_old_pollers(ctx: ServiceContext[Any]) -> None:
    fleet = Fleet(ctx, Adoption(["http"], counters=ctx.counters))
    found: list[str] = []

    def started(device_id: str, adopted_as: str) -> bool:
        relay = Relay(device_id)
        relay.metas = [m.DeviceMeta(device_id=device_id, kind="relay", source=NAME, protocol="http")]
        found.append(device_id)
        return fleet.start(Poller(ctx, relay, interval_s=1, offline_after=2, max_backoff_s=2, identified=True),
                           adopted_as)

    assert started("relay-a", "relay-a") and "relay-a" in fleet.pollers
    assert started("relay-a2", "relay-a")  # a second device behind the same announcement
    configured = Relay("relay-a")
    configured.metas = [m.DeviceMeta(device_id="relay-a", kind="relay", source=NAME, protocol="http")]
    fleet.start(Poller(ctx, configured, interval_s=1, offline_after=2, max_backoff_s=2, identified=True))
    assert fleet.get("relay-a") is not None and fleet.get("relay-a").adapter is configured  # type: ignore[union-attr]
    assert "relay-a2" not in fleet.pollers  # the adopted endpoint's other device went with it
    assert not started("relay-a", "relay-a")  # announced again: config wins
    assert fleet.get("relay-a").adapter is configured  # type: ignore[union-attr]
    ctx.stopping.set()
    await fleet.run()
    assert not fleet.tasks


async def test_bad_command_payload_is_answered_on_the_result_topic(ctx: ServiceContext[Any],
                                                                     broker: Mosquitto) -> None:
    router = CommandRouter(ctx, Fleet(ctx))
    router.subscribe()
    watcher = await started_bus(broker, "test-admin", "watch")
    results: list[m.CommandResult] = []
    watcher.subscribe(topics.device_result(NAME, "relay-9"), m.CommandResult, lambda msg: results.append(msg.payload))
    await subscriptions_active(watcher)
    await subscriptions_active(ctx.bus)
    try:
        watcher.publish(topics.device_command(NAME, "relay-9"), codec.encode({"command": "nonsense"}))
        await until(lambda: bool(results), 10, "an answer")
        assert results[0].status == "invalid" and results[0].target == "relay-9"
    finally:
        await watcher.stop()


class Listener(Relay):
    """A device that speaks when it likes (an MQTT topic): `read` waits for its next message."""

    def __init__(self, device_id: str, silence_s: float) -> None:
        super().__init__(device_id, commands=(m.SetRelay,), capabilities=())
        self.silence_s = silence_s
        self.messages: asyncio.Queue[bool] = asyncio.Queue()

    async def read(self) -> list[m.ReadingBase]:
        try:
            self.on = await asyncio.wait_for(self.messages.get(), self.silence_s)
        except TimeoutError:
            raise Unreachable(f"{self.device_id}: silent for {self.silence_s:g} s") from None
        return [m.RelayReading(device_id=self.device_id, timestamp=m.utc_now(), on=self.on)]


async def test_push_device_silence_is_a_failed_poll_and_commands_never_wait_for_it(
        ctx: ServiceContext[Any], broker: Mosquitto) -> None:
    watch = Watch()
    watcher = await watch.attach(broker)
    listener = Listener("listener-1", silence_s=1.5)
    poller = Poller(ctx, listener, interval_s=60, offline_after=1, max_backoff_s=60, push=True)
    task = asyncio.create_task(poller.run())
    try:
        listener.messages.put_nowait(True)
        await until(lambda: len(watch.readings.get("listener-1", [])) == 1, 10, "the first message's reading")
        # The poll waits for the device's next message without the lock: a command gets through.
        assert not poller.lock.locked()
        result = await CommandRouter._execute(poller, m.SetRelay(on=False))
        assert result.status == "ok" and listener.executed == 1
        listener.messages.put_nowait(False)
        await until(lambda: len(watch.readings.get("listener-1", [])) == 2, 10, "one reading per message")
        await until(lambda: watch.availability.get("listener-1") == "offline", 10, "offline when silent")
        assert "silent" in poller.last_error and poller.delay_s() == 0.0
        listener.messages.put_nowait(True)
        await until(lambda: watch.availability.get("listener-1") == "online", 10, "online with the next message")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await watcher.stop()


class SlowStart(Relay):
    """A relay whose first read takes until the test opens `gate` (a device slower than its bridge)."""

    def __init__(self, device_id: str) -> None:
        super().__init__(device_id)
        self.gate = asyncio.Event()

    async def read(self) -> list[m.ReadingBase]:
        await self.gate.wait()
        return await super().read()


async def test_a_command_at_start_up_waits_for_the_first_read_and_online_follows_a_state(
        ctx: ServiceContext[Any], broker: Mosquitto) -> None:
    """The start-up race (#25): the service is up and the device announced before it has been read;
    a consumer's command in that moment is executed after the first read, not answered `failed`."""
    order: list[str] = []
    watcher = await started_bus(broker, "test-admin", "order")
    for kind in ("meta", "reading", "availability"):
        watcher.subscribe(f"wattbus/v1/device/{NAME}/slow-1/{kind}", bytes,
                          lambda msg, kind=kind: order.append(f"{kind}:{msg.payload.decode()[:7]}"))
    await subscriptions_active(watcher)
    fleet = Fleet(ctx, lease_s=0)
    slow, dead = SlowStart("slow-1"), Relay("dead-1")
    router = CommandRouter(ctx, fleet)
    router.subscribe()
    await subscriptions_active(ctx.bus)
    fleet.start(Poller(ctx, slow, interval_s=60, offline_after=2, max_backoff_s=60))
    await dead.identify()  # known, but its first read fails: the answer is its error, not a wait
    dead.down = True
    fleet.start(Poller(ctx, dead, interval_s=60, offline_after=2, max_backoff_s=60, identified=True))
    client = await started_bus(broker, "test-admin", "client")
    try:
        await until(lambda: any(o.startswith("meta") for o in order), 10, "the device announced")
        command = asyncio.create_task(client.request(topics.device_command(NAME, "slow-1"),
                                                     m.SetRelay(on=True, request_id="early"), 10))
        await until(lambda: len(router._running) == 1, 10, "the command received (and waiting)")
        assert not command.done() and slow.executed == 0 and not any(o.startswith("availability") for o in order)
        slow.gate.set()
        result = await command
        assert result.status == "ok" and slow.executed == 1, result
        assert ctx.counters.get("commands_failed") == 0
        await until(lambda: any(o.startswith("availability") for o in order), 10, "online")
        # online follows a state: the first reading is on the bus before the device's `online`
        assert [o.split(":")[0] for o in order].index("reading") < order.index("availability:online"), order
        lost = await client.request(topics.device_command(NAME, "dead-1"), m.SetRelay(on=True), 10)
        assert lost.status == "failed" and "dead-1: no answer" in lost.message and dead.executed == 0
    finally:
        ctx.stopping.set()
        await fleet.run()
        for device in ("slow-1", "dead-1"):
            for kind in ("meta", "availability"):
                client.publish(f"wattbus/v1/device/{NAME}/{device}/{kind}", b"", retain=True)
        await client.stop()
        await watcher.stop()
