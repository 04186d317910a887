"""A simulated GivEnergy dongle in a subprocess on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from wattbus import givenergy as f
from wattbus_giv_bridge.cli import parse_line

from tests.support.servers import SimulatorProcess

DATA = Path(__file__).parent / "data"


def responses(name: str) -> list[f.ReadResponse]:
    """The read answers of a real capture in data/ (frames that fail their checks left out)."""
    out = []
    for line in (DATA / name).read_text().splitlines():
        _ts, from_dongle, raw = parse_line(line)
        try:
            frame = f.decode(raw, from_dongle=from_dongle)
        except f.FrameError:
            continue
        if isinstance(frame, f.ReadResponse):
            out.append(frame)
    return out


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
