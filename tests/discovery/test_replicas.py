"""Two discovery replicas on a real broker with the shipped ACL, as real processes: one sweeps and
answers `rescan`, the other stands by. The second to start is named so that rendezvous hashing
gives it the sweep: it takes the role from the live first one, which stops sweeping; SIGKILL it
and the first takes the role back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.bridge.ownership import owner_of
from wattbus.bus import Message
from wattbus_discovery.sweeper import ROLE

from tests.discovery.lan import Lan
from tests.discovery.test_service import Announcements, write_config
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto

LEASE_S = 1.5
SMA = "sma-3004512345"


async def test_one_sweeper_stand_by_takes_over(lan: Lan, broker: Mosquitto, tmp_path: Path,
                                               start_service: Callable[..., Any]) -> None:
    await lan.sunspec(1, "sma")
    admin = await started_bus(broker, "test-admin", "disc-replicas")
    seen = Announcements()
    admin.subscribe(topics.ALL_DISCOVERY, bytes, seen)
    status: dict[str, dict[str, int]] = {}

    def on_status(msg: Message[m.ServiceStatus]) -> None:
        status[msg.topic.split("/")[4]] = dict(msg.payload.counters)

    admin.subscribe(f"{topics.PREFIX}/service/discovery/+/status", m.ServiceStatus, on_status)
    config = str(write_config(tmp_path, lan))

    def start(instance: str) -> Any:
        # The end-to-end test's config, with a short lease and status, without mDNS (the sweep is the role)
        return start_service("wattbus_discovery", "--config", config, env=broker.env("discovery") | {
            "WATTBUS_DISCOVERY_INSTANCE": instance, "WATTBUS_DISCOVERY_LEASE_S": str(LEASE_S),
            "WATTBUS_DISCOVERY_STATUS_INTERVAL_S": "1", "WATTBUS_DISCOVERY_MDNS": "false"})

    def count(instance: str, name: str) -> int:
        return status.get(instance, {}).get(name, 0)

    stand_by = "disc-a"
    sweeper = next(n for n in (f"disc-{i}" for i in range(1, 200)) if owner_of(ROLE, {stand_by, n}) == n)
    procs = {stand_by: start(stand_by)}
    try:
        await until(lambda: count(stand_by, "sweeps") == 1 and SMA in seen.present(), 30,
                    f"{stand_by} alone sweeps and finds the inverter (log: {procs[stand_by].log})")
        procs[sweeper] = start(sweeper)
        # The newcomer takes the role (a renewal period after the other saw its lease) and sweeps.
        await until(lambda: count(sweeper, "sweeper") == 1 and count(sweeper, "sweeps") == 1
                    and count(stand_by, "sweeper") == 0, 30, f"{sweeper} sweeps, {stand_by} stands by")
        before = {i: count(i, "sweeps") for i in procs}

        result = await admin.request(topics.DISCOVERY_COMMAND, m.Rescan(request_id="r1"), timeout=30)
        assert result.status == "ok" and result.applied["found"] == 1
        await until(lambda: count(sweeper, "sweeps") >= before[sweeper] + 1
                    and count(stand_by, "commands_left_to_sweeper") >= 1, 10, "the rescan seen by both")
        assert count(stand_by, "sweeps") == before[stand_by]  # the stand-by did not sweep
        assert count(stand_by, "sweeper") == 0 and count(sweeper, "sweeper") == 1
        assert count(stand_by, "followed") >= 1  # it keeps the sweeper's announcements

        # A crash of the sweeper: its lease runs out, the stand-by sweeps at once when it takes over.
        procs[sweeper].proc.kill()
        killed = asyncio.get_running_loop().time()
        await until(lambda: count(stand_by, "sweeper") == 1 and count(stand_by, "sweeps") > before[stand_by],
                    30, f"{stand_by} takes the sweep over (log: {procs[stand_by].log})")
        took = asyncio.get_running_loop().time() - killed
        print(f"take-over (kill -> stand-by's sweep reported, status every 1 s): {took:.1f} s, lease {LEASE_S} s")
        result = await admin.request(topics.DISCOVERY_COMMAND, m.Rescan(request_id="r2"), timeout=30)
        assert result.status == "ok" and result.target == "discovery" and SMA in seen.present()
        assert "sweeper" in procs[stand_by].output() and "Traceback" not in procs[stand_by].output()
    finally:
        for proc in procs.values():
            proc.stop()
        # Leave the session broker clean (the next test's discovery would take these for its own
        # devices at other addresses): as `final` messages, which stop() waits to see acknowledged.
        await admin.stop(final=[*((f"{topics.PREFIX}/service/discovery/{i}/lease", b"") for i in procs),
                                *((topics.discovery(device_id), b"") for device_id in seen.latest)])
