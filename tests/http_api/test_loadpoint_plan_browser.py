"""The loadpoint card's vehicle SoC and charge plan in headless chromium (phone and desktop): the card
shows the car's SoC, a plan set from the card reaches the real controller, which plans with it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from wattbus import messages as m
from wattbus import topics

from tests.http_api import conftest
from tests.http_api.browser import Browser
from tests.http_api.conftest import HttpApi
from tests.http_api.test_browser import wait_js
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto

# The controller's section in the layout both the old and the [site] config read (vehicle is a
# [[site.loadpoints]] key there, split off from this entry).
CONTROLLER = """
[surplus-controller]
grid_meter = "house-sim/house-meter"
state_file = "{state}"
status_interval_s = 5
[[surplus-controller.loadpoints]]
id = "garage"
charger = "house-sim/house-wallbox"
vehicle = "house-sim/house-car"
"""
CARD = "document.getElementById('lp-garage-{}')?.textContent || ''"


@pytest.fixture
def car_at_the_loadpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """The house fixture (conftest) with this controller config: requested before `house`."""
    monkeypatch.setattr(conftest, "CONTROLLER", CONTROLLER)


async def test_the_card_shows_the_soc_and_sets_a_plan(broker: Mosquitto, car_at_the_loadpoint: None, house: Any,
                                                      tmp_path: Path, http_api: Callable[..., HttpApi]) -> None:
    api = http_api()  # the browser is on 127.0.0.1, a trusted network: no token needed
    await until(lambda: api.call("GET", "/api/v1/loadpoints/garage")[0] == 200, 30, "loadpoint from the controller")
    car = await started_bus(broker, "house-sim", instance="car")
    watcher = await started_bus(broker, "influx-writer", instance="plan-ui")
    states: list[m.LoadpointState] = []
    watcher.subscribe(topics.loadpoint_state("garage"), m.LoadpointState, lambda msg: states.append(msg.payload))
    browser = Browser(tmp_path / "chromium-profile")
    try:
        # The REST door first: half a target is refused naming the field, another site's page is refused.
        status, doc, _ = api.call("PUT", "/api/v1/loadpoints/garage/plan", {"soc_pct": 80})
        assert status == 400 and doc["where"] == "$.time" and "together" in doc["error"], doc
        status, doc, _ = api.call("PUT", "/api/v1/loadpoints/garage/plan", {"soc_pct": 80, "time": "7:00"})
        assert status == 400 and doc["where"] == "$.time", doc

        await browser.connect()
        await browser.send("Page.enable")
        await browser.send("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2,
                           mobile=True)
        await browser.send("Page.navigate", url=api.url + "/ui/")
        # The car's telematics report 40 % of 60 kWh (sent until the controller has it: it keeps the last).
        for _ in range(60):
            car.publish(topics.device_reading("house-sim", "house-car"), m.VehicleReading(
                device_id="house-car", timestamp=m.utc_now(), soc_pct=40.0, capacity_wh=60_000.0))
            if any(s.vehicle_soc_pct == 40.0 for s in states):
                break
            await asyncio.sleep(0.5)
        assert any(s.vehicle_soc_pct == 40.0 for s in states), "the controller's state without the car's SoC"
        await wait_js(browser, f"{CARD.format('vehicle')} === 'house-car · 40 %'", "the card shows the SoC")
        # ... and the device list shows the car with its SoC, as its meta says it is a vehicle (not
        # stale by age: a car reports on change)
        car.publish(topics.device_meta("house-sim", "house-car"), m.DeviceMeta(
            device_id="house-car", kind="vehicle", source="house-sim", protocol="simulated", name="house car"))
        await wait_js(browser, "document.querySelector('#devices li[data-ref=\"house-sim/house-car\"] "
                               "[data-field=soc_pct]')?.textContent === '40 %'", "the device list shows the SoC")
        assert await browser.eval(f"{CARD.format('plan')} === ''")  # no plan yet: no plan row

        # A target 80 % by two hours from now: 26.7 kWh at 11 kW do not fit with the margin, so the
        # plan charges from the grid at once; the card says so.
        by = (datetime.now() + timedelta(hours=2)).strftime("%H:%M")
        await browser.eval("document.getElementById('lp-garage-plan-edit').open = true")
        await browser.eval(f"document.getElementById('lp-garage-plan-soc').value = '80';"
                           f"document.getElementById('lp-garage-plan-time').value = '{by}';"
                           f"document.getElementById('lp-garage-set-plan').click()")
        await until(lambda: bool(states) and states[-1].plan_soc_pct == 80, 20, "the plan on the bus")
        assert states[-1].plan_time == by.replace(":", "") and states[-1].plan_active, states[-1]
        wanted = f"80 % by {by} – charging from the grid from"
        await wait_js(browser, f"{CARD.format('plan')}.startsWith('{wanted}')", "the card shows the plan")
        # the REST answer and the state on the SSE stream race each other: wait for the answer itself
        await wait_js(browser, "!!document.getElementById('command-status').dataset.result", "the REST answer")
        assert await browser.eval("document.getElementById('command-status').dataset.result") == "ok", \
            await browser.eval("document.getElementById('command-status').textContent")
        assert await browser.eval("document.documentElement.scrollWidth") <= 390  # no sideways scroll
        shot = await browser.screenshot(tmp_path / "loadpoint-plan-phone.png")
        assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20000

        # Half a target is refused next to the field, before anything is sent (one evaluation: the card
        # is rebuilt with each summary).
        problem = await browser.eval("document.getElementById('lp-garage-plan-time').value = '';"
                                     "document.getElementById('lp-garage-set-plan').click();"
                                     "document.getElementById('lp-garage-plan-problem').textContent")
        assert problem == "give the time to reach it"

        await browser.send("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1,
                           mobile=False)
        await browser.screenshot(tmp_path / "loadpoint-plan-desktop.png")
        # Clearing the plan from the card: the controller forgets it, the plan row goes.
        await browser.eval("document.getElementById('lp-garage-clear-plan').click()")
        await until(lambda: states[-1].plan_soc_pct is None and states[-1].plan_status is None, 20, "plan cleared")
        await wait_js(browser, f"{CARD.format('plan')} === ''", "the card without a plan")
    finally:
        await browser.close()
        await watcher.stop()
        await car.stop()
