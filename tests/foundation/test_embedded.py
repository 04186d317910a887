"""`make run`'s stack for real: supervisord starts Mosquitto, every service and the simulators."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.servers import free_port, wait_port


def expected_services(root: Path) -> set[str]:
    return {p.parent.name for p in root.glob("services/*/supervisor.conf")}


class Availability:
    """An anonymous subscriber (the demo broker allows read-only anonymous access on 127.0.0.1)."""

    def __init__(self, port: int) -> None:
        self.state: dict[str, str] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe("wattbus/v1/service/+/+/availability", qos=1)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.state[msg.topic.split("/")[3]] = msg.payload.decode()

    def services(self, value: str) -> set[str]:
        with self.lock:
            return {name for name, state in self.state.items() if state == value}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def stop_embedded(proc: subprocess.Popen[bytes]) -> None:
    """Stop a `wattbus embedded` left running by a failed test. supervisord puts each program in
    its own process group: only it can stop them all, so ask it first, then kill its group."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@contextmanager
def embedded_stack(repo_root: Path, tmp_path: Path, env: dict[str, str] | None = None) \
        -> Iterator[tuple[subprocess.Popen[bytes], Availability, Path]]:
    """`wattbus embedded` on a free broker port, every service online: (process, watcher, run dir).

    Stopped (and its process group killed if need be) when the block ends."""
    port = free_port()
    run_dir = tmp_path / "run"
    wattbus = Path(sys.executable).parent / "wattbus"
    log = (tmp_path / "embedded.log").open("wb")
    proc = subprocess.Popen([str(wattbus), "embedded", "--root", str(repo_root), "--run-dir", str(run_dir)],
                            env={**(os.environ if env is None else env), "WATTBUS_EMBEDDED_PORT": str(port)},
                            stdout=log, stderr=log, start_new_session=True)  # nothing outlives the test
    watcher: Availability | None = None
    try:
        wait_port(port, 30)
        watcher = Availability(port)
        expected = expected_services(repo_root)
        started = wait_for(lambda: watcher.services("online") >= expected, 90)
        logs = {p.name: p.read_text(errors="replace")[-1500:] for p in (run_dir / "logs").glob("*.log")}
        assert started, f"not online: {sorted(expected - watcher.services('online'))}\n{logs}"
        yield proc, watcher, run_dir
    finally:
        if watcher:
            watcher.close()
        stop_embedded(proc)
        log.close()


def loadpoint_state(port: int, loadpoint: str, timeout: float) -> dict[str, Any]:
    """The first retained-or-live LoadpointState of `loadpoint` that carries a vehicle SoC ({} if none came)."""
    found: dict[str, Any] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_connect = lambda c, u, f, r, p: c.subscribe(f"wattbus/v1/loadpoint/{loadpoint}/state", qos=1)

    def message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        state = json.loads(msg.payload)
        if state.get("vehicle_soc_pct") is not None:
            found.update(state)
    client.on_message = message
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_for(lambda: bool(found), timeout)
    finally:
        client.loop_stop()
        client.disconnect()
    return found


def test_embedded_stack_runs_every_service_and_stops_cleanly(repo_root: Path, tmp_path: Path) -> None:
    with embedded_stack(repo_root, tmp_path) as (proc, watcher, run_dir):
        # the demo's car (wattbus-sim teslamate -> generic-bridge) reaches the garage loadpoint's state
        listener = re.search(r"^listener (\d+)", (run_dir / "mosquitto" / "mosquitto.conf").read_text(), re.M)
        assert listener
        state = loadpoint_state(int(listener.group(1)), "garage", 60)
        assert state.get("vehicle_id") == "car" and 0 < state["vehicle_soc_pct"] <= 100, state
        proc.send_signal(signal.SIGTERM)  # what Ctrl-C does to supervisord
        assert proc.wait(60) == 0
        assert wait_for(lambda: watcher.services("offline") >= expected_services(repo_root), 10), watcher.state
    printed = (tmp_path / "embedded.log").read_text()
    port = re.search(r"^listener (\d+)", (run_dir / "mosquitto" / "mosquitto.conf").read_text(), re.M)
    assert port and f"mosquitto_sub -h 127.0.0.1 -p {port.group(1)}" in printed


def test_demo_config_is_kept_across_runs_and_gains_new_services(repo_root: Path, tmp_path: Path) -> None:
    from wattbus.embedded import write_config

    config = tmp_path / "wattbus.toml"
    write_config(config, repo_root, tmp_path)
    first = config.read_text()
    assert "[bus]" in first and "${WATTBUS_RUN}" not in first
    edited = first.replace("[bus]", "# edited by a person\n[bus]", 1)
    config.write_text(edited)
    write_config(config, repo_root, tmp_path)
    assert config.read_text() == edited  # a person's (or the setup page's) edits survive a restart
    fragment = sorted(repo_root.glob("services/*/embedded.toml"))[-1]  # the last block in the file
    some_service = fragment.parent.name
    marker = f"# --- from {fragment.relative_to(repo_root)}"
    config.write_text(edited.split(marker)[0])  # as if that service did not exist when the file was made
    write_config(config, repo_root, tmp_path)
    assert f"[{some_service}" in config.read_text()  # a service added since gets its demo section
