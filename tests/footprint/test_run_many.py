"""`wattbus run-many`: three real services in one process against the real broker and ACL.

Each service must keep its own broker identity (the ACL only lets sunspec-bridge write its own
device topics, so readings arriving prove it logged in as itself), its own status and its own
availability; a service that fails is restarted in place while the others keep running.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Message
from wattbus.config import BusConfig, ConfigError
from wattbus.multi import bus_config_for, load_service

from tests.support.bus_helpers import started_bus, until
from tests.support.servers import free_port, wait_port

CONFIG = """
[site]
grid = "sunspec-bridge/fronius-18420047"

[sunspec-bridge]
poll_interval_s = 0.5
status_interval_s = 1
[[sunspec-bridge.devices]]
host = "127.0.0.1"
port = {port}

[surplus-controller]
state_file = "{tmp}/surplus.json"
status_interval_s = 1

# Two meters with one key: the service refuses to run, run-many restarts it in place.
[sml-reader]
status_interval_s = 1
[[sml-reader.meters]]
key = "grid"
port = "file://{tmp}/none.bin"
[[sml-reader.meters]]
key = "grid"
port = "file://{tmp}/none.bin"
"""


@pytest.fixture
def sunspec_sim(tmp_path: Path) -> Any:
    port = free_port()
    with (tmp_path / "sim.log").open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "wattbus_sim", "sunspec", "--profile", "fronius",
                                 "--static", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    wait_port(port)
    yield port
    proc.terminate()
    proc.wait(10)


async def test_three_services_one_process(broker: Any, sunspec_sim: int, tmp_path: Path) -> None:
    config = tmp_path / "wattbus.toml"
    config.write_text(CONFIG.format(port=sunspec_sim, tmp=tmp_path))
    watcher = await started_bus(broker, "admin", "footprint-watch")
    status: dict[str, m.ServiceStatus] = {}
    availability: dict[str, str] = {}
    readings: dict[str, m.ReadingBase] = {}

    def on_status(msg: Message[m.ServiceStatus]) -> None:
        status[msg.payload.service] = msg.payload

    def on_availability(msg: Message[bytes]) -> None:
        parsed = topics.parse(msg.topic)
        if parsed.ident == "main":
            availability[parsed.source or ""] = bytes(msg.payload).decode()

    def on_reading(msg: Message[m.ReadingBase]) -> None:
        readings[msg.payload.device_id] = msg.payload

    watcher.subscribe(topics.ALL_SERVICE_STATUS, m.ServiceStatus, on_status)
    watcher.subscribe("wattbus/v1/service/+/+/availability", bytes, on_availability)
    watcher.subscribe("wattbus/v1/device/sunspec-bridge/+/reading", m.Reading, on_reading)
    log = tmp_path / "run-many.log"
    env = {"PATH": "/usr/bin:/bin", "WATTBUS_BUS_HOST": "127.0.0.1", "WATTBUS_BUS_PORT": str(broker.port),
           "WATTBUS_BUS_RECONNECT_MAX_S": "2", "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "wattbus.cli", "run-many", "sunspec-bridge",
                                 "surplus-controller", "sml-reader", "--config", str(config),
                                 "--secrets-dir", str(broker.files.secrets_dir)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        await until(lambda: {"sunspec-bridge", "surplus-controller"} <= {
            s for s, v in availability.items() if v == "online"}, 30, "both services online")
        await until(lambda: "fronius-34119102" in readings, 30, "inverter readings from sunspec-bridge")
        await until(lambda: "service ended, restarting" in log.read_text(), 30, "sml-reader restarted in place")
        # The others keep running while sml-reader fails: their heartbeats keep coming.
        await until(lambda: status.get("sunspec-bridge") is not None
                    and status["sunspec-bridge"].uptime_s > 2.5, 30, "sunspec-bridge heartbeat")
        seen = len(readings)
        assert status["sunspec-bridge"].counters.get("messages_out", 0) > 0
        assert "surplus-controller" in status and "sml-reader" in status
        assert proc.poll() is None, log.read_text()
        assert seen >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    text = log.read_text()
    assert "used more than once" in text, text
    # A clean stop publishes every service's explicit offline (not just the broker's last will).
    await until(lambda: availability.get("sunspec-bridge") == "offline"
                and availability.get("surplus-controller") == "offline", 15, "explicit offline")
    assert code == 1, f"exit code {code}: the failing sml-reader should make it non-zero\n{text}"
    await watcher.stop()


def test_unknown_service_is_refused(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "wattbus.cli", "run-many", "sml-reader", "no-such-thing"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "no service 'no-such-thing' installed" in result.stderr


def test_duplicate_service_is_refused() -> None:
    result = subprocess.run([sys.executable, "-m", "wattbus.cli", "run-many", "sml-reader", "sml-reader"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "sml-reader is named twice" in result.stderr


def test_every_service_loads_in_process() -> None:
    root = Path(__file__).resolve().parents[2]
    names = sorted(p.parent.parent.name for p in root.glob("services/*/wattbus_*/__main__.py"))
    assert len(names) >= 8
    for name in names:
        assert load_service(name).name == name


def test_each_service_gets_its_own_password() -> None:
    shared = BusConfig(password_file="/run/secrets/{service}")
    assert bus_config_for(shared, "sml-reader", None).password_file == "/run/secrets/sml-reader"
    assert bus_config_for(shared, "sml-reader", None).username == "sml-reader"
    assert bus_config_for(BusConfig(), "x", Path("/s")).password_file == "/s/x"
    with pytest.raises(ConfigError, match="its own broker password"):
        bus_config_for(BusConfig(password="one-for-all"), "sml-reader", None)
