"""The SunSpec simulator as a real subprocess on a free loopback port."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.servers import free_port, wait_port


class Simulator:
    def __init__(self, args: list[str], log: Path, port: int | None = None, link: Path | None = None) -> None:
        self.args, self.log, self.port, self.link = args, log, port, link
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Simulator:
        cmd = [sys.executable, "-m", "wattbus_sim", "sunspec", *self.args]
        if self.port:
            cmd += ["--port", str(self.port)]
        if self.link:
            cmd += ["--rtu-link", str(self.link)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        if self.port:
            wait_port(self.port)
        elif self.link:
            deadline = time.monotonic() + 15
            while not self.link.exists():
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise TimeoutError(f"simulator did not create {self.link}: {self.log.read_text()}")
                time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def start_sim(tmp_path: Path) -> Iterator[Callable[..., Simulator]]:
    started: list[Simulator] = []

    def start(*profiles: str, rtu: bool = False, extra: tuple[str, ...] = ("--static",)) -> Simulator:
        args = [a for p in profiles for a in ("--profile", p)] + list(extra)
        log = tmp_path / f"sim-{len(started)}.log"
        sim = Simulator(args, log, None if rtu else free_port(), tmp_path / f"rtu-{len(started)}" if rtu else None)
        started.append(sim.start())
        return sim

    yield start
    for sim in started:
        sim.stop()
