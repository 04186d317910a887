"""The demo car (wattbus-sim teslamate): its SoC follows the charger's session energy, in TeslaMate's payloads."""

from __future__ import annotations

from collections.abc import Callable
from urllib.request import urlopen

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from wattbus_sim.teslamate import Car

from tests.foundation.test_embedded import wait_for as wait_until
from tests.simulators.conftest import SimProcess
from tests.support.servers import TEST_ADMIN, Mosquitto, free_port


def test_soc_rises_with_the_session_energy_and_stops_at_full() -> None:
    car = Car(capacity_wh=64_000, arrival_soc_pct=30, efficiency=0.92, full_range_km=400, limit_soc_pct=80)
    car.follow(0.0)
    assert car.values(3) == {"battery_level": "30", "est_battery_range_km": "120.0", "charge_limit_soc": "80",
                             "plugged_in": "true", "charging_state": "Stopped"}
    car.follow(6_400 / 0.92)  # 6.4 kWh stored: +10 % of 64 kWh
    assert car.soc_pct == pytest.approx(40)
    assert car.values(2)["battery_level"] == "40" and car.values(2)["charging_state"] == "Charging"
    car.follow(100_000)
    assert car.soc_pct == 100 and car.values(4)["charging_state"] == "Complete"
    car.follow(0.0)  # a new session: the car arrives again at its arrival SoC
    assert car.values(1)["battery_level"] == "30" and car.values(1)["plugged_in"] == "false"


def test_the_car_follows_a_go_e_over_the_wire_and_stops_on_sigterm(broker: Mosquitto,
                                                                   start_sim: Callable[..., SimProcess]) -> None:
    """A go-e simulator charges, the car simulator reads its session energy over HTTP and publishes
    TeslaMate's retained topics as house-sim (the shipped ACL): the SoC rises; SIGTERM ends it with 0."""
    goe_port, car = free_port(), f"t{free_port()}"  # a car id of its own: the test broker is shared
    start_sim("goe", "--port", str(goe_port), "--api", "v2", "--ramp-delay-s", "0").wait_banner()
    sim = start_sim("teslamate", "--goe", f"http://127.0.0.1:{goe_port}", "--car", car, "--capacity-wh", "1000",
                    "--soc-pct", "20", "--interval", "0.2", env=broker.env("house-sim"))
    seen: dict[str, str] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(TEST_ADMIN, broker.files.password(TEST_ADMIN))
    client.on_connect = lambda c, u, f, r, p: c.subscribe(f"teslamate/cars/{car}/#", qos=1)
    client.on_message = lambda c, u, msg: seen.update({msg.topic.rsplit("/", 1)[1]: msg.payload.decode()})
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        assert wait_until(lambda: seen.get("battery_level") == "20", 15), (seen, sim.stdout())
        assert seen["plugged_in"] == "true" and seen["charge_limit_soc"] == "80"
        urlopen(f"http://127.0.0.1:{goe_port}/api/set?frc=2", timeout=5).read()  # the charger starts
        assert wait_until(lambda: int(seen.get("battery_level", "0")) > 20, 15), (seen, sim.stdout())
        assert seen["charging_state"] == "Charging" and float(seen["est_battery_range_km"]) > 80
        assert sim.terminate() == 0, sim.stderr()
        assert "Traceback" not in sim.stderr()
    finally:
        for key in list(seen):  # no retained car left for later tests
            client.publish(f"teslamate/cars/{car}/{key}", b"", qos=1, retain=True).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()
