"""The compose test's replica check: `--scale goe-shelly-bridge=2` shares the bridge's devices.

The goe-shelly-bridge reads four simulated devices of the test house (grid meter, charger, two
relays). Scaled to two replicas, each device is claimed by exactly one of them, the one rendezvous
hashing gives it (wattbus.bridge.ownership), and no device is read more often than one replica
read it before. Then one replica's process is killed from the host, as a crash: the survivor
claims its devices and reads them again within 2 x lease_s.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from wattbus.bridge.ownership import DEFAULT_LEASE_S, owner_of

BRIDGE = "goe-shelly-bridge"
WINDOW_S = 12  # readings counted over this long, once with one replica and once with two
SETTLE_S = 45  # the newcomer takes its share within a renewal period of seeing the other's lease
PREFIX = f"wattbus/v1/device/{BRIDGE}"


class Compose(Protocol):
    def run(self, *args: str, timeout: float = 300, check: bool = True, quiet: bool = False) -> str: ...
    def containers(self, *, all_: bool = False) -> list[dict[str, object]]: ...
    def subscribe(self, topic: str, seconds: int, until: Callable[[list[str]], bool] | None = None) -> list[str]: ...


def _device(topic: str) -> str:
    return topic.split("/")[4]  # wattbus/v1/device/<bridge>/<id>/<kind>


def _count_readings(dc: Compose) -> Counter[str]:
    return Counter(_device(line.split("\t")[0]) for line in dc.subscribe(f"{PREFIX}/+/reading", WINDOW_S))


def _claims(lines: list[str]) -> dict[str, dict[str, Any]]:
    """The newest claim per device among `topic TAB payload` lines (retained first, then live)."""
    out: dict[str, dict[str, Any]] = {}
    for line in lines:
        topic, _, payload = line.partition("\t")
        if topic.endswith("/owner") and payload:
            out[_device(topic)] = json.loads(payload)
    return out


def _replicas(dc: Compose) -> dict[str, str]:
    """instance (the container's hostname: its short id) -> container id, of the running replicas."""
    rows = [r for r in dc.containers() if r["Service"] == BRIDGE and r["State"] == "running"]
    return {str(r["ID"])[:12]: str(r["ID"]) for r in rows}


def check(dc: Compose, work: Path, expected: set[str], others: dict[str, int],
          wait_running: Callable[[dict[str, int]], str], failed: type[Exception]) -> str:
    """`others`: the replicas of every other service, kept as they are while the bridge scales."""
    section = tomllib.loads((work / "config" / "wattbus.toml").read_text())[BRIDGE]
    lease_s = float(section.get("lease_s", DEFAULT_LEASE_S))
    read = sorted(d.split("/", 1)[1] for d in expected if d.startswith(BRIDGE + "/"))
    configured = len(section.get("devices", []))  # one poller, so one claim, each
    if len(read) < 2:
        raise failed(f"the test house gives {BRIDGE} {read}: two devices at least are needed to share")
    before = _count_readings(dc)

    dc.run("up", "-d", *[a for s, n in others.items() if n > 1 for a in ("--scale", f"{s}={n}")],
           "--scale", f"{BRIDGE}=2", timeout=600)
    wait_running(others | {BRIDGE: 2})
    replicas = _replicas(dc)
    if len(replicas) != 2:
        raise failed(f"{BRIDGE} replicas running: {sorted(replicas)}, expected 2")
    live = set(replicas)

    def settled(lines: list[str]) -> bool:
        claims = _claims(lines)
        return len(claims) >= configured and all(c["instance"] == owner_of(d, live) for d, c in claims.items())

    lines = dc.subscribe(f"{PREFIX}/+/owner", SETTLE_S, until=settled)
    claims = _claims(lines)
    wrong = {d: c["instance"] for d, c in claims.items() if c["instance"] != owner_of(d, live)}
    if len(claims) < configured or wrong:
        raise failed(f"claims not as rendezvous over {sorted(live)} gives after {SETTLE_S} s: {wrong or claims}")
    share = Counter(c["instance"] for c in claims.values())
    after = _count_readings(dc)
    # One replica's pace with some slack (a slow read, the window's edges): two would be twice it.
    doubled = {d: (before[d], after[d]) for d in read if after[d] > before[d] * 1.25 + 2}
    unread = [d for d in read if after[d] == 0]
    if doubled or unread:
        raise failed(f"readings in {WINDOW_S} s, one replica -> two: doubled {doubled}, none {unread}")

    victim = max(live, key=lambda i: share[i])  # the one holding devices (all of them, maybe)
    survivor = (live - {victim}).pop()
    victim_devices = sorted(d for d, c in claims.items() if c["instance"] == victim)
    cid = replicas[victim]
    # Its restart policy would bring it back under the same name within seconds and it would take its
    # devices back itself: this checks the survivor, so the killed replica stays down.
    subprocess.run(["docker", "update", "--restart", "no", cid], capture_output=True, check=True)
    pid = int(json.loads(subprocess.run(["docker", "inspect", cid], capture_output=True, text=True,
                                        check=True).stdout)[0]["State"]["Pid"])
    killed_at: list[float] = []
    claimed_at: dict[str, float] = {}
    read_at: dict[str, float] = {}

    def taken_over(lines: list[str]) -> bool:
        now = time.monotonic()
        if not killed_at:  # the subscriber is listening (a retained claim came): now the crash
            os.kill(pid, signal.SIGKILL)
            killed_at.append(now)
            print(f"    $ kill -KILL {pid}   # {BRIDGE} replica {victim}'s process, from the host", flush=True)
            return False
        topic, _, payload = lines[-1].partition("\t")
        device = _device(topic)
        claim = json.loads(payload) if topic.endswith("/owner") and payload else {}
        if device in victim_devices and claim.get("instance") == survivor:
            claimed_at.setdefault(device, now)
        elif topic.endswith("/reading") and len(claimed_at) == len(victim_devices):
            read_at.setdefault(device, now)  # read after the survivor claimed all it had to take
        return len(claimed_at) == len(victim_devices) and set(read) <= set(read_at)

    dc.subscribe(f"{PREFIX}/#", int(2 * lease_s) + 15, until=taken_over)
    subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=True)  # exit 137 is no clean stop
    missing = sorted(set(victim_devices) - set(claimed_at)) or sorted(set(read) - set(read_at))
    if not killed_at or missing:
        raise failed(f"after killing {victim}: {survivor} did not claim and read {missing}")
    took = max(read_at.values()) - killed_at[0]
    if took > 2 * lease_s:
        raise failed(f"{survivor} read {victim}'s devices {took:.1f} s after the kill: over 2 x lease_s "
                     f"= {2 * lease_s:g} s")
    pace = ", ".join(f"{d} {before[d]}->{after[d]}" for d in read)
    return (f"2 replicas, claims {dict(share)} as rendezvous gives; readings in {WINDOW_S} s, 1 -> 2 replicas: {pace}\n"
            f"{victim} killed ({len(victim_devices)} devices): {survivor} claimed them and read every device "
            f"{took:.1f} s after the kill (2 x lease_s = {2 * lease_s:g} s)")
