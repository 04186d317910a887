"""The device liveness rule (wattbus.liveness) on a real broker with the shipped ACL: bridges' own
accounts publish leases, claims, availabilities and wills as the bridge toolkit does, a consumer's
Liveness judges them (issue 26). A broker of the test's own: the rule looks at every instance of a
source, and the session broker holds other tests' retained ones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.bridge.ownership import Claim, Lease, lease_topic, owner_topic
from wattbus.bus import Bus
from wattbus.liveness import Liveness, Verdict

from tests.support.bus_helpers import started_bus, subscriptions_active, until
from tests.support.servers import Mosquitto

SOURCE = "sunspec-bridge"
LEASE_S = 0.6


class Replica:
    """A bridge replica's bus traffic: its lease every lease/3, its claims, its devices' availability."""

    def __init__(self, bus: Bus, instance: str) -> None:
        self.bus, self.instance, self.seq = bus, instance, 0
        self.task: asyncio.Task[None] | None = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        while True:
            self.lease()
            await asyncio.sleep(LEASE_S / 3)

    def lease(self, released: bool = False) -> None:
        self.seq += 1
        self.bus.publish(lease_topic(SOURCE, self.instance), Lease(
            instance=self.instance, incarnation=1, seq=self.seq, lease_s=LEASE_S, released=released,
            lease_until=0.0 if released else time.time() + LEASE_S), retain=True)

    def claim(self, device_id: str, epoch: int) -> None:
        self.bus.publish(owner_topic(SOURCE, device_id), Claim(instance=self.instance, epoch=epoch, lease_s=LEASE_S,
                                                               since=time.time()), retain=True)

    def stop(self, released: bool = False) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None
        if released:
            self.lease(released=True)


async def test_the_rule(private_broker: Mosquitto) -> None:
    bridge = await started_bus(private_broker, SOURCE, "lv")
    house = await started_bus(private_broker, "house-sim", "lv")
    consumer = await started_bus(private_broker, "http-api", "lv")
    seen: list[dict[str, Verdict]] = []
    live = Liveness(consumer, seen.append)
    live.start()
    await subscriptions_active(consumer)

    def verdict(device_id: str, source: str = SOURCE) -> Verdict:
        return live.of(source, device_id)

    async def until_verdict(device_id: str, test: Callable[[Verdict], bool], what: str, source: str = SOURCE) -> Any:
        await until(lambda: test(verdict(device_id, source)), 10, f"{what} (now {verdict(device_id, source)})")
        return verdict(device_id, source)

    inverter, battery = "lv-inverter", "lv-battery"
    r1, r2 = Replica(bridge, "lv-r1"), Replica(bridge, "lv-r2")
    replicas = [r1, r2]
    try:
        bridge.publish(topics.device_meta(SOURCE, battery), m.DeviceMeta(
            device_id=battery, kind="battery", source=SOURCE, protocol="sunspec", parent_id=inverter), retain=True)
        for device in (inverter, battery):
            bridge.publish(topics.device_availability(SOURCE, device), m.ONLINE, retain=True)
        r1.claim(inverter, 1)
        now = await until_verdict(inverter, lambda v: v.owner == f"{SOURCE}/lv-r1" and v.online is True, "r1 owns it")
        assert now.reason is None
        # The battery has no claim of its own: its parent's counts.
        await until_verdict(battery, lambda v: v.owner == f"{SOURCE}/lv-r1" and v.online is True, "via the parent")

        # r1 stops cleanly while r2 lives: still online (r2 takes it over), then r2's claim.
        r1.stop(released=True)
        moving = await until_verdict(inverter, lambda v: v.reason is not None, "the owner gone, a survivor there")
        assert moving.online is True and "released its lease" in moving.reason and "another replica" in moving.reason
        r2.claim(inverter, 2)
        now = await until_verdict(inverter, lambda v: v.owner == f"{SOURCE}/lv-r2" and v.reason is None, "r2's claim")
        assert now.online is True

        # r2 dies without a word (no will here: a paused process): offline once its lease lapses.
        r2.stop()
        gone = await until_verdict(inverter, lambda v: v.online is False, "offline after the lapse")
        assert gone.reason is not None and gone.reason.startswith(f"owner {SOURCE}/lv-r2 lease lapsed"), gone
        assert verdict(battery).online is False
        assert any(ref == f"{SOURCE}/{inverter}" and not v.online for batch in seen for ref, v in batch.items())

        # The bridge's own word wins: offline while the owner lives.
        r3 = Replica(bridge, "lv-r3")
        replicas.append(r3)
        r3.claim(inverter, 3)
        await until_verdict(inverter, lambda v: v.online is True, "r3 owns it")
        bridge.publish(topics.device_availability(SOURCE, inverter), m.OFFLINE, retain=True)
        said = await until_verdict(inverter, lambda v: v.online is False, "the bridge says offline")
        assert said.reason == f"{SOURCE} cannot read it"
        # Its will (a SIGKILLed process's socket closes): offline at once, whatever the lease says.
        bridge.publish(topics.device_availability(SOURCE, inverter), m.ONLINE, retain=True)
        await until_verdict(inverter, lambda v: v.online is True, "online again")
        bridge.publish(topics.service_availability(SOURCE, "lv-r3"), m.OFFLINE, retain=True)
        will = await until_verdict(inverter, lambda v: v.online is False, "offline by the will")
        assert will.reason is not None and "last will" in will.reason

        # No claim (a service without replicas): its availability, unless every instance's will fired.
        meter = "lv-meter"
        house.publish(topics.service_availability("house-sim", "lv"), m.ONLINE, retain=True)
        house.publish(topics.device_availability("house-sim", meter), m.ONLINE, retain=True)
        await until_verdict(meter, lambda v: v.online is True and v.owner is None, "claimless online", "house-sim")
        house.publish(topics.service_availability("house-sim", "lv"), m.OFFLINE, retain=True)
        down = await until_verdict(meter, lambda v: v.online is False, "its service's will", "house-sim")
        assert down.reason == "house-sim is not running (its last will)"
    finally:
        for replica in replicas:
            replica.stop()
        live.stop()
        for bus in (bridge, house, consumer):
            await bus.stop()


async def test_the_http_apis_service_view_hears_wills_beside_the_setup_store(private_broker: Mosquitto) -> None:
    """The http-api's SiteState and its setup store both follow services' availability; one filter
    subscribed twice by one client is one subscription at the broker, so each uses its own."""
    from wattbus.counters import Counters
    from wattbus.log import get_logger
    from wattbus_http_api.setup_store import SERVICE_AVAILABILITY
    from wattbus_http_api.state import SiteState

    consumer = await started_bus(private_broker, "http-api", "lv2")
    house = await started_bus(private_broker, "house-sim", "lv2")
    state = SiteState(Counters(), get_logger("test"))
    store_seen: list[bytes] = []
    try:
        state.subscribe(consumer)
        consumer.subscribe(SERVICE_AVAILABILITY, bytes, lambda msg: store_seen.append(msg.payload))  # as setup_store
        await subscriptions_active(consumer)
        house.publish(topics.service_availability("house-sim", "lv2"), m.OFFLINE, retain=True)
        await until(lambda: state.service_online("house-sim") is False and m.OFFLINE.encode() in store_seen, 10,
                    "both handlers saw the will")
    finally:
        if state.liveness is not None:
            state.liveness.stop()
        await house.stop()
        await consumer.stop()
