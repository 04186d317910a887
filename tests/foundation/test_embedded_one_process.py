"""The Raspberry Pi profile: `WATTBUS_EMBEDDED_PROFILE=one-process wattbus embedded` runs every
Python service in one `wattbus run-many` program under the real supervisord, next to Mosquitto,
the embedded InfluxDB and the simulators."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from wattbus.embedded import write_one_process

from tests.foundation.test_embedded import Availability, expected_services, stop_embedded, wait_for
from tests.support.servers import free_port, wait_port


def test_one_process_conf_folds_every_service_into_run_many(repo_root: Path, tmp_path: Path) -> None:
    text = write_one_process(repo_root, tmp_path).read_text()
    command = re.search(r"^command=\S+/bin/wattbus run-many (.*) --secrets-dir (\S+)$", text, re.M)
    assert command, text
    assert set(command.group(1).split()) == expected_services(repo_root)
    assert command.group(2) == "%(ENV_WATTBUS_RUN)s/secrets"
    programs = re.findall(r"^\[program:([^\]]+)\]", text, re.M)
    assert programs == ["run-many", "influxdb"]  # the database stays a program of its own
    assert "WATTBUS_BUS_PASSWORD_FILE" not in text  # run-many logs each service in as itself
    assert 'WATTBUS_INFLUX_WRITER_SPOOL_DIR="%(ENV_WATTBUS_RUN)s/influx-writer/spool"' in text


def test_unknown_profile_is_refused_by_name(repo_root: Path, tmp_path: Path) -> None:
    wattbus = Path(sys.executable).parent / "wattbus"
    out = subprocess.run([str(wattbus), "embedded", "--root", str(repo_root), "--run-dir", str(tmp_path / "run")],
                         env={**os.environ, "WATTBUS_EMBEDDED_PROFILE": "tiny"}, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0
    assert "WATTBUS_EMBEDDED_PROFILE='tiny'" in out.stderr and "one-process" in out.stderr


def test_one_process_stack_brings_every_service_online_and_stops_cleanly(repo_root: Path, tmp_path: Path) -> None:
    port = free_port()
    run_dir = tmp_path / "run"
    wattbus = Path(sys.executable).parent / "wattbus"
    log = (tmp_path / "embedded.log").open("wb")
    proc = subprocess.Popen([str(wattbus), "embedded", "--root", str(repo_root), "--run-dir", str(run_dir)],
                            env={**os.environ, "WATTBUS_EMBEDDED_PORT": str(port),
                                 "WATTBUS_EMBEDDED_PROFILE": "one-process"},
                            stdout=log, stderr=log, start_new_session=True)
    watcher: Availability | None = None
    try:
        wait_port(port, 30)
        watcher = Availability(port)
        expected = expected_services(repo_root)
        started = wait_for(lambda: watcher.services("online") >= expected, 90)
        logs = {p.name: p.read_text(errors="replace")[-1500:] for p in (run_dir / "logs").glob("*.log")}
        assert started, f"not online: {sorted(expected - watcher.services('online'))}\n{logs}"
        status = ""

        def run_many_running() -> bool:
            # supervisord calls a program RUNNING after its startsecs; the services may be online sooner.
            nonlocal status
            status = subprocess.run([str(Path(sys.executable).parent / "supervisorctl"), "-c",
                                     str(run_dir / "supervisord.conf"), "status"], capture_output=True, text=True,
                                    timeout=60).stdout
            return any(line.split()[:2] == ["run-many", "RUNNING"] for line in status.splitlines())

        assert wait_for(run_many_running, 30), status
        running = {line.split()[0] for line in status.splitlines() if " RUNNING " in line}
        assert not running & expected, status  # no service runs on its own
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert wait_for(lambda: watcher.services("offline") >= expected, 10), watcher.state
    finally:
        if watcher:
            watcher.close()
        stop_embedded(proc)
        log.close()
