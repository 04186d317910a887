"""What device ownership across bridge replicas costs on the broker (issue 26), at 1000 devices.

Real parts: Mosquitto with the project's ACL, three replicas' `Fleet`s (wattbus.bridge, each on
its own bus client logged in as sunspec-bridge) sharing 1000 devices, and a watcher counting every
lease and claim message with its actual size. The devices answer from memory (no readings): only
the ownership traffic is on the bus. A bridge without ownership sends none of it.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.bridge import Fleet, Poller
from wattbus.bus import Bus
from wattbus.config import LoadedConfig, ServiceCommon
from wattbus.counters import Counters
from wattbus.log import get_logger
from wattbus.runner import ServiceContext

from tests.support.servers import Mosquitto

SOURCE = "sunspec-bridge"
DEVICES = 1000
LEASE_S = 6.0
WINDOW_S = 30.0
REPLICAS = ("bench-a", "bench-b", "bench-c")


class Quiet:
    """A device that is always there and has nothing to say: no readings, only ownership."""

    commands: tuple[type[m.CommandBase], ...] = ()
    errors: tuple[type[Exception], ...] = (OSError,)

    def __init__(self, device_id: str) -> None:
        self.metas = [m.DeviceMeta(device_id=device_id, kind="meter", source=SOURCE, protocol="simulated")]

    async def identify(self) -> list[m.DeviceMeta]:
        return self.metas

    async def read(self) -> list[m.ReadingBase]:
        return []

    async def execute(self, command: m.CommandBase) -> m.CommandResult:
        # commands = (): the router refuses every command before it gets here; answer alike anyway
        return m.CommandResult(status="refused", target=self.metas[0].device_id,
                               message="a bench device without commands")

    async def close(self) -> None:
        return None


def packet_bytes(topic: str, payload: bytes) -> int:
    """An MQTT 5 QoS 1 PUBLISH as the bus sends it: fixed header, topic, packet id, the
    content-type property, payload."""
    props = 1 + 2 + len(topics.CONTENT_TYPE)
    body = 2 + len(topic.encode()) + 2 + 1 + props + len(payload)
    return 1 + (1 if body < 128 else 2) + body


class Counted:
    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.sizes: list[int] = []

    def add(self, topic: str, payload: bytes) -> None:
        size = packet_bytes(topic, payload)
        self.messages += 1
        self.bytes += size
        self.sizes.append(size)


async def replica(broker: Mosquitto, instance: str) -> tuple[ServiceContext[Any], Fleet]:
    bus = Bus(broker.bus_config(SOURCE), SOURCE, instance)
    await bus.start()
    ctx = ServiceContext(SOURCE, ServiceCommon(instance=instance), LoadedConfig({}, None, {}), bus, Counters(),
                         get_logger(instance), asyncio.Event())
    fleet = Fleet(ctx, lease_s=LEASE_S)
    for n in range(DEVICES):
        fleet.start(Poller(ctx, Quiet(f"bench-{n:04d}"), interval_s=3600, offline_after=3, max_backoff_s=3600,
                           identified=True))
    return ctx, fleet


def taken(replicas: list[tuple[ServiceContext[Any], Fleet]]) -> int:
    """Claims published so far: one per device a replica took."""
    return sum(ctx.counters.get("devices_taken") for ctx, _ in replicas)


def spread(replicas: list[tuple[ServiceContext[Any], Fleet]]) -> dict[str, int]:
    return {ctx.instance: sum(1 for d in fleet.pollers if fleet.holds(d)) for ctx, fleet in replicas}


async def run(broker: Mosquitto) -> list[str]:
    # The watcher counts the lease traffic as delivered; claims come in bursts of hundreds, more
    # than the broker queues for one subscriber, so they are counted by the replicas that send them.
    watcher = Bus(broker.bus_config(), "bench", "ownership")
    leases = Counted()
    watcher.subscribe(f"wattbus/v1/service/{SOURCE}/+/lease", bytes, lambda msg: leases.add(msg.topic, msg.payload))
    claim_sizes: list[int] = []
    watcher.subscribe(f"wattbus/v1/device/{SOURCE}/+/owner", bytes,
                      lambda msg: claim_sizes.append(packet_bytes(msg.topic, msg.payload)))
    await watcher.start()
    await watcher.wait_connected(10)
    started = time.monotonic()
    replicas = [await replica(broker, name) for name in REPLICAS]
    while sum(spread(replicas).values()) < DEVICES or 0 in spread(replicas).values():
        await asyncio.sleep(0.1)
    start_s = time.monotonic() - started
    await asyncio.sleep(LEASE_S)  # hand-overs to the later replicas done
    start_claims, split = taken(replicas), spread(replicas)

    leases_before, bytes_before = leases.messages, leases.bytes
    await asyncio.sleep(WINDOW_S)
    rate = (leases.messages - leases_before) / WINDOW_S
    byte_rate = (leases.bytes - bytes_before) / WINDOW_S
    steady_claims = taken(replicas) - start_claims
    lease_size = max(leases.sizes)
    claim_size = sorted(claim_sizes)[len(claim_sizes) // 2]

    # A crash: the last replica stops renewing and polling without releasing (SIGKILL).
    _, fleet_c = replicas[-1]
    orphans = {d for d in fleet_c.pollers if fleet_c.holds(d)}
    if fleet_c.ownership is not None:
        await fleet_c.ownership.stop()
    for task in list(fleet_c.tasks):
        task.cancel()
    crashed = time.monotonic()
    claims_at_crash = taken(replicas)
    survivors = replicas[:-1]
    while not all(any(fleet.holds(d) for _, fleet in survivors) for d in orphans):
        await asyncio.sleep(0.05)
    takeover = time.monotonic() - crashed
    crash_claims = taken(replicas) - claims_at_crash

    for ctx, fleet in replicas:
        ctx.stopping.set()
        await fleet.run()
        await ctx.bus.stop()
    await watcher.stop()
    peers = len(REPLICAS)  # every replica reads every lease
    per_device_rate = DEVICES * 3 / LEASE_S
    return [
        f"{DEVICES} devices, {len(REPLICAS)} replicas, lease {LEASE_S:g} s (renewed every {LEASE_S / 3:g} s), "
        f"{WINDOW_S:g} s window. Sizes are MQTT 5 PUBLISH packets as sent (topic, content type, payload).",
        "",
        "| design | messages/s published | bytes/s published | bytes/s delivered to the replicas |",
        "|---|---:|---:|---:|",
        "| no ownership (every replica polls everything) | 0 | 0 | 0 |",
        f"| per-replica lease (this design, measured) | {rate:.2f} | {byte_rate:,.0f} | {byte_rate * peers:,.0f} |",
        f"| per-device claim renewed every lease/3 (computed) | {per_device_rate:,.0f} | "
        f"{per_device_rate * claim_size:,.0f} | {per_device_rate * claim_size * peers:,.0f} |",
        "",
        f"Lease message {lease_size} bytes, claim message {claim_size} bytes (median). Claims are published "
        f"only when a device changes hands: {start_claims:,} while the 3 replicas started one after the other "
        f"(all {DEVICES} polled after {start_s:.1f} s; split {split}), {steady_claims} in the steady window, "
        f"{crash_claims:,} when one replica crashed ({len(orphans)} devices polled by a survivor "
        f"{takeover:.1f} s after it stopped, lease {LEASE_S:g} s).",
    ]


def main() -> str:
    with tempfile.TemporaryDirectory(prefix="bench-ownership-") as tmp:
        broker = Mosquitto(Path(tmp))
        broker.start()
        try:
            return "\n".join(asyncio.run(run(broker)))
        finally:
            broker.stop()


if __name__ == "__main__":
    print(main())
