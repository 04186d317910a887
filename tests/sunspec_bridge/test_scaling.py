"""`--scale sunspec-bridge=N`: replicas as real processes share the simulated devices (issue 26).

Each device is polled by exactly one replica (its claim on device/<source>/<id>/owner, and no two
readings of a device closer than half the poll interval), a killed replica's devices are polled
again by a survivor within the lease, a paused replica publishes nothing after it wakes, and a
command re-sent across a take-over runs once.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.bridge.ownership import Claim, owner_of
from wattbus.bus import Bus, Message

from tests.support.bus_helpers import started_bus, subscriptions_active, until

SOURCE = "sunspec-bridge"
LEASE_S = 2.0
INTERVAL_S = 0.5
INVERTER = "fronius-34119102"
MAINS = {INVERTER, "fronius-18420047", "sma-3004512345", "wattbus-sim-fl-000771",
         "eastron-sdm630-21003456", "eastron-sdm120-12004567", "eastron-sdm72-72005678"}


class Watch:
    """What the replicas put on the bus: claims, readings (with arrival times) and each one's status."""

    def __init__(self, bus: Bus) -> None:
        self.claims: dict[str, Claim] = {}
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self.status: dict[str, m.ServiceStatus] = {}
        bus.subscribe(f"wattbus/v1/device/{SOURCE}/+/owner", Claim, self._claim)
        bus.subscribe(f"wattbus/v1/device/{SOURCE}/+/reading", m.Reading, self._reading)
        bus.subscribe(f"wattbus/v1/service/{SOURCE}/+/status", m.ServiceStatus, self._status)

    def _claim(self, msg: Message[Claim]) -> None:
        self.claims[msg.topic.split("/")[4]] = msg.payload

    def _reading(self, msg: Message[m.ReadingBase]) -> None:
        self.arrivals[msg.payload.device_id].append(time.monotonic())

    def _status(self, msg: Message[m.ServiceStatus]) -> None:
        self.status[msg.payload.instance] = msg.payload

    def owners(self) -> dict[str, str]:
        return {d: c.instance for d, c in self.claims.items() if d in MAINS}

    def counter(self, instance: str, name: str) -> int:
        status = self.status.get(instance)
        return int(status.counters.get(name, 0)) if status else 0

    def doubles(self, since: float) -> dict[str, int]:
        """Devices read twice within half a poll interval since `since`: two replicas polling it."""
        found: dict[str, int] = {}
        for device, times in self.arrivals.items():
            recent = [t for t in times if t >= since]
            close = sum(1 for a, b in itertools.pairwise(recent) if b - a < INTERVAL_S / 2)
            if close:
                found[device] = close
        return found

    def read_after(self, device: str, since: float) -> float | None:
        return next((t for t in self.arrivals.get(device, []) if t > since), None)


def config(path: Path, sunspec_port: int, sdm_port: int) -> Path:
    meters = "".join(f"""
[[sunspec-bridge.devices]]
host = "127.0.0.1"
port = {sdm_port}
protocol = "eastron_{model}"
unit_ids = [{unit}]
""" for unit, model in ((1, "sdm630"), (2, "sdm120"), (3, "sdm72")))
    path.write_text(f"""[sunspec-bridge]
poll_interval_s = {INTERVAL_S}
offline_after_failures = 2
max_backoff_s = 2
status_interval_s = 1
adopt = false
lease_s = {LEASE_S}
[[sunspec-bridge.devices]]
host = "127.0.0.1"
port = {sunspec_port}
unit_ids = [1, 2, 126, 240]
controls = true
{meters}""")
    return path


async def setup(broker: Any, start_sim: Callable[..., Any], tmp_path: Path) -> tuple[Path, Bus, Watch]:
    sunspec = start_sim("fronius", "sma", "float")
    sdm = start_sim("sdm630", "sdm120", "sdm72", extra=("--static", "--sdm-unit", "1"))
    bus = await started_bus(broker, "test-admin")
    watch = Watch(bus)
    await subscriptions_active(bus)
    return config(tmp_path / "w.toml", sunspec.port, sdm.port), bus, watch


def replica(start_service: Any, broker: Any, path: Path, instance: str) -> Any:
    env = {**broker.env(SOURCE), "WATTBUS_SUNSPEC_BRIDGE_INSTANCE": instance}
    return start_service("wattbus_sunspec_bridge", "--config", str(path), env=env)


async def split_among(watch: Watch, names: set[str], what: str) -> dict[str, str]:
    def settled() -> bool:
        return (set(watch.owners()) == MAINS and set(watch.owners().values()) == names
                and all(watch.read_after(d, time.monotonic() - 2 * INTERVAL_S) for d in MAINS))

    await until(settled, 40, what)
    # A device the newest replica was given moves after one renewal period (its last holder lets
    # go first): the split is final once that has passed.
    await asyncio.sleep(LEASE_S / 3 + 0.5)
    await until(settled, 10, what)
    return watch.owners()


def test_rendezvous_moves_only_the_leaving_replicas_devices() -> None:
    devices = [f"meter-{n}" for n in range(1000)]
    three = {d: owner_of(d, {"r1", "r2", "r3"}) for d in devices}
    two = {d: owner_of(d, ["r2", "r1"]) for d in devices}  # the order seen does not matter
    assert all(two[d] == three[d] for d in devices if three[d] != "r3")  # nothing else moves
    assert min(Counter(three.values()).values()) > 250  # about a third each
    assert owner_of("meter-1", set()) is None


async def test_replicas_split_the_devices_and_a_survivor_takes_a_killed_ones(
        broker: Any, start_sim: Callable[..., Any], start_service: Any, tmp_path: Path) -> None:
    path, bus, watch = await setup(broker, start_sim, tmp_path)
    procs = {name: replica(start_service, broker, path, name) for name in ("split-a", "split-b")}
    try:
        await split_among(watch, set(procs), "2 replicas share the 7 devices")
        steady = time.monotonic()
        await asyncio.sleep(3)
        assert watch.doubles(steady) == {}  # each device polled by exactly one replica

        procs["split-c"] = replica(start_service, broker, path, "split-c")
        await split_among(watch, set(procs), "3 replicas share the 7 devices")
        steady = time.monotonic()
        await asyncio.sleep(3)
        assert watch.doubles(steady) == {}

        victim = watch.owners()[INVERTER]
        orphans = {d for d, owner in watch.owners().items() if owner == victim}
        killed = time.monotonic()
        procs.pop(victim).proc.send_signal(signal.SIGKILL)
        await until(lambda: all(watch.owners()[d] != victim and watch.read_after(d, killed) for d in orphans),
                    4 * LEASE_S, f"{victim}'s devices polled again")
        takeover = max(watch.read_after(d, killed) or 0 for d in orphans) - killed
        print(f"take-over after SIGKILL: {takeover:.2f} s (lease {LEASE_S} s, {len(orphans)} devices)")
        assert takeover <= 2 * LEASE_S
        assert set(watch.owners().values()) == set(procs)
        steady = time.monotonic()
        await asyncio.sleep(3)
        assert watch.doubles(steady) == {}
    finally:
        for name, proc in procs.items():
            assert proc.stop() == 0, f"{name}: {proc.output()[-3000:]}"
        await bus.stop()


async def test_a_paused_replica_wakes_fenced_and_commands_run_once(
        broker: Any, start_sim: Callable[..., Any], start_service: Any, tmp_path: Path) -> None:
    path, bus, watch = await setup(broker, start_sim, tmp_path)
    procs = {name: replica(start_service, broker, path, name) for name in ("pause-a", "pause-b")}
    command = topics.device_command(SOURCE, INVERTER)
    try:
        await split_among(watch, set(procs), "2 replicas share the 7 devices")
        victim = watch.owners()[INVERTER]
        survivor = next(name for name in procs if name != victim)
        first = await bus.request(command, m.SetPowerLimit(limit_pct=40, request_id="before"), timeout=10)
        assert first.status == "ok", first

        procs[victim].proc.send_signal(signal.SIGSTOP)
        paused = time.monotonic()
        # In flight while its owner is paused: nobody may run it yet (no answer, or `failed`).
        early = await bus.request(command, m.SetPowerLimit(limit_pct=30, request_id="during"), timeout=1)
        assert early.status in ("timeout", "failed"), early
        await until(lambda: watch.owners()[INVERTER] == survivor and bool(watch.read_after(INVERTER, paused)),
                    4 * LEASE_S, "the survivor polls the paused replica's inverter")
        again = await bus.request(command, m.SetPowerLimit(limit_pct=30, request_id="during"), timeout=10)
        repeat = await bus.request(command, m.SetPowerLimit(limit_pct=40, request_id="before"), timeout=10)
        assert again.status == "ok" and repeat == first  # the previous owner's result, not a new run

        await asyncio.sleep(INTERVAL_S)  # the survivor's poll right after its command is out
        procs[victim].proc.send_signal(signal.SIGCONT)
        woke = time.monotonic()
        await asyncio.sleep(3)
        assert watch.doubles(woke) == {}  # the stale replica published no reading beside the survivor
        await until(lambda: set(watch.owners().values()) == set(procs), 20, "the woken replica rejoins")
        await asyncio.sleep(1.5)  # both statuses carry the final counters
        executed = {name: watch.counter(name, "commands_ok") for name in procs}
        assert executed == {victim: 1, survivor: 1}, executed  # "before" and "during", once each
        assert watch.counter(survivor, "commands_duplicate") == 1
    finally:
        for name, proc in procs.items():
            proc.proc.send_signal(signal.SIGCONT)
            assert proc.stop() == 0, f"{name}: {proc.output()[-3000:]}"
        await bus.stop()


async def test_a_serial_meter_stays_with_the_replica_that_has_the_port(
        broker: Any, start_sim: Callable[..., Any], start_service: Any, tmp_path: Path) -> None:
    shared = start_sim("fronius", "sma", "float")
    rtu = start_sim("sdm630", rtu=True)
    meter = "eastron-sdm630-21003456"
    tcp = {d for d in MAINS if not d.startswith("eastron-")}
    # Names that hash the meter to the replica without the port: only `local` keeps it where it is.
    near = "serial-a"
    far = next(f"serial-b{n}" for n in range(20) if owner_of(meter, {near, f"serial-b{n}"}) != near)
    common = config(tmp_path / "common.toml", shared.port, 1).read_text().split("[[sunspec-bridge.devices]]")
    tcp_only = "[[sunspec-bridge.devices]]".join(common[:2])  # the section and the TCP endpoint
    (tmp_path / "far.toml").write_text(tcp_only)
    (tmp_path / "near.toml").write_text(tcp_only + f"""
[[sunspec-bridge.devices]]
serial_port = "{rtu.link}"
protocol = "eastron_sdm630"
unit_ids = [1]
""")
    bus = await started_bus(broker, "test-admin")
    watch = Watch(bus)
    results: list[m.CommandResult] = []
    bus.subscribe(topics.device_result(SOURCE, meter), m.CommandResult, lambda msg: results.append(msg.payload))
    await subscriptions_active(bus)
    procs = {name: replica(start_service, broker, tmp_path / f"{role}.toml", name)
             for name, role in ((near, "near"), (far, "far"))}
    try:
        await until(lambda: watch.claims.get(meter) is not None and watch.claims[meter].instance == near
                    and bool(watch.read_after(meter, time.monotonic() - 2 * INTERVAL_S))
                    and {watch.claims[d].instance for d in tcp if d in watch.claims} == {near, far}, 40,
                    "the meter polled by the replica with the port, the TCP devices shared")
        steady = time.monotonic()
        bus.publish(topics.device_command(SOURCE, meter), m.SetPowerLimit(limit_pct=10, request_id="meter"))
        await asyncio.sleep(3)
        assert watch.doubles(steady) == {}
        # one answer, from the replica with the port (the messages tell which replica answered)
        assert [r.status for r in results] == ["refused"], [r.message for r in results]
    finally:
        for name, proc in procs.items():
            assert proc.stop() == 0, f"{name}: {proc.output()[-3000:]}"
        await bus.stop()
