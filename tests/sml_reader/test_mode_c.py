"""IEC 62056-21 mode C: the service signs on, switches baud rate and reads; the simulated meter answers on a pty."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from wattbus import messages as m
from wattbus import topics
from wattbus_sim.sml import MeterState, ModeCMeter, PtyLine
from wattbus_sml_reader import iec
from wattbus_sml_reader.values import FrameError

from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto


class AnsweringMeter:
    """A mode C meter in a thread: silent until signed on, as a real one is."""

    def __init__(self, link: Path, address: str, garbage_ident_every: int = 0) -> None:
        self.link = link
        self.line = PtyLine(link, 300)
        self.meter = ModeCMeter(self.line, MeterState(serial=60694611), address,
                                garbage_ident_every=garbage_ident_every, log=False)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            self.meter.serve(0.2)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.line.close()


def write_config(tmp_path: Path, link: Path, address: str) -> Path:
    config = tmp_path / "wattbus.toml"
    config.write_text(f"""
[sml-reader]
status_interval_s = 1
[[sml-reader.meters]]
key = "house"
format = "iec"
iec_mode = "c"
iec_address = "{address}"
iec_request_interval_s = 1
# A pty takes no parity settings after opening (the kernel refuses a 7E1 reconfigure), so the line
# is opened 8N1 as with ser2net or a WiFi head: the service adds the parity bit to what it sends.
bytesize = 8
parity = "N"
port = "{link}"
""")
    return config


@pytest.mark.parametrize("garbage_every", [0, 2], ids=["clean", "garbage-ident"])
async def test_mode_c_readouts_reach_the_bus(broker: Mosquitto, start_service: Callable[..., Any],
                                             tmp_path: Path, garbage_every: int) -> None:
    meter = AnsweringMeter(tmp_path / "meter-c", "60694611", garbage_every)
    bus = await started_bus(broker, "test-admin")
    readings: list[m.MeterReading] = []
    status: list[m.ServiceStatus] = []
    bus.subscribe(topics.ALL_READINGS, m.Reading, lambda msg: readings.append(msg.payload))
    bus.subscribe(topics.service_status("sml-reader", "main"), m.ServiceStatus, lambda msg: status.append(msg.payload))
    proc = start_service("wattbus_sml_reader", "--config", str(write_config(tmp_path, meter.link, "60694611")),
                         env=broker.env("sml-reader"))
    try:
        await until(lambda: len(readings) >= 3, 60, f"three mode C readings ({proc.output()[-2000:]})")
        assert all(r.energy_import_wh is not None and r.energy_import_wh > 1_000_000 for r in readings)
        assert all(r.power_w is not None and len(r.phases) == 3 for r in readings)
        totals = [r.energy_import_wh or 0.0 for r in readings]
        assert totals == sorted(totals)
        # The identification offers 9600 baud (`/ESY5`): the service asked for it in its option select.
        assert meter.meter.requested_bauds and set(meter.meter.requested_bauds) == {9600}
        assert len(readings) <= meter.meter.readouts  # one reading per readout, nothing invented
        if garbage_every:
            await until(lambda: any(s.counters.get("house.frames_rejected_ident", 0) > 0 for s in status), 30,
                        "the noisy identification counted per meter")
            assert meter.meter.readouts < meter.meter.sign_ons  # no readout was requested after the noise
        else:
            await until(lambda: any(s.counters.get("house.frames_ok", 0) >= 3 for s in status), 30,
                        "good readouts counted")
            # (a timeout may happen on a starved test host; a bad identification or block check may not)
            assert not any(s.counters.get("frames_rejected_ident", 0) or s.counters.get("frames_rejected_crc", 0)
                           for s in status)
        assert proc.proc.poll() is None, "the service must survive all of this"
    finally:
        meter.close()
        await bus.stop()


async def test_a_meter_with_another_address_stays_silent_and_the_timeout_is_counted(
        broker: Mosquitto, start_service: Callable[..., Any], tmp_path: Path) -> None:
    meter = AnsweringMeter(tmp_path / "meter-other", "11111111")
    bus = await started_bus(broker, "test-admin")
    status: list[m.ServiceStatus] = []
    bus.subscribe(topics.service_status("sml-reader", "main"), m.ServiceStatus, lambda msg: status.append(msg.payload))
    proc = start_service("wattbus_sml_reader", "--config", str(write_config(tmp_path, meter.link, "60694611")),
                         env=broker.env("sml-reader"))
    try:
        await until(lambda: any(s.counters.get("house.frames_rejected_timeout", 0) > 0 for s in status), 40,
                    f"the unanswered sign-on counted ({proc.output()[-1500:]})")
        assert meter.meter.sign_ons == 0 and meter.meter.readouts == 0
        assert proc.proc.poll() is None
    finally:
        meter.close()
        await bus.stop()


# Identification lines as real meters send them (EasyMeter, Iskra, Landis+Gyr, EMH, Itron).
@pytest.mark.parametrize("line, rate", [
    (b"/ESY5Q3DB1024 V3.04\r\n", 9600), (b"/ISk5MT174-0001\r\n", 9600), (b"/LGZ4ZMF100AC.M29\r\n", 4800),
    (b"/EMH4\\@01LZQJL0014F\r\n", 4800), (b"/ISk5\\2MT382-1000\r\n", 9600), (b"/ACE0SL7000\r\n", 300),
    (b"/\xc5SY5Q3DB1024 V3.04\r\n", 9600),  # 7E1 read as 8N1: parity bits set
])
def test_real_identifications_are_accepted(line: bytes, rate: int) -> None:
    ident = iec.check_ident(line)
    assert iec.option_select(ident, 300, True) == (b"\x060" + ident[4:5] + b"0\r\n", rate)
    assert iec.option_select(ident, 300, False) == (b"\x06000\r\n", 300)


@pytest.mark.parametrize("line, why", [
    (b"#%&?@*+-=~01234567\r\n", "is not /MMMZident"), (b"/ES\r\n", "is not /MMMZident"),
    (b"/ESY5Q3DB1024", "no CR LF"), (b"/ESY5Q3D/B1024\r\n", "is not /MMMZident"), (b"", "no CR LF"),
])
def test_garbage_identifications_are_rejected(line: bytes, why: str) -> None:
    with pytest.raises(FrameError, match=why) as caught:
        iec.check_ident(line)
    assert caught.value.kind == "ident"
