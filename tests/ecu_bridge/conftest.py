"""ECU simulator and bridge-process fixtures for the ecu-bridge tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from wattbus.bus import Bus, Message
from wattbus_sim.ecu import EcuSimulator, fleet_from_text

from tests.support.bus_helpers import started_bus
from tests.support.servers import Mosquitto, free_port

FLEET = "00:1,01:2,02:1,03:1,04:1,05:1"


@pytest.fixture
async def ecu_sim() -> AsyncIterator[EcuSimulator]:
    sim = EcuSimulator(model="ECU-R", fleet=fleet_from_text(FLEET), refresh_s=0.3, pv_fraction=0.5)
    await sim.start(0, http_port=free_port())
    yield sim
    await sim.stop()


def bridge_config(tmp_path: Path, sims: list[EcuSimulator], **ecu: Any) -> Path:
    """A config file pointing the bridge at the simulators with fast, test-sized timings."""
    lines = ["[ecu-bridge]", "status_interval_s = 1"]
    for sim in sims:
        # refresh_margin_s: the pause after the ECU's refresh before reading it (20 s for a real ECU)
        values = {"host": "127.0.0.1", "port": sim.port, "poll_interval_s": 0.3, "refresh_margin_s": 0.05,
                  "answer_delay_s": 0.02, "pause_between_commands_s": 0.02, "timeout_s": 3.0,
                  "retry_after_failure_s": 0.2, "maintenance_start": "00:00", "maintenance_end": "00:00",
                  "http_port": sim.http_port or 80, **ecu}
        lines.append("[[ecu-bridge.ecus]]")
        lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
    path = tmp_path / "wattbus.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


class Recorder:
    """Everything the bridge publishes, last payload per topic, seen through the real broker."""

    def __init__(self) -> None:
        self.last: dict[str, bytes] = {}
        self.history: list[tuple[str, bytes]] = []

    def __call__(self, msg: Message[bytes]) -> None:
        if msg.retained:
            return  # left over from an earlier test on the session broker; only live messages count
        self.last[msg.topic] = msg.payload
        self.history.append((msg.topic, msg.payload))

    def has(self, predicate: Callable[[str], bool]) -> bool:
        return any(predicate(t) for t in self.last)


@pytest.fixture
async def watcher(broker: Mosquitto) -> AsyncIterator[tuple[Bus, Recorder]]:
    bus = await started_bus(broker, "test-admin", instance="ecu-watch")
    rec = Recorder()
    bus.subscribe("wattbus/v1/#", bytes, rec)
    bus.subscribe("aps/#", bytes, rec)
    bus.subscribe("home/#", bytes, rec)  # aps2mqtt with MQTT_TOPIC_PREFIX=home
    yield bus, rec
    await bus.stop()
