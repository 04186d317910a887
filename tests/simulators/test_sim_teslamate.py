"""The demo car (wattbus-sim teslamate): its SoC follows the charger's session energy, in TeslaMate's payloads."""

from __future__ import annotations

import pytest

from wattbus_sim.teslamate import Car


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
