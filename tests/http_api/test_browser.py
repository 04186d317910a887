"""The web UI in headless chromium on a phone-sized screen: live flow, screenshot, mode switch, current range."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wattbus import messages as m
from wattbus import topics

from tests.http_api.browser import Browser
from tests.http_api.conftest import HttpApi
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto


async def wait_js(browser: Browser, expression: str, what: str, timeout: float = 20) -> None:
    """until() for a condition inside the page (evaluating it is itself async)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await browser.eval(expression):
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.1)


async def test_live_page_screenshot_and_mode_switch(broker: Mosquitto, house: Any, tmp_path: Path,
                                                    http_api: Callable[..., HttpApi]) -> None:
    api = http_api()  # the browser is on 127.0.0.1, a trusted network: no token needed
    await until(lambda: api.call("GET", "/api/v1/loadpoints/garage")[0] == 200, 30, "loadpoint from the controller")
    watcher = await started_bus(broker, "influx-writer", instance="ui")
    states: list[m.LoadpointState] = []
    watcher.subscribe(topics.loadpoint_state("garage"), m.LoadpointState,
                      lambda msg: states.append(msg.payload))
    browser = Browser(tmp_path / "chromium-profile")
    try:
        await browser.connect()
        await browser.send("Page.enable")
        await browser.send("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2,
                           mobile=True)
        await browser.send("Page.navigate", url=api.url + "/ui/")
        await wait_js(browser, "document.getElementById('connection')?.dataset.state === 'live'", "live connection")
        await wait_js(browser, "document.getElementById('pv-w').textContent.endsWith('W')", "PV power shown")
        await wait_js(browser, "!!document.querySelector('button[data-lp=garage][data-mode=now]')", "mode buttons")
        await wait_js(browser, "document.querySelectorAll('#devices li[data-status=online]').length >= 5",
                      "online devices listed")
        # Live: the page keeps receiving the house's readings (one a second) without a reload.
        first = int(await browser.eval("document.body.dataset.version"))
        await wait_js(browser, f"Number(document.body.dataset.version) > {first}", "a live update")
        shot = await browser.screenshot(tmp_path / "ui.png")
        assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20000  # a real rendered page, not a blank one
        width = await browser.eval("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone ({width} px)"

        # Switch the mode by clicking, as a person would: the controller's state on the bus follows.
        await browser.eval("document.querySelector('button[data-lp=garage][data-mode=now]').click()")
        await until(lambda: bool(states) and states[-1].mode == "now", 20, "controller mode now on the bus")
        await wait_js(browser, "document.getElementById('lp-garage-mode').dataset.mode === 'now'", "UI shows now")
        # the REST answer and the state on the SSE stream race each other: wait for the answer itself
        await wait_js(browser, "!!document.getElementById('command-status').dataset.result", "the REST answer")
        assert await browser.eval("document.getElementById('command-status').dataset.result") == "ok", \
            await browser.eval("document.getElementById('command-status').textContent")
        await browser.screenshot(tmp_path / "ui-now.png")

        # The current range from the card's editor: the controller takes it, the card shows it.
        await browser.eval("document.querySelector('#lp-garage details.limits-edit').open = true")
        await browser.eval("document.getElementById('lp-garage-min-input').value = '7';"
                           "document.getElementById('lp-garage-max-input').value = '12';"
                           "document.getElementById('lp-garage-set-limits').click()")
        await until(lambda: bool(states) and (states[-1].min_current_a, states[-1].max_current_a) == (7, 12), 20,
                    "controller range 7-12 A on the bus")
        await wait_js(browser, "document.getElementById('lp-garage-limits').textContent === '7–12 A'",
                      "the card shows 7–12 A")
        # A range the controller cannot take is refused next to the field, before anything is sent.
        # (one evaluation: the card is rebuilt with each summary)
        problem = await browser.eval("document.getElementById('lp-garage-min-input').value = '14';"
                                     "document.getElementById('lp-garage-set-limits').click();"
                                     "document.getElementById('lp-garage-limits-problem').textContent")
        assert problem == "min above max"
    finally:
        await browser.close()
        await watcher.stop()
