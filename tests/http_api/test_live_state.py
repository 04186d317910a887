"""Honest live state, end to end: the real http-api and sml-reader processes on a broker of the
test's own, the page in headless chromium. A silent bridge, a stopped broker and a meter port that
never opens each show as not live with the reason within seconds; the page recovers within seconds
of the cause going away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus

from tests.http_api.browser import Browser
from tests.http_api.conftest import MODULE, HttpApi
from tests.http_api.test_browser import wait_js
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto, free_port, wait_port

MISSING_PORT = "/dev/ttyWATTBUS-not-there"
GRID, PV = "house-sim/grid-meter", "house-sim/roof-pv"
PILL = "document.getElementById('connection')?.dataset.state"
# Every animated flow path: none may move while the page is not live.
MOVING = ("[...document.querySelectorAll('#flow .links path.active')]"
          ".filter((p) => getComputedStyle(p).animationName !== 'none').length")


class House:
    """A grid meter and an inverter publishing every 0.3 s, like a bridge; pausable."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.paused = False
        for device_id, kind in (("grid-meter", "meter"), ("roof-pv", "inverter")):
            bus.publish(topics.device_meta("house-sim", device_id),
                        m.DeviceMeta(device_id=device_id, kind=kind, source="house-sim", protocol="simulated",
                                     name=device_id), retain=True)
        self.task = asyncio.create_task(self.run())

    def status(self, errors: list[m.DeviceError]) -> None:
        """The heartbeat a bridge sends, with the devices it cannot read."""
        self.bus.publish(topics.service_status("house-sim", "t"), m.ServiceStatus(
            service="house-sim", instance="t", version="test", started_at=datetime.now(UTC), uptime_s=1.0,
            devices=2, device_errors=errors), retain=True)

    async def run(self) -> None:
        while True:
            if not self.paused:
                now = datetime.now(UTC)
                self.bus.publish(topics.device_reading("house-sim", "grid-meter"),
                                 m.MeterReading(device_id="grid-meter", timestamp=now, power_w=-1200.0), qos=0)
                self.bus.publish(topics.device_reading("house-sim", "roof-pv"),
                                 m.InverterReading(device_id="roof-pv", timestamp=now, power_w=3400.0), qos=0)
            await asyncio.sleep(0.3)


@pytest.fixture
def live_stack(private_broker: Mosquitto, tmp_path: Path, start_service: Any) -> Callable[[int], HttpApi]:
    """The http-api (on the given port, 0: a free one) and, on first use, an sml-reader whose only
    meter's port does not exist, all on the private broker."""
    config = tmp_path / "http-api.toml"

    def start(port: int = 0) -> HttpApi:
        if not config.exists():
            sml = tmp_path / "sml.toml"
            sml.write_text(f'[sml-reader]\nstatus_interval_s = 30\n[[sml-reader.meters]]\nkey = "cellar"\n'
                           f'port = "{MISSING_PORT}"\n')
            start_service("wattbus_sml_reader", "--config", str(sml), env=private_broker.env("sml-reader"))
        port = port or free_port()
        config.write_text(f'[http-api]\nports = [{port}]\ntrusted_networks = ["127.0.0.1/32"]\n'
                          f'[site]\ngrid = "{GRID}"\npv = ["{PV}"]\n')
        proc = start_service(MODULE, "--config", str(config), env=private_broker.env("http-api"))
        wait_port(port, 30)
        return HttpApi(port, proc)

    return start


async def test_not_live_with_the_reason_and_back(private_broker: Mosquitto,
                                                 live_stack: Callable[[int], HttpApi], tmp_path: Path) -> None:
    api = live_stack(0)
    # Roles set in the config whose devices never appeared: not live, and it says which.
    await until(lambda: f"{GRID} is configured but not on the bus" in " ".join(
        api.call("GET", "/api/v1/site")[1]["live"]["reasons"]), 10, "the missing grid meter named")
    bus = await started_bus(private_broker, "house-sim")
    house = House(bus)
    browser = Browser(tmp_path / "chromium-profile")
    try:
        await until(lambda: api.call("GET", "/api/v1/site")[1]["live"]["state"] == "live", 20, "live over the API")
        await browser.connect()
        await browser.send("Page.enable")
        await browser.send("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1,
                           mobile=False)
        await browser.send("Page.navigate", url=api.url + "/ui/")
        await wait_js(browser, f"{PILL} === 'live'", "the page live")
        await wait_js(browser, f"{MOVING} >= 2", "the grid and PV flows moving")

        # A configured meter whose port never opened: its reason over the API and in the device list.
        def missing() -> dict[str, Any] | None:
            return next((d for d in api.call("GET", "/api/v1/devices")[1] if d["error"]), None)
        await until(lambda: missing() is not None, 20, "the failing meter in /api/v1/devices")
        failing = missing()
        assert failing is not None and failing["ref"] == f"sml-reader/@{MISSING_PORT}"
        assert failing["error"]["error"].startswith(f"cannot open {MISSING_PORT}: ")
        assert failing["error"]["name"] == "cellar" and failing["online"] is False
        await wait_js(browser, "[...document.querySelectorAll('#devices li[data-status=error]')]"
                               f".some((li) => li.textContent.includes('cannot open {MISSING_PORT}'))",
                      "the failing meter with its reason in the page")
        await wait_js(browser, f"document.getElementById('live-banner').textContent.includes('{MISSING_PORT}')",
                      "the failing meter named in the banner")
        await browser.screenshot(tmp_path / "live-with-failing-meter.png")

        # The bridge goes silent (no readings, the broker still up): stale with the reason, no flow moving.
        house.paused = True
        started = time.monotonic()
        await wait_js(browser, f"{PILL} === 'stale'", "stale after the bridge went silent", timeout=10)
        silent_after = time.monotonic() - started
        banner = await browser.eval("document.getElementById('live-banner').textContent")
        assert "silent: no reading from grid-meter" in banner, banner
        await wait_js(browser, f"{MOVING} === 0", "no flow moving while stale", timeout=3)
        # Its bridge says why (ServiceStatus.device_errors): the reason replaces "silent" on the page.
        house.status([m.DeviceError(device_id="grid-meter", error="tcp://192.0.2.10:502/1: no answer",
                                    since=datetime.now(UTC))])
        await wait_js(browser, "document.querySelector('#devices li[data-ref=\"house-sim/grid-meter\"]')"
                               "?.dataset.status === 'error'", "the grid meter's error in the device list", timeout=5)
        banner = await browser.eval("document.getElementById('live-banner').textContent")
        assert "grid: grid-meter: tcp://192.0.2.10:502/1: no answer (since " in banner, banner
        house.paused = False
        house.status([])
        await wait_js(browser, f"{PILL} === 'live'", "live again once readings come", timeout=5)

        # The broker stops: the page says so within seconds, and stops the flow.
        private_broker.stop()
        started = time.monotonic()
        await wait_js(browser, f"{PILL} === 'offline'", "offline after the broker stopped", timeout=5)
        offline_after = time.monotonic() - started
        banner = await browser.eval("document.getElementById('live-banner').textContent")
        assert f"no connection to the broker at 127.0.0.1:{private_broker.port}" in banner, banner
        assert await browser.eval(MOVING) == 0
        assert await browser.eval("document.querySelectorAll('#devices li[data-status=online]').length") == 0
        status, site, _ = api.call("GET", "/api/v1/site")
        assert status == 200 and site["live"]["state"] == "offline"
        await browser.screenshot(tmp_path / "broker-down.png")
        await browser.send("Emulation.setDeviceMetricsOverride", width=420, height=900, deviceScaleFactor=2,
                           mobile=True)
        await browser.screenshot(tmp_path / "broker-down-phone.png")
        width = await browser.eval("document.documentElement.scrollWidth")
        assert width <= 420, f"the banner makes the page scroll sideways on a phone ({width} px)"

        # Back: live within seconds (the http-api's reconnect backoff is capped at 2 s).
        private_broker.start()
        started = time.monotonic()
        await wait_js(browser, f"{PILL} === 'live'", "live after the broker came back", timeout=10)
        recovered_after = time.monotonic() - started
        await wait_js(browser, f"{MOVING} >= 2", "flows moving again", timeout=3)

        # The gateway itself goes away: the open page says so at once, and is live again after a restart.
        api.proc.stop()
        await wait_js(browser, f"{PILL} === 'lost'", "no connection after the http-api stopped", timeout=5)
        assert await browser.eval(MOVING) == 0
        started = time.monotonic()
        live_stack(api.port)
        await wait_js(browser, f"{PILL} === 'live'", "live after the http-api restarted", timeout=15)
        restarted_after = time.monotonic() - started
        print(f"stale {silent_after:.1f} s after the bridge went silent, offline {offline_after:.1f} s after "
              f"the broker stopped, live {recovered_after:.1f} s after it returned and {restarted_after:.1f} s "
              "after the http-api was started again")
    finally:
        house.task.cancel()
        await browser.close()
        await bus.stop()
    log = (tmp_path / "wattbus_sml_reader-0.log").read_text()
    assert f"cannot open {MISSING_PORT}: " in log and "connection lost" not in log, log[-2000:]
