"""A device's availability follows its owner's lease for every consumer (issue 26): the only
replica of a bridge is paused (SIGSTOP: its will does not fire, its lease lapses) and killed
(SIGKILL: its will fires), and the http-api's device list and site verdict and the integrations'
judged availability for Home Assistant say `offline` within the lease, with the reason; a replica
coming back brings them `online`. Real processes: a SunSpec simulator, the sunspec-bridge, the
http-api and the integrations service on the session broker with the shipped ACL."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wattbus import topics
from wattbus.bus import Message
from wattbus.liveness import judged_topic

from tests.sunspec_bridge.test_scaling import INVERTER, LEASE_S, SOURCE
from tests.sunspec_bridge.test_scaling import config as scaling_config
from tests.support.bus_helpers import started_bus, subscriptions_active, until
from tests.support.servers import free_port, wait_port

JUDGE = ("integrations", "lv")
REF = f"{SOURCE}/{INVERTER}"


def config(path: Path, sim_port: int, api_port: int) -> Path:
    """The scaling test's bridge section (lease 2 s, polls every 0.5 s), the http-api, integrations."""
    scaling_config(path, sim_port, free_port())  # its Eastron meters get a port nobody serves
    path.write_text(path.read_text() + f"""
[http-api]
ports = [{api_port}]
instance = "lv"
trusted_networks = ["127.0.0.1/32"]
[site]
pv = ["{REF}"]

[integrations]
instance = "{JUDGE[1]}"
stale_grace_s = 0
""")
    return path


class Views:
    """What each consumer says of the inverter, and when it changed (our clock)."""

    def __init__(self, api_port: int) -> None:
        self.url = f"http://127.0.0.1:{api_port}"
        self.judged: list[tuple[float, bytes]] = []

    def on_judged(self, msg: Message[bytes]) -> None:
        self.judged.append((time.monotonic(), bytes(msg.payload)))

    def hass(self) -> bytes | None:
        return self.judged[-1][1] if self.judged else None

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            return json.loads(resp.read())

    def summary(self) -> Any:
        """The web UI's first event: the summary its device list is drawn from."""
        with urllib.request.urlopen(self.url + "/api/v1/events", timeout=10) as resp:
            for line in resp:
                if line.startswith(b"data: "):
                    return json.loads(line[len(b"data: "):])
        raise AssertionError("the event stream ended without a summary")

    async def api(self) -> tuple[bool | None, str | None, list[str]]:
        devices, site = await asyncio.gather(asyncio.to_thread(self.get, "/api/v1/devices"),
                                             asyncio.to_thread(self.get, "/api/v1/site"))
        device = next((d for d in devices if d["ref"] == REF), {})
        return device.get("online"), device.get("owner"), site["live"]["reasons"]

    async def until_api(self, online: bool, timeout: float, what: str) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = await self.api()
            if state[0] is online:
                return time.monotonic()
            await asyncio.sleep(0.05)
        raise AssertionError(f"{what}: the http-api still says {await self.api()} after {timeout} s")

    async def until_hass(self, word: bytes, since: float, timeout: float, what: str) -> float:
        await until(lambda: self.hass() == word and self.judged[-1][0] >= since, timeout, what)
        return self.judged[-1][0]


async def test_a_dead_owners_devices_go_offline_for_every_consumer(
        broker: Any, start_sim: Callable[..., Any], start_service: Any, tmp_path: Path) -> None:
    sim = start_sim("fronius", "sma", "float")
    api_port = free_port()
    path = config(tmp_path / "w.toml", sim.port, api_port)
    views = Views(api_port)
    bus = await started_bus(broker, "test-admin", "liveness")
    judged = judged_topic(*JUDGE, SOURCE, INVERTER)
    bus.subscribe(judged, bytes, views.on_judged)
    await subscriptions_active(bus)

    def replica(name: str) -> Any:
        return start_service("wattbus_sunspec_bridge", "--config", str(path),
                             env={**broker.env(SOURCE), "WATTBUS_SUNSPEC_BRIDGE_INSTANCE": name})

    bridge = replica("lv-a")
    api = start_service("wattbus_http_api", "--config", str(path), env=broker.env("http-api"))
    hass = start_service("wattbus_integrations", "--config", str(path), env=broker.env("integrations"))
    figures: list[str] = []
    try:
        wait_port(api_port, 30)
        await views.until_api(True, 40, "the inverter online")
        await until(lambda: views.hass() == b"online", 30, "the judged availability online")
        assert (await views.api())[1] == f"{SOURCE}/lv-a"

        # Paused: no last will, the lease lapses.
        bridge.proc.send_signal(signal.SIGSTOP)
        paused = time.monotonic()
        api_off = await views.until_api(False, 4 * LEASE_S, "offline after SIGSTOP")
        hass_off = await views.until_hass(b"offline", paused, 4 * LEASE_S, "judged offline after SIGSTOP")
        reasons = (await views.api())[2]
        assert any(f"owner {SOURCE}/lv-a lease lapsed" in r for r in reasons), reasons
        listed = next(d for d in (await asyncio.to_thread(views.summary))["devices"] if d["ref"] == REF)
        assert listed["status"] == "offline" and f"owner {SOURCE}/lv-a lease lapsed" in listed["error"], listed
        devices = await asyncio.to_thread(views.get, "/api/v1/devices")
        assert next(d for d in devices if d["ref"] == REF)["offline_reason"].startswith(f"owner {SOURCE}/lv-a")
        figures.append(f"SIGSTOP: offline in the API after {api_off - paused:.2f} s, for HA after "
                       f"{hass_off - paused:.2f} s (lease {LEASE_S} s)")
        assert max(api_off, hass_off) - paused <= 2 * LEASE_S

        bridge.proc.send_signal(signal.SIGCONT)
        woke = time.monotonic()
        api_on = await views.until_api(True, 4 * LEASE_S, "online after SIGCONT")
        hass_on = await views.until_hass(b"online", woke, 4 * LEASE_S, "judged online after SIGCONT")
        figures.append(f"SIGCONT: online again after {api_on - woke:.2f} s (API), {hass_on - woke:.2f} s (HA)")

        # Killed: its will fires at once (the socket closes), the lease would lapse a little later.
        bridge.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        api_off = await views.until_api(False, 4 * LEASE_S, "offline after SIGKILL")
        hass_off = await views.until_hass(b"offline", killed, 4 * LEASE_S, "judged offline after SIGKILL")
        figures.append(f"SIGKILL: offline after {api_off - killed:.2f} s (API), {hass_off - killed:.2f} s (HA)")
        assert max(api_off, hass_off) - killed <= 2 * LEASE_S
        devices = await asyncio.to_thread(views.get, "/api/v1/devices")
        listed = next(d for d in devices if d["ref"] == REF)
        assert listed["online"] is False and "(its last will)" in listed["offline_reason"], listed  # not the lapse

        bridge = replica("lv-b")  # a new replica takes the device: online, claimed by it
        started = time.monotonic()
        hass_on = await views.until_hass(b"online", started, 30, "judged online with a new replica")
        await views.until_api(True, 30, "online with a new replica")
        deadline = time.monotonic() + 30
        while (await views.api())[:2] != (True, f"{SOURCE}/lv-b"):
            assert time.monotonic() < deadline, await views.api()
            await asyncio.sleep(0.05)
        api_on = time.monotonic()
        figures.append(f"new replica: judged online after {hass_on - started:.2f} s (HA), claimed by it and "
                       f"online in the API after {api_on - started:.2f} s, process start included")

        # Two replicas: the owner killed, the survivor takes over; the device never shows offline.
        spare = replica("lv-c")
        owners: set[str] = set()
        deadline = time.monotonic() + 30
        while owners != {f"{SOURCE}/lv-b", f"{SOURCE}/lv-c"}:  # both poll some of the simulator's devices
            assert time.monotonic() < deadline, owners
            devices = await asyncio.to_thread(views.get, "/api/v1/devices")
            owners = {d["owner"] for d in devices if d["source"] == SOURCE and d["online"]}
            await asyncio.sleep(0.1)
        owner = (await views.api())[1]
        victim, survivor = (bridge, spare) if owner == f"{SOURCE}/lv-b" else (spare, bridge)
        victim.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        seen_api: list[tuple[bool | None, str | None]] = []
        taken = f"{SOURCE}/{'lv-c' if victim is bridge else 'lv-b'}"
        while not seen_api or seen_api[-1] != (True, taken):
            assert time.monotonic() - killed < 4 * LEASE_S, seen_api[-5:]
            seen_api.append((await views.api())[:2])
            await asyncio.sleep(0.05)
        figures.append(f"2 replicas, owner SIGKILLed: the survivor owns it after {time.monotonic() - killed:.2f} s; "
                       f"{len(seen_api)} API looks, none offline")
        assert all(online is not False for online, _owner in seen_api), seen_api
        assert all(word != b"offline" for at, word in views.judged if at >= killed), views.judged[-3:]
        bridge = survivor
        print("\n".join(figures))
    finally:
        bridge.proc.send_signal(signal.SIGCONT)
        for proc in (bridge, api, hass):
            assert proc.stop() == 0, proc.output()[-3000:]
        bus.publish(judged, b"", retain=True)  # the session broker's next tests do not see ours
        for topic in (topics.device_availability(SOURCE, INVERTER),):
            bus.publish(topic, b"", retain=True)
        await asyncio.sleep(0.2)
        await bus.stop()
