"""The closed loop through the real device protocols, timed: the house behind go-e / Shelly HTTP
(wattbus_sim.house_devices, in this process), the real goe-shelly-bridge and surplus-controller
processes and a real Mosquitto. Run: .venv/bin/python bench/bench_house_devices.py

- command: SetChargeCurrent from a client to the bridge's confirmed `ok` (write + read-back), and
  to the moment the go-e's `amp` changed in the house (the HTTP write arrived);
- load step: a 2 kW load switched on in the house while the car charges from the sun, to the
  controller's lower current reaching the go-e (bridge poll 1 s, as in the demo).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus
from wattbus_sim.house import House
from wattbus_sim.house_devices import HouseDevices

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.servers import Mosquitto  # noqa: E402

CONFIG = """
[goe-shelly-bridge]
poll_interval_s = 1.0
[[goe-shelly-bridge.devices]]
url = "http://127.0.0.1:{goe}"
min_switch_interval_s = 0
min_phase_switch_interval_s = 0
[[goe-shelly-bridge.devices]]
url = "http://127.0.0.1:{meter}"

[site]
grid = "goe-shelly-bridge/shelly-08f9e0e5a001-em"
[[site.loadpoints]]
id = "garage"
charger = "goe-shelly-bridge/goe-204571"
phases = 3

[surplus-controller]
state_file = "{tmp}/state.json"
[surplus-controller.tuning.garage]
enable_delay_s = 2
raise_hold_s = 2
settle_s = 4
"""


async def wait(predicate: object, timeout: float) -> float | None:
    """Seconds until predicate() held, or None after timeout."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if predicate():  # type: ignore[operator]
            return time.perf_counter() - start
        await asyncio.sleep(0.005)
    return None


def spawn(module: str, config: Path, broker: Mosquitto, user: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **broker.env(user), "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", module, "--config", str(config)], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


async def measure(broker: Mosquitto, tmp: Path, rounds: int = 8) -> list[tuple[str, str]]:
    house = House.from_profile("clear", "11:40", with_heater=True)
    house.battery = None
    devices = HouseDevices(house, goe_serial="204571", meter_mac="08F9E0E5A001", goe_force=1)
    await devices.start(0, 0, None)
    clock = asyncio.create_task(devices.run(speed=1.0, until_s=house.time_s + 3600))
    config = tmp / "wattbus.toml"
    config.write_text(CONFIG.format(goe=devices.ports["goe"], meter=devices.ports["meter"], tmp=tmp))
    procs = [spawn("wattbus_goe_shelly_bridge", config, broker, "goe-shelly-bridge", tmp / "bridge.log"),
             spawn("wattbus_surplus_controller", config, broker, "surplus-controller", tmp / "controller.log")]
    client = Bus(broker.bus_config("http-api"), "http-api", "bench-house")
    await client.start()
    rows: list[tuple[str, str]] = []
    try:
        started = await wait(lambda: house.charger.power_w() > 0, 90)
        rows.append(("controller start to car charging (s)", "-" if started is None else f"{started:.1f}"))
        # load step: the car draws the surplus; a 2 kW heater comes on outside the controller's control
        # let it rise on the surplus first: at 6 A there is nothing to cut but a stop after the allowance
        await wait(lambda: house.charger.offered_a >= 8 and house.charger.current_a() >= 8, 90)
        before = house.charger.offered_a
        house.relays["heater"].set_on(True)
        cut = await wait(lambda: house.charger.offered_a < before or not house.charger.enabled, 30)
        rows.append((f"2 kW load step to lower current at the go-e ({before:g} A, one step)",
                     "-" if cut is None else f"{cut:.2f} s"))
        house.relays["heater"].set_on(False)
        # commands: mode off so the controller keeps out, then direct SetChargeCurrent requests
        await client.request(topics.loadpoint_command("garage"), m.SetLoadpointMode(mode="off"), timeout=15)
        arrive, confirm = [], []
        target = topics.device_command("goe-shelly-bridge", "goe-204571")
        for n in range(rounds):
            amps = 7 + n % 2
            sent = time.perf_counter()
            task = asyncio.create_task(client.request(target, m.SetChargeCurrent(current_a=amps), timeout=15))
            if await wait(lambda a=amps: devices.goe.amp == a, 15) is not None:  # type: ignore[misc]
                arrive.append(time.perf_counter() - sent)
            result = await task
            if result.status == "ok":
                confirm.append(time.perf_counter() - sent)
        for label, values in (("SetChargeCurrent to go-e amp changed (ms)", arrive),
                              ("SetChargeCurrent to confirmed ok (ms)", confirm)):
            text = f"median {statistics.median(values) * 1000:.0f}, max {max(values) * 1000:.0f} (n={len(values)})" \
                if values else "-"
            rows.append((label, text))
    finally:
        await client.stop()
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        clock.cancel()
        await asyncio.gather(clock, return_exceptions=True)
        await devices.stop()
    return rows


def main() -> str:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        broker = Mosquitto(tmp / "broker")
        broker.start()
        try:
            rows = asyncio.run(measure(broker, tmp))
        finally:
            broker.stop()
    width = max(len(label) for label, _ in rows)
    lines = [f"{'house_devices closed loop':<{width}}  figure", "-" * (width + 30)]
    lines += [f"{label:<{width}}  {value}" for label, value in rows]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
