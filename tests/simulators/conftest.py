"""`wattbus-sim <device>` as a real subprocess, its stdout and stderr kept apart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


class SimProcess:
    def __init__(self, args: list[str], run_dir: Path, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.out, self.err = run_dir / "stdout.log", run_dir / "stderr.log"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "wattbus_sim", *args], stdout=out, stderr=err,
                                         env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"})

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_banner(self, timeout: float = 30.0) -> str:
        """The first line the simulator prints, once it is up."""
        deadline = time.monotonic() + timeout
        while "\n" not in self.stdout():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.args} exited ({self.proc.returncode}) before it was up:\n{self.stderr()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.args} printed nothing in {timeout:.0f} s:\n{self.stderr()}")
            time.sleep(0.05)
        return self.stdout().splitlines()[0]

    def terminate(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, as `docker stop` sends it; the exit status, or None if still running after timeout."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def start_sim(tmp_path: Path) -> Iterator[Callable[..., SimProcess]]:
    started: list[SimProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> SimProcess:
        run_dir = tmp_path / f"sim-{len(started)}"
        run_dir.mkdir()
        sim = SimProcess(list(args), run_dir, env)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.kill()
