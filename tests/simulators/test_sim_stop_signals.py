"""Every long-running `wattbus-sim` subcommand stops on SIGTERM with exit status 0 and cleans up.

In a container the simulator is PID 1: without a SIGTERM handler `docker stop` waits and then kills
it (exit 137). Outside a container an unhandled SIGTERM ends the process with status -15, which is
what these tests would see if a simulator lacked its handler.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from wattbus_sim.__main__ import available

from tests.simulators.conftest import SimProcess
from tests.support.servers import Mosquitto, free_port

ONE_SHOT = {"meter_sml_encode", "meter_text", "sunspec_image"}  # print one sample and exit


def port() -> str:
    return str(free_port())


# case -> (arguments, files the simulator must have removed once stopped, text its output ends with)
CASES: dict[str, Callable[[Path], tuple[list[str], list[Path], str]]] = {
    "ecu": lambda d: (["ecu", "--port", port(), "--http-port", port()], [], ""),
    "giv": lambda d: (["giv", "--port", port()], [], ""),
    "goe": lambda d: (["goe", "--port", port()], [], ""),
    "generic_http": lambda d: (["generic_http", "--device", "tasmota-sml", "--port", port()], [], ""),
    "evse_din-tcp": lambda d: (["evse_din", "--port", port(), "--meter", "sdm630", "--relay-board", "4"], [], ""),
    "evse_din-rtu": lambda d: (["evse_din", "--rtu-link", str(d / "evse")], [d / "evse"], ""),
    "fronius": lambda d: (["fronius", "--port", port(), "--night"], [], ""),
    "shelly": lambda d: (["shelly", "--port", port(), "--model", "Pro3EM"], [], ""),
    "sunspec-tcp": lambda d: (["sunspec", "--port", port(), "--profile", "fronius", "--profile", "sdm630",
                               "--sdm-unit", "3"], [], ""),
    "sunspec-rtu": lambda d: (["sunspec", "--rtu-link", str(d / "rtu"), "--profile", "sdm630"], [d / "rtu"], ""),
    "sunspec_pty": lambda d: (["sunspec_pty", str(d / "a"), str(d / "b")], [d / "a", d / "b"], ""),
    "sml": lambda d: (["sml", "--link", str(d / "meter"), "--interval", "0.2"], [], ""),
    "sml-mode-c": lambda d: (["sml", "--link", str(d / "meter"), "--format", "iec", "--mode-c"], [], ""),
    "house_devices": lambda d: (["house_devices", "--goe-port", port(), "--meter-port", port(), "--heater-port",
                                 port(), "--sunspec-port", port(), "--giv-port", port(), "--sml-link",
                                 str(d / "sml")], [], "house devices stopped at"),
}


def subcommand(case: str) -> str:
    return case.split("-")[0]


def test_every_simulator_is_covered() -> None:
    # house_bus and teslamate need a broker: their own tests below and in test_sim_teslamate.py
    assert set(available()) == {subcommand(c) for c in CASES} | ONE_SHOT | {"house_bus", "teslamate"}


def assert_stops(sim: SimProcess, gone: list[Path], last_words: str) -> None:
    sim.wait_banner()
    code = sim.terminate(timeout=5.0)
    assert code == 0, f"{sim.args}: exit status {code} after SIGTERM\n{sim.stderr()}"
    assert "Traceback" not in sim.stdout() + sim.stderr(), sim.stderr()
    if last_words:
        assert sim.stdout().splitlines()[-1].startswith(last_words), sim.stdout()
    assert not [p for p in gone if p.is_symlink() or p.exists()], f"{sim.args} left its links behind"


@pytest.mark.parametrize("case", sorted(CASES))
def test_sigterm_stops_the_simulator_with_status_0(case: str, start_sim: Callable[..., SimProcess],
                                                   tmp_path: Path) -> None:
    args, gone, last_words = CASES[case](tmp_path)
    assert_stops(start_sim(*args), gone, last_words)


def test_sigterm_stops_house_bus_after_it_disconnects(broker: Mosquitto,
                                                      start_sim: Callable[..., SimProcess]) -> None:
    sim = start_sim("house_bus", "--speed", "1", "--start", "12:00", "--end", "18:00", "--profile", "clear",
                    env=broker.env("house-sim"))
    assert_stops(sim, [], "surplus_kwh=")  # the day's summary, printed after the bus stopped
