"""The example configuration run for real: its house simulated, its bridges and controller started.

The simulated house (wattbus-sim house_devices with its battery, plus a Gen1 Shelly for the pool
pump) stands in for the devices at the example's LAN addresses; the addresses are replaced line
by line, as the compose smoke test does with sed. Then every device the surplus controller and
the web UI name must be published by a bridge, and the controller must regulate from them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Message

from tests.deploy.support import EXAMPLE, listed_addresses
from tests.deploy.test_example_config import as_compose_runs
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto, free_port

# What stands at each placeholder address: the simulator's port ("sunspec" and "giv" are TCP
# ports on their own `port =` line; the others go into the URL).
STANDS_IN = {"192.168.1.20": "sunspec", "192.168.1.21": "meter", "192.168.1.22": "giv",
             "192.168.1.23": "goe", "192.168.1.24": "heater", "192.168.1.25": "pump"}
BRIDGES = ("sunspec-bridge", "giv-bridge", "goe-shelly-bridge")


def local_config(tmp_path: Path, ports: dict[str, int]) -> Path:
    """The example with each LAN address replaced by the simulator's, one line at a time."""
    text = EXAMPLE.read_text()
    assert set(listed_addresses(text)) == set(STANDS_IN), "the example's devices changed: update STANDS_IN"
    for address, device in STANDS_IN.items():
        text, urls = re.subn(rf'^url = "http://{re.escape(address)}"', f'url = "http://127.0.0.1:{ports[device]}"',
                             text, flags=re.M)
        text, hosts = re.subn(rf'^host = "{re.escape(address)}"', 'host = "127.0.0.1"', text, flags=re.M)
        assert urls + hosts == 1, f"{address} is not on exactly one host/url line"
    for default, device in ((502, "sunspec"), (8899, "giv")):
        text, count = re.subn(rf"^port = {default}\b", f"port = {ports[device]}", text, flags=re.M)
        assert count == 1, f"port = {default} is not on exactly one line"
    path = tmp_path / "wattbus.toml"
    path.write_text(text)
    return path


def named_devices() -> set[str]:
    """Every "<bridge>/<device id>" the controller and the web UI's power flow refer to."""
    controller = as_compose_runs("surplus-controller")[1]
    site = as_compose_runs("http-api")[1].site
    return {controller.grid_meter, controller.battery, *(lp.charger for lp in controller.loadpoints),
            *(r.device for r in controller.relays), site.grid, *site.pv, *site.battery, *site.charger_refs()}


async def test_the_example_house_runs(private_broker: Mosquitto, start_service: Any, tmp_path: Path) -> None:
    ports = {name: free_port() for name in STANDS_IN.values()}
    start_service("wattbus_sim", "house_devices", "--profile", "clear", "--start", "11:00", "--battery",
                  "--sunspec-port", str(ports["sunspec"]), "--meter-port", str(ports["meter"]),
                  "--giv-port", str(ports["giv"]), "--goe-port", str(ports["goe"]),
                  "--heater-port", str(ports["heater"]))
    start_service("wattbus_sim", "shelly", "--port", str(ports["pump"]), "--model", "SHSW-PM",
                  "--mac", "E8DB84D2C3A1")
    config = local_config(tmp_path, ports)
    for bridge in BRIDGES:
        start_service(f"wattbus_{bridge.replace('-', '_')}", "--config", str(config),
                      env=private_broker.env(bridge))
    start_service("wattbus_surplus_controller", "--config", str(config),
                  env={**private_broker.env("surplus-controller"),
                       "WATTBUS_SURPLUS_CONTROLLER_STATE_FILE": str(tmp_path / "controller.json")})

    readings: set[str] = set()
    states: list[m.LoadpointState] = []
    bus = await started_bus(private_broker, "test-admin", "example-house")
    bus.subscribe(topics.ALL_READINGS, m.Reading,
                  lambda msg: readings.add(f"{msg.topic.split('/')[3]}/{msg.payload.device_id}"))

    def on_state(msg: Message[m.LoadpointState]) -> None:
        states.append(msg.payload)

    bus.subscribe(topics.loadpoint_state("garage"), m.LoadpointState, on_state)
    try:
        wanted = named_devices()
        try:
            await until(lambda: wanted <= readings, 60, "readings of every device the example names")
        except AssertionError:
            raise AssertionError(f"no readings of {sorted(wanted - readings)}; seen {sorted(readings)}") from None
        # the controller hears the grid meter and the battery: a surplus and no stale-data alert
        try:
            await until(lambda: any(s.surplus_w is not None and s.alert is None for s in states), 30, "state")
        except AssertionError:
            raise AssertionError(f"no loadpoint state with a surplus and no alert; last: {states[-1:]}") from None
        controller = as_compose_runs("surplus-controller")[1]
        assert {s.charger_id for s in states} == {controller.loadpoints[0].charger.split("/")[1]}
    finally:
        await bus.stop()
