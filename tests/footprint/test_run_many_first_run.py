"""A first run in one process: an empty `[surplus-controller]` and a broken `[sunspec-bridge]`.

Real `wattbus run-many` against the real broker and ACL. The controller must stay up idle and say
"not configured" in its status; the refused bridge must wait (not abort the others) and start by
itself once the file is fixed; the controller picks up a grid meter with `reload_config`.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Message

from tests.support.bus_helpers import started_bus, until

FIRST_RUN = """
[surplus-controller]
state_file = "{tmp}/surplus.json"
status_interval_s = 1

[sunspec-bridge]
status_interval_s = 1
polling_everything = true
"""


def _errors(status: dict[str, m.ServiceStatus], service: str) -> list[str]:
    found = status.get(service)
    return [e.error for e in found.device_errors] if found else ["no status yet"]


async def test_first_run_keeps_every_service_up(broker: Any, tmp_path: Path) -> None:
    config = tmp_path / "wattbus.toml"
    config.write_text(FIRST_RUN.format(tmp=tmp_path))
    watcher = await started_bus(broker, "admin", "first-run-watch")
    status: dict[str, m.ServiceStatus] = {}
    availability: dict[str, str] = {}

    launched = m.utc_now()

    def on_status(msg: Message[m.ServiceStatus]) -> None:
        # this run's statuses only: the session's broker keeps earlier tests' retained ones
        if msg.payload.started_at >= launched:
            status[msg.payload.service] = msg.payload

    def on_availability(msg: Message[bytes]) -> None:
        availability[topics.parse(msg.topic).source or ""] = bytes(msg.payload).decode()

    for service in ("surplus-controller", "sunspec-bridge"):
        watcher.subscribe(topics.service_status(service, "main"), m.ServiceStatus, on_status)
    watcher.subscribe("wattbus/v1/service/+/main/availability", bytes, on_availability)
    log = tmp_path / "run-many.log"
    env = {"PATH": "/usr/bin:/bin", "WATTBUS_BUS_HOST": "127.0.0.1", "WATTBUS_BUS_PORT": str(broker.port),
           "WATTBUS_BUS_RECONNECT_MAX_S": "2", "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "wattbus.cli", "run-many", "surplus-controller",
                                 "sunspec-bridge", "--config", str(config),
                                 "--secrets-dir", str(broker.files.secrets_dir)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        await until(lambda: availability.get("surplus-controller") == "online", 30, "controller online")
        await until(lambda: any("not configured" in e for e in _errors(status, "surplus-controller")), 30,
                    "controller status saying it is not configured")
        await until(lambda: "service not started" in log.read_text(), 30, "the bridge's refusal in the log")
        text = log.read_text()
        assert "polling_everything" in text and "sunspec-bridge" in text, text
        assert text.count("idle until configured") == 1, text  # logged once, not every cycle
        assert availability.get("sunspec-bridge") != "online"
        # The waiting service reports why on its own status topic (retained), as itself.
        await until(lambda: any("not started" in e and "polling_everything" in e
                                for e in _errors(status, "sunspec-bridge")), 30, "the bridge's refusal in its status")
        assert proc.poll() is None, text

        # The file fixed (what the setup page's save does): the waiting bridge starts on its own.
        config.write_text(FIRST_RUN.format(tmp=tmp_path).replace("polling_everything = true\n", ""))
        await until(lambda: availability.get("sunspec-bridge") == "online", 30, "bridge started after the fix")
        await until(lambda: not _errors(status, "sunspec-bridge"), 30, "the bridge's own status, without the refusal")

        # A grid meter chosen in [site]: the controller restarts with it and is no longer "not configured".
        config.write_text(config.read_text() + '\n[site]\ngrid = "sunspec-bridge/fronius-1"\n')
        result = await watcher.request(topics.service_command("surplus-controller", "main"),
                                       m.ReloadConfig(request_id="first-run"), timeout=20)
        assert result.status == "ok" and "changed" in result.message, result
        await until(lambda: status.get("surplus-controller") is not None
                    and not _errors(status, "surplus-controller")
                    and status["surplus-controller"].uptime_s < 5, 30, "controller restarted configured")
        assert proc.poll() is None, log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        await watcher.stop()
    assert code == 0, f"exit code {code}\n{log.read_text()}"


async def test_controller_alone_without_any_config_stays_up(broker: Any, tmp_path: Path) -> None:
    """Its own process, no config file at all (a first boot): idle, saying why, until stopped."""
    watcher = await started_bus(broker, "admin", "first-run-alone")
    status: dict[str, m.ServiceStatus] = {}

    launched = m.utc_now()

    def on_status(msg: Message[m.ServiceStatus]) -> None:
        # this process's own statuses only: the topic keeps the last test's retained one
        if msg.payload.started_at >= launched:
            status[msg.payload.service] = msg.payload

    watcher.subscribe(topics.service_status("surplus-controller", "main"), m.ServiceStatus, on_status)
    log = tmp_path / "controller.log"
    env = {"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1", **broker.env("surplus-controller")}
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "wattbus_surplus_controller"], env=env, cwd=tmp_path,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        await until(lambda: any("not configured" in e for e in _errors(status, "surplus-controller")), 30,
                    "the controller's status saying it is not configured")
        assert proc.poll() is None, log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        await watcher.stop()
    assert code == 0, log.read_text()
    assert log.read_text().count("idle until configured") == 1
