"""A generic charger driven by the surplus-controller, end to end: the EVSE DIN simulator with its
wallbox meter and the house's grid meter on one Modbus line, generic-bridge reading both
(evse-din-sdm630-modbus as the loadpoint's charger, sdm630-modbus as `[site] grid`), the
controller as a real process, the shipped ACL. The sun makes a surplus: the controller starts the
car at the current the surplus carries, within the bridge's limits; the sun goes: it stops. What
reached the device is the simulator's own log of register writes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Message

from tests.conftest import ServiceProcess
from tests.support.bus_helpers import started_bus, subscriptions_active, until
from tests.support.servers import TEST_ADMIN, Mosquitto, free_port, wait_port

SOURCE = "generic-bridge"
WALLBOX, GRID, LOADPOINT = "e2e-wallbox", "e2e-grid", "e2e-garage"
HOUSE_W, SUN_W = 500, 6000
CONFIG = """
[site]
grid = "generic-bridge/{grid}"
[[site.loadpoints]]
id = "{loadpoint}"
charger = "generic-bridge/{wallbox}"
phases = 3          # the EVSE DIN is wired for 3 phases (the template's default): no switching
max_current_a = 32  # above the bridge's 16 A: the controller works within the charger's published limits

[generic-bridge]
instance = "e2e"
lease_s = 0
[[generic-bridge.devices]]
id = "{wallbox}"
template = "evse-din-sdm630-modbus"
host = "127.0.0.1"
port = {port}
max_current_a = 16
interval_s = 0.5
[[generic-bridge.devices]]
id = "{grid}"
template = "sdm630-modbus"
host = "127.0.0.1"
port = {port}
unit_id = 3
interval_s = 0.5

[surplus-controller]
instance = "e2e"
state_file = "{state}"
command_replies = "result_topic"
[surplus-controller.tuning.{loadpoint}]
enable_delay_s = 0
"""


class Seen:
    """This run's loadpoint states and wallbox readings (the broker is the session's: older ones are retained)."""

    def __init__(self) -> None:
        self.since = m.utc_now()
        self.states: list[m.LoadpointState] = []
        self.wallbox: m.ChargerReading | None = None

    def on_state(self, msg: Message[bytes]) -> None:
        if msg.payload:
            state = msgspec.json.decode(msg.payload, type=m.LoadpointState)
            if state.timestamp > self.since:
                self.states.append(state)

    def on_reading(self, msg: Message[bytes]) -> None:
        if not msg.payload:  # our own clean-up of the retained topic
            return
        reading = msgspec.json.decode(msg.payload, type=m.Reading)
        if isinstance(reading, m.ChargerReading) and reading.timestamp > self.since:
            self.wallbox = reading


def writes(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if ": register " in line]


def wallbox(seen: Seen, key: str) -> Any:
    return getattr(seen.wallbox, key, None)


async def test_the_controller_charges_a_generic_charger_from_the_sun_and_stops(broker: Mosquitto,
                                                                                tmp_path: Path) -> None:
    port, pv, sim_log = free_port(), tmp_path / "pv_w", tmp_path / "evse.log"
    pv.write_text(str(SUN_W))
    config = tmp_path / "wattbus.toml"
    config.write_text(CONFIG.format(grid=GRID, wallbox=WALLBOX, loadpoint=LOADPOINT, port=port,
                                    state=tmp_path / "state.json"))
    with sim_log.open("ab") as out:
        sim = subprocess.Popen([sys.executable, "-m", "wattbus_sim", "evse_din", "--port", str(port), "--off",
                                "--meter", "sdm630", "--grid-meter", "sdm630", "--house-w", str(HOUSE_W),
                                "--pv-file", str(pv)], stdout=out, stderr=subprocess.STDOUT)
    services: list[ServiceProcess] = []
    bus = await started_bus(broker, TEST_ADMIN, "e2e-charger")
    seen = Seen()
    try:
        wait_port(port)
        bus.subscribe(topics.loadpoint_state(LOADPOINT), bytes, seen.on_state)
        bus.subscribe(topics.device_reading(SOURCE, WALLBOX), bytes, seen.on_reading)
        await subscriptions_active(bus)
        services = [ServiceProcess(f"wattbus_{name.replace('-', '_')}", ["--config", str(config)], broker.env(name),
                                   tmp_path / f"{name}.log") for name in (SOURCE, "surplus-controller")]
        bridge, controller = services

        async def waiting(predicate: Callable[[], bool], timeout: float, what: str) -> None:
            try:
                await until(predicate, timeout, what)
            except AssertionError as exc:  # the processes' own words, as they are when it fails
                raise AssertionError(f"{exc}\n{bridge.output()[-1500:]}\n{controller.output()[-2500:]}\n"
                                     f"{sim_log.read_text()}") from None

        # the car is plugged in, charging off; 5.5 kW go to the grid: the controller starts it
        await waiting(lambda: wallbox(seen, "enabled") is True, 30, "the car charging")
        assert "unit 1: register 1004 = 0" in writes(sim_log)  # charging on, as the board received it
        current = [int(w.rsplit("= ", 1)[1]) for w in writes(sim_log) if "register 1000 =" in w]
        # the surplus carries 7 A on 3 phases (7 x 690 W < 5.5 kW < 8 x 690 W), inside the bridge's 6-16 A
        assert current and current[-1] == 7 and all(6 <= a <= 16 for a in current), writes(sim_log)
        await waiting(lambda: (wallbox(seen, "power_w") or 0) > 4000, 10, "the car's draw on its meter")
        reading = seen.wallbox
        assert reading is not None and reading.state == "charging" and reading.phases_active == 3
        assert reading.power_w == 7 * 230 * 3 and reading.set_current_a == 7
        assert (reading.extra["limit_min_current_a"], reading.extra["limit_max_current_a"]) == (6, 16)
        await waiting(lambda: any(s.charging and s.set_current_a == 7 for s in seen.states), 10, "the loadpoint state")
        assert seen.states[-1].reason.endswith("; range 6-16 A (charger's limits; configured 6-32 A)")
        assert seen.states[-1].max_current_a == 32  # the person's choice, as set; the reason says what applies
        assert controller.output().count("loadpoint current range") == 1, controller.output()
        # every command the controller sends a charger (set_phases included) was taken, the first ones too:
        # sent when the bridge came up (its service `online`, the grid meter's reading), before the
        # wallbox's first read, they waited for it in the bridge and were applied (#25)
        for process in (controller, bridge):
            assert "command not applied" not in process.output(), process.output()

        # the sun goes: 5.3 kW from the grid at 6 A, and once its 40 Wh import allowance is used the car stops
        pv.write_text("0")
        await waiting(lambda: wallbox(seen, "enabled") is False, 30, "the car stopped")
        assert writes(sim_log)[-1] == "unit 1: register 1004 = 1"
        # stopped by the import it allows itself (40 Wh), and waiting for the sun
        await waiting(lambda: not seen.states[-1].charging and seen.states[-1].status.startswith("waiting_"), 10,
                      "the loadpoint waiting")
        assert seen.states[-1].set_current_a is None and (seen.states[-1].surplus_w or 0) < 0

        # what the controller could ask and the bridge will not do: the wired phases, more than the circuit
        command = topics.device_command(SOURCE, WALLBOX)
        one_phase = await bus.request(command, m.SetPhases(phases=1), timeout=15)
        assert one_phase.status == "refused" and "phases_active is fixed by the installation at 3" in one_phase.message
        too_much = await bus.request(command, m.SetChargeCurrent(current_a=20), timeout=15)
        assert too_much.status == "refused" and "20 A is above max_current_a = 16 A" in too_much.message
        assert writes(sim_log)[-1] == "unit 1: register 1004 = 1"  # nothing written for either
    finally:
        for service in services:
            service.stop()
        sim.terminate()
        sim.wait(10)
        for topic in (topics.loadpoint_state(LOADPOINT), *(f(SOURCE, d) for d in (WALLBOX, GRID)
                                                           for f in (topics.device_meta, topics.device_availability,
                                                                     topics.device_reading))):
            bus.publish(topic, b"", retain=True)  # the broker is the session's: leave no retained state behind
        await bus.stop()
