"""The demo `make run` starts, left running: no log line of level ERROR and no traceback anywhere.

The real `wattbus embedded` stack (supervisord, Mosquitto, every service, the simulators, the
embedded InfluxDB) runs for WATTBUS_DEMO_LOG_S seconds after every service is online (75 s in the
suite; the issue's manual check is 300), is stopped the way Ctrl-C stops it, and then the logs of
the services, the broker and the database are read. Not read: the simulators' (they stand in for
devices) and supervisord's own (its startup banner comes at levels ERRO and CRIT; a service that
dies shows in its own log). A line is an error when its level is ERROR or CRITICAL (wattbus'
format, Python's default format, InfluxDB's `lvl=error`, Mosquitto's `Error:`) or when a traceback
starts on it.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.foundation.test_embedded import embedded_stack, expected_services

DEMO_S = float(os.environ.get("WATTBUS_DEMO_LOG_S", "75"))
# The level's own field only: a WARNING may quote a library's "ERROR: ..." text.
ERROR_LINE = re.compile(r"^\S+Z (ERROR|CRITICAL) |^(ERROR|CRITICAL):|\blvl=(error|crit)\b|^\d+: Error\b"
                        r"|Traceback \(most recent call last\)")
SHOWN_PER_LOG = 8
OTHER_PROGRAMS = {"mosquitto", "influxdb"}


def error_lines(logs: Path, programs: set[str]) -> dict[str, list[str]]:
    """Per program's log file (rotated ones included), the lines that report an error."""
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in logs.glob("*.log*") if p.name.split(".")[0] in programs):
        hits = [line for line in path.read_text(errors="replace").splitlines() if ERROR_LINE.search(line)]
        if hits:
            found[path.name] = hits
    return found


def test_error_line_pattern_catches_every_format_we_write() -> None:
    errors = ["2026-05-01T12:00:00.000Z ERROR   asyncio            Exception in callback LoopDriver._read()",
              "ERROR:aiohttp.client:Unclosed client session", "Traceback (most recent call last):",
              'ts=2026-05-01T12:00:00Z lvl=error msg="write failed" service=write',
              "2026-05-01T12:00:00.000Z CRITICAL runner  cannot start",
              "1764990000: Error: Unable to open pwfile",
              "Datastore unable to fulfill request: 0; Traceback (most recent call last):"]
    fine = ['2026-05-01T12:00:00.000Z WARNING goe-shelly-bridge  device poll failed  error="GET http://x: refused"',
            "2026-05-01T12:00:00.000Z WARNING pymodbus.logging   ERROR: received pdu without a corresponding request",
            "1764990000: Client sunspec-bridge closed its connection."]
    assert all(ERROR_LINE.search(line) for line in errors)
    assert not any(ERROR_LINE.search(line) for line in fine)


@pytest.mark.timeout(DEMO_S + 300)
def test_demo_runs_without_errors_in_any_log(repo_root: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATTBUS_")}  # the demo as `make run` runs it
    with embedded_stack(repo_root, tmp_path, env) as (proc, _watcher, run_dir):
        time.sleep(DEMO_S)
        assert proc.poll() is None, "the stack stopped on its own"
        proc.send_signal(signal.SIGTERM)  # what Ctrl-C does to supervisord
        assert proc.wait(60) == 0
    expected = expected_services(repo_root)
    logs = run_dir / "logs"
    assert {p.stem for p in logs.glob("*.log")} >= expected  # every service wrote its log where we read
    found = error_lines(logs, expected | OTHER_PROGRAMS)
    report = "\n".join(f"{name}: {len(lines)} error line(s)\n  " + "\n  ".join(lines[:SHOWN_PER_LOG])
                       for name, lines in found.items())
    assert not found, f"after {DEMO_S:.0f} s of demo:\n{report}"
