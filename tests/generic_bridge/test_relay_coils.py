"""A relay on a plain Modbus coil list: one channel of a Waveshare Modbus RTU Relay (D) board
(waveshare-modbus-relay), its state read from a coil (function 01), an input from a discrete input
(02), switched with function 05 and confirmed by reading the coil back; the bridge as a real process
on the real broker, the board simulated beside an EVSE DIN on one Modbus line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Message
from wattbus_generic_bridge.modbus import plan_bits

from tests.conftest import ServiceProcess
from tests.support.bus_helpers import started_bus, subscriptions_active, until
from tests.support.servers import TEST_ADMIN, Mosquitto, free_port, wait_port

SOURCE = "generic-bridge"
RELAY = "coil-heater"
CONFIG = """
[generic-bridge]
instance = "coils"
lease_s = 0
[[generic-bridge.devices]]
id = "{relay}"
template = "waveshare-modbus-relay"
host = "127.0.0.1"
port = {port}
unit_id = 4
vars = {{ channel = "2", input = "0" }}   # CH3, and DI1 (which the simulated board drives)
interval_s = 0.5
"""


def test_nearby_bits_are_read_together_per_table() -> None:
    assert plan_bits([("coil", 2), ("coil", 0), ("discrete", 0), ("coil", 30), ("coil", 2)]) == [
        ("coil", 0, 3), ("coil", 30, 1), ("discrete", 0, 1)]


async def test_a_coil_relay_is_read_switched_and_read_back(broker: Mosquitto, tmp_path: Path) -> None:
    port, sim_log = free_port(), tmp_path / "board.log"
    config = tmp_path / "wattbus.toml"
    config.write_text(CONFIG.format(relay=RELAY, port=port))
    with sim_log.open("ab") as out:
        sim = subprocess.Popen([sys.executable, "-m", "wattbus_sim", "evse_din", "--port", str(port),
                                "--relay-board", "4"], stdout=out, stderr=subprocess.STDOUT)
    bus = await started_bus(broker, TEST_ADMIN, "coils")
    since, readings, metas = m.utc_now(), list[m.RelayReading](), list[m.DeviceMeta]()

    def on_reading(msg: Message[bytes]) -> None:
        if not msg.payload:  # our own clean-up of the retained topic
            return
        reading = msgspec.json.decode(msg.payload, type=m.Reading)
        if isinstance(reading, m.RelayReading) and reading.timestamp > since:
            readings.append(reading)

    bus.subscribe(topics.device_reading(SOURCE, RELAY), bytes, on_reading)
    def on_meta(msg: Message[bytes]) -> None:
        if msg.payload:
            metas.append(msgspec.json.decode(msg.payload, type=m.DeviceMeta))

    bus.subscribe(topics.device_meta(SOURCE, RELAY), bytes, on_meta)
    bridge: ServiceProcess | None = None
    try:
        wait_port(port)
        await subscriptions_active(bus)
        bridge = ServiceProcess("wattbus_generic_bridge", ["--config", str(config)], broker.env(SOURCE),
                                tmp_path / "bridge.log")
        await until(lambda: bool(readings) and bool(metas), 20, "the relay's first reading")
        assert (readings[-1].on, readings[-1].extra["input"]) == (False, 1)  # CH3 off; DI1 driven
        assert metas[-1].capabilities == ["set_relay"] and metas[-1].address == f"tcp://127.0.0.1:{port}/4"

        command = topics.device_command(SOURCE, RELAY)
        on = await bus.request(command, m.SetRelay(on=True), timeout=15)
        assert (on.status, on.applied) == ("ok", {"on": True, "channel": 0}), on.message
        assert "unit 4: coil 2 = 1" in sim_log.read_text()  # function 05 on CH3, as the board received it
        await until(lambda: readings[-1].on is True, 10, "the coil read back on in the readings")
        again = await bus.request(command, m.SetRelay(on=False), timeout=15)
        assert again.status == "refused" and "minimum interval is 10 s" in again.message
        other = await bus.request(command, m.SetRelay(on=True, channel=1), timeout=15)
        assert other.status == "refused" and "channel 0 only" in other.message
        assert sim_log.read_text().count(": coil ") == 1  # the refusals wrote nothing
    finally:
        if bridge is not None:
            bridge.stop()
        sim.terminate()
        sim.wait(10)
        for f in (topics.device_meta, topics.device_availability, topics.device_reading):
            bus.publish(f(SOURCE, RELAY), b"", retain=True)  # the session's broker keeps no state of ours
        await bus.stop()
