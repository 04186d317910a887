"""A simulated GivEnergy dongle in a subprocess on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import SimulatorProcess


class GivSim(SimulatorProcess):
    """The GivEnergy dongle simulator on a free port."""

    def __init__(self, log: Path, *args: str) -> None:
        super().__init__(log, "giv", *args)


@pytest.fixture
def giv_sim(tmp_path: Path) -> Iterator[GivSim]:
    # Heartbeats every 2 s with a 2 s deadline: a bridge that did not echo would be dropped at once.
    sim = GivSim(tmp_path / "sim.log", "--batteries", "2", "--heartbeat-s", "2", "--heartbeat-timeout-s", "2")
    yield sim
    sim.stop()
