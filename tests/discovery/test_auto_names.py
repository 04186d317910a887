"""`docker compose up --scale discovery=2` on the host's network: two replicas with
`instance = "auto"` that see the same hostname still get two names (issue 26). Each replica is a
real discovery process in a mount namespace of its own where /etc/hostname is bind-mounted from
`<dir>/containers/<id>/hostname`, as the container engine does; one of the two sweeps."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from wattbus import messages as m
from wattbus import topics
from wattbus.bridge.ownership import lease_topic
from wattbus.bus import Message
from wattbus.instance import auto_instance

from tests.discovery.lan import Lan
from tests.discovery.test_service import write_config
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto

IDS = ("d15c0a" + "1" * 58, "d15c0b" + "2" * 58)

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                reason="needs root and unshare(1) for a mount namespace per replica")


def in_container(cid: str, tmp: Path, config: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    hostname = tmp / "containers" / cid / "hostname"
    hostname.parent.mkdir(parents=True)
    hostname.write_text(socket.gethostname() + "\n")  # host networking: the host's name in each
    log = (tmp / f"discovery-{cid[:6]}.log").open("ab")
    return subprocess.Popen(
        ["unshare", "-m", "sh", "-c", 'mount --bind "$1" /etc/hostname && shift && exec "$@"', "sh", str(hostname),
         sys.executable, "-m", "wattbus_discovery", "--config", str(config)],
        env={**os.environ, **env, "PYTHONUNBUFFERED": "1"}, stdout=log, stderr=subprocess.STDOUT)


async def test_two_auto_replicas_on_the_host_network_are_two(lan: Lan, broker: Mosquitto, tmp_path: Path) -> None:
    host = auto_instance(socket.gethostname(), tmp_path / "no-mountinfo")
    names = {f"{host}-{cid[:12]}" for cid in IDS}
    admin = await started_bus(broker, "test-admin", "disc-auto")
    status: dict[str, m.ServiceStatus] = {}

    def on_status(msg: Message[m.ServiceStatus]) -> None:
        if msg.payload.instance in names:
            status[msg.payload.instance] = msg.payload

    admin.subscribe(f"{topics.PREFIX}/service/discovery/+/status", m.ServiceStatus, on_status)
    env = broker.env("discovery") | {"WATTBUS_DISCOVERY_INSTANCE": "auto", "WATTBUS_DISCOVERY_LEASE_S": "1.5",
                                     "WATTBUS_DISCOVERY_STATUS_INTERVAL_S": "1", "WATTBUS_DISCOVERY_MDNS": "false"}
    config = write_config(tmp_path, lan)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs = [in_container(cid, tmp_path, config, env) for cid in IDS]

        def one_sweeper() -> bool:
            roles = [int(s.counters.get("sweeper", 0)) for s in status.values()]
            return set(status) == names and sorted(roles) == [0, 1]

        await until(one_sweeper, 40, f"replicas {sorted(names)} online, one of them sweeping")
        print("auto names:", {n: s.counters.get("sweeper") for n, s in sorted(status.items())})
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for name in names:  # the session broker's next tests do not see these replicas
            for topic in (topics.service_status("discovery", name), topics.service_availability("discovery", name),
                          lease_topic("discovery", name)):
                admin.publish(topic, b"", retain=True)
        await admin.stop()
    assert [p.returncode for p in procs] == [0, 0], [(tmp_path / f"discovery-{c[:6]}.log").read_text()[-2000:]
                                                      for c in IDS]


