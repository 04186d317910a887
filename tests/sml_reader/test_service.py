"""The service end to end: simulated meter on a pty -> wattbus-sml-reader -> real Mosquitto."""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Message
from wattbus_sim.sml import MeterState, PtyLine, build

from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto


class FeedingMeter:
    """A simulated meter writing a telegram every `interval` s, with every 3rd one damaged."""

    def __init__(self, link: Path, fmt: str = "sml", interval: float = 0.3) -> None:
        self.link, self.fmt, self.interval = link, fmt, interval
        self.state = MeterState(serial=60694611)
        self.stop = threading.Event()
        self.line = PtyLine(link)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        rng = random.Random(1)
        n = 0
        while not self.stop.wait(self.interval):
            n += 1
            self.state.advance(self.interval, -1500.0 if n % 2 else 700.0)
            data = build(self.fmt, self.state)
            if n % 3 == 0:
                data = bytes(rng.randrange(256) for _ in range(40)) + data[:60] + bytes([data[60] ^ 0x40]) + data[61:]
            self.line.write_paced(data, rng, pace=False)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.line.close()


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[FeedingMeter]:
    feeding = FeedingMeter(tmp_path / "meter0")
    yield feeding
    feeding.close()


def write_config(tmp_path: Path, fmt: str, link: Path) -> Path:
    config = tmp_path / "wattbus.toml"
    config.write_text(f"""
[sml-reader]
status_interval_s = 1
[[sml-reader.meters]]
key = "grid"
format = "{fmt}"
port = "{link}"
offline_after_s = 2
""")
    return config


async def test_readings_reach_the_bus_and_bad_frames_are_counted(
        broker: Mosquitto, start_service: Callable[..., Any], meter: FeedingMeter, tmp_path: Path) -> None:
    bus = await started_bus(broker, "test-admin")
    readings: list[m.MeterReading] = []
    status: list[m.ServiceStatus] = []
    availability: list[bytes] = []
    device_id = "dzg-1dzg0060694611"
    bus.subscribe(topics.device_reading("sml-reader", device_id), m.Reading,
                  lambda msg: readings.append(msg.payload))
    bus.subscribe(topics.service_status("sml-reader", "main"), m.ServiceStatus,
                  lambda msg: status.append(msg.payload))

    def seen_availability(msg: Message[bytes]) -> None:
        availability.append(msg.payload)

    bus.subscribe(topics.device_availability("sml-reader", device_id), bytes, seen_availability)
    proc = start_service("wattbus_sml_reader", "--config", str(write_config(tmp_path, "sml", meter.link)),
                         env=broker.env("sml-reader"))
    try:
        await until(lambda: len(readings) >= 6, 40, f"six readings ({proc.output()[-2000:]})")
        assert {r.power_w is not None and r.power_w < 0 for r in readings} == {True, False}  # both directions
        imports = [r.energy_import_wh for r in readings]
        assert all(a is not None and b is not None and b >= a for a, b in itertools.pairwise(imports))
        assert all(len(r.phases) == 3 and r.frequency_hz == 50.0 for r in readings)
        await until(lambda: any(s.counters.get("frames_rejected_crc", 0) > 0
                                and s.counters.get("grid.frames_ok", 0) >= 6 for s in status), 20,
                    "good frames and CRC failures counted in the status, in total and per meter")

        # Pull the cable: the device goes offline; plug a new head in at the same link: it comes back.
        meter.close()
        await until(lambda: availability[-1:] == [b"offline"], 20, "device offline after the cable was pulled")
        before = len(readings)
        again = FeedingMeter(meter.link)
        try:
            await until(lambda: len(readings) > before + 2, 60, f"readings after reconnect ({proc.output()[-1500:]})")
            assert availability[-1] == b"online"
        finally:
            again.close()
        assert proc.proc.poll() is None, "the service must survive all of this"
    finally:
        await bus.stop()


@pytest.mark.parametrize("fmt", ["dsmr", "iec"])
async def test_dsmr_and_iec_meters_publish(broker: Mosquitto, start_service: Callable[..., Any],
                                           tmp_path: Path, fmt: str) -> None:
    feeding = FeedingMeter(tmp_path / f"meter-{fmt}", fmt)
    bus = await started_bus(broker, "test-admin")
    readings: list[m.MeterReading] = []
    bus.subscribe(topics.ALL_READINGS, m.Reading, lambda msg: readings.append(msg.payload))
    proc = start_service("wattbus_sml_reader", "--config", str(write_config(tmp_path, fmt, feeding.link)),
                         env=broker.env("sml-reader"))
    try:
        await until(lambda: len([r for r in readings if r.energy_import_wh]) >= 3, 40,
                    f"{fmt} readings ({proc.output()[-1500:]})")
        assert all(r.power_w is not None for r in readings)
        # Mode D readouts carry no checksum: a damaged digit gets through the framing, and the energy
        # guard is what keeps the published totals monotonic.
        totals = [r.energy_import_wh for r in readings if r.energy_import_wh is not None]
        assert totals == sorted(totals)
        if fmt == "dsmr":
            assert readings[-1].gas_m3 == pytest.approx(1234.567)
    finally:
        feeding.close()
        await bus.stop()
