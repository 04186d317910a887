"""A simulated GivEnergy dongle in a subprocess on a free loopback port."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import free_port, wait_port


class GivSim:
    def __init__(self, log: Path, *args: str) -> None:
        self.port = free_port()
        with log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "wattbus_sim", "giv", "--port", str(self.port), *args],
                                         stdout=out, stderr=subprocess.STDOUT)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def giv_sim(tmp_path: Path) -> Iterator[GivSim]:
    # Heartbeats every 2 s with a 2 s deadline: a bridge that did not echo would be dropped at once.
    sim = GivSim(tmp_path / "sim.log", "--batteries", "2", "--heartbeat-s", "2", "--heartbeat-timeout-s", "2")
    yield sim
    sim.stop()
