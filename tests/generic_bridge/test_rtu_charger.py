"""Modbus RTU on a real serial line (a pseudo-terminal pair, RTU frames with CRC): an EVSE DIN
wallbox controller and its SDM630 on one RS485 bus, read through one shared client; the charger's
current and charging written to its registers, limited by the bridge and read back; RTU over TCP
(`socket://`); and two replicas where only the one whose config names the port answers."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus, Message

from tests.conftest import ServiceProcess
from tests.support.bus_helpers import started_bus, subscriptions_active, until
from tests.support.servers import TEST_ADMIN, Mosquitto, free_port, wait_port

SOURCE = "generic-bridge"
WALLBOX = """
[[generic-bridge.devices]]
id = "rtu-wallbox"
template = "evse-din-modbus"
serial_port = "{link}"
max_current_a = 16
interval_s = 0.5

[[generic-bridge.devices]]
id = "rtu-meter"
template = "sdm630-modbus"
serial_port = "{link}"
unit_id = 2
interval_s = 0.5

"""
# RTU over TCP reaches from anywhere: both replicas have it, and either may poll it.
OVER_TCP = """
[[generic-bridge.devices]]
id = "tcp-rtu-wallbox"
template = "evse-din-modbus"
serial_port = "socket://127.0.0.1:{tcp}"
interval_s = 0.5
"""


@dataclass
class Line:
    sim: subprocess.Popen[bytes]
    log: Path
    link: Path
    tcp: subprocess.Popen[bytes]
    replica_a: ServiceProcess
    replica_b: ServiceProcess

    def writes(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if ": register " in line]


def simulator(log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "wattbus_sim", "evse_din", *args], stdout=out,
                                stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def line(broker: Mosquitto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Line]:
    run = tmp_path_factory.mktemp("generic-rtu")
    link, log = run / "rs485", run / "evse.log"
    sim = simulator(log, "--rtu-link", str(link), "--meter", "sdm630", "--meter-unit", "2")
    tcp_port = free_port()
    tcp = simulator(run / "evse-tcp.log", "--port", str(tcp_port), "--rtu-over-tcp")
    deadline = time.monotonic() + 15
    while not link.exists():
        assert time.monotonic() < deadline and sim.poll() is None, log.read_text()
        time.sleep(0.05)
    wait_port(tcp_port)
    # Replica a has the serial port (its config names it); replica b, scaled beside it, does not.
    configs = {}
    over_tcp = OVER_TCP.format(tcp=tcp_port)
    for name, devices in (("a", WALLBOX.format(link=link) + over_tcp), ("b", over_tcp)):
        configs[name] = run / f"{name}.toml"
        configs[name].write_text(f'[generic-bridge]\nstatus_interval_s = 1\ninstance = "rtu-{name}"\n{devices}')
    a, b = (ServiceProcess("wattbus_generic_bridge", ["--config", str(configs[n])], broker.env(SOURCE),
                           run / f"bridge-{n}.log") for n in ("a", "b"))
    yield Line(sim, log, link, tcp, a, b)
    for proc in (a, b):
        proc.stop()
    for server in (sim, tcp):
        server.terminate()
        server.wait(10)


class Seen:
    def __init__(self) -> None:
        self.readings: dict[str, m.ReadingBase] = {}
        self.metas: dict[str, m.DeviceMeta] = {}
        self.status: dict[str, m.ServiceStatus] = {}

    def on_reading(self, msg: Message[bytes]) -> None:
        reading = msgspec.json.decode(msg.payload, type=m.Reading)
        self.readings[reading.device_id] = reading

    def on_meta(self, msg: Message[bytes]) -> None:
        meta = msgspec.json.decode(msg.payload, type=m.DeviceMeta)
        self.metas[meta.device_id] = meta

    def on_status(self, msg: Message[bytes]) -> None:
        if msg.payload:
            status = msgspec.json.decode(msg.payload, type=m.ServiceStatus)
            self.status[status.instance] = status


async def watching(broker: Mosquitto) -> tuple[Bus, Seen]:
    bus = await started_bus(broker, TEST_ADMIN, "rtu")
    seen = Seen()
    bus.subscribe(f"wattbus/v1/device/{SOURCE}/+/reading", bytes, seen.on_reading)
    bus.subscribe(f"wattbus/v1/device/{SOURCE}/+/meta", bytes, seen.on_meta)
    for instance in ("rtu-a", "rtu-b"):
        bus.subscribe(topics.service_status(SOURCE, instance), bytes, seen.on_status)
    await subscriptions_active(bus)
    return bus, seen


async def test_two_units_on_one_serial_line_and_rtu_over_tcp(broker: Mosquitto, line: Line) -> None:
    bus, seen = await watching(broker)
    try:
        wanted = ("rtu-wallbox", "rtu-meter", "tcp-rtu-wallbox")
        await until(lambda: all(d in seen.readings and d in seen.metas for d in wanted), 20,
                    f"readings of {wanted}: {line.replica_a.output()[-2000:]}")
        wallbox, meter, over_tcp = (seen.readings[d] for d in wanted)
        assert isinstance(wallbox, m.ChargerReading) and isinstance(meter, m.MeterReading)
        assert (wallbox.state, wallbox.enabled, wallbox.set_current_a) == ("charging", True, 16)
        assert wallbox.extra["evse_state"] == "pwm" and wallbox.extra["cable_limit_a"] == 32
        assert len(meter.phases) == 3 and meter.frequency_hz == pytest.approx(50.02, abs=0.01)
        assert meter.power_w == pytest.approx(sum(p.power_w or 0 for p in meter.phases), abs=1)
        assert isinstance(over_tcp, m.ChargerReading) and over_tcp.state == "charging"
        assert seen.metas["rtu-wallbox"].address == f"rtu:{line.link}/1"
        assert seen.metas["rtu-meter"].address == f"rtu:{line.link}/2"
        assert (seen.metas["tcp-rtu-wallbox"].address or "").startswith("rtu:socket://127.0.0.1:")
        assert seen.metas["rtu-wallbox"].capabilities == ["set_charge_current", "set_charging"]
        assert seen.metas["rtu-meter"].capabilities == []
    finally:
        await bus.stop()


async def test_charger_commands_are_limited_written_and_read_back(broker: Mosquitto, line: Line) -> None:
    bus, seen = await watching(broker)
    command = topics.device_command(SOURCE, "rtu-wallbox")
    try:
        result = await bus.request(command, m.SetChargeCurrent(current_a=10), timeout=15)
        assert (result.status, result.applied) == ("ok", {"set_current_a": 10}), result.message
        assert "unit 1: register 1000 = 10" in line.writes()  # on the wire, as the device received it
        await until(lambda: getattr(seen.readings.get("rtu-wallbox"), "set_current_a", None) == 10, 10,
                    "the new current in the readings")
        assert seen.readings["rtu-wallbox"].extra["offered_current_a"] == 10
        too_much = await bus.request(command, m.SetChargeCurrent(current_a=20), timeout=15)
        assert too_much.status == "refused" and "20 A is above max_current_a = 16 A" in too_much.message
        assert not any(w.endswith("= 20") for w in line.writes())  # refused before the wire
        stop = await bus.request(command, m.SetCharging(enabled=False), timeout=15)
        assert (stop.status, stop.applied) == ("ok", {"enabled": False}), stop.message
        assert "unit 1: register 1004 = 1" in line.writes()
        await until(lambda: getattr(seen.readings.get("rtu-wallbox"), "state", None) == "waiting", 10,
                    "the car no longer charging")
        start = await bus.request(command, m.SetCharging(enabled=True), timeout=15)
        assert start.status == "ok" and "unit 1: register 1004 = 0" in line.writes()
        phases = await bus.request(command, m.SetPhases(phases=1), timeout=15)
        assert phases.status == "refused" and "accepts: set_charge_current, set_charging" in phases.message
        meter = await bus.request(topics.device_command(SOURCE, "rtu-meter"), m.SetChargeCurrent(current_a=8),
                                  timeout=15)
        assert meter.status == "refused" and "accepts: none" in meter.message
    finally:
        await bus.stop()


async def test_only_the_replica_naming_the_port_polls_and_answers(broker: Mosquitto, line: Line) -> None:
    bus, seen = await watching(broker)
    try:
        asked = m.utc_now()
        result = await bus.request(topics.device_command(SOURCE, "rtu-wallbox"), m.SetChargeCurrent(current_a=12),
                                   timeout=15)
        assert result.status == "ok", result.message
        # Both replicas received the command; b (which does not know the port) left it to a.
        await until(lambda: all(i in seen.status and seen.status[i].timestamp > result.timestamp
                                for i in ("rtu-a", "rtu-b")), 10, "both replicas' status after the command")
        a, b = seen.status["rtu-a"], seen.status["rtu-b"]
        assert a.timestamp > asked and a.counters.get("commands_ok", 0) >= 1
        assert a.devices >= 2  # the serial ones are a's, whatever the hash says of the others
        assert not any(k.startswith("commands_") for k in b.counters), b.counters
    finally:
        await bus.stop()
