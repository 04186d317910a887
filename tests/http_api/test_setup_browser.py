"""The first-run wizard in headless chromium on the simulated house: from an empty config file to a
charging loadpoint, with the refusals (5 A minimum, a second grid meter, an unreachable address)
shown next to their field. The broker and house fixtures are the ones of test_setup.py."""

from __future__ import annotations

import asyncio
import json
import tomllib
from pathlib import Path
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.settings import ConfigFile

from tests.http_api.browser import Browser
from tests.http_api.conftest import HttpApi
from tests.http_api.test_browser import wait_js
from tests.http_api.test_setup import broker, house_file, wait_devices  # noqa: F401  (fixtures)
from tests.http_api.test_setup_probe import wait_online
from tests.support.bus_helpers import started_bus
from tests.support.servers import Mosquitto, SimulatorProcess, free_port


async def wait_through_navigation(browser: Browser, expression: str, what: str, timeout: float = 20) -> None:
    """wait_js across a page change (the first-run redirect): an evaluation the navigation cut is retried."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await wait_js(browser, expression, what, max(0.1, deadline - loop.time()))
            return
        except AssertionError as exc:
            if "navigated or closed" not in str(exc) or loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)


def row(ref: str) -> str:
    return f"document.querySelector('.dev[data-ref=\"{ref}\"]')"


async def set_fields(browser: Browser, ref: str, **values: Any) -> None:
    """Type into one device row as a person would: set each field and fire its change event."""
    for name, value in values.items():
        await browser.eval(f"(() => {{ const f = {row(ref)}.querySelector('[name={name}]'); "
                           f"f.value = {json.dumps(str(value))}; f.dispatchEvent(new Event('change')); }})()")


async def save_row(browser: Browser, ref: str) -> None:
    await browser.eval(f"{row(ref)}.querySelector('[data-result]').dataset.result = ''")
    await browser.eval(f"{row(ref)}.querySelector('button[data-save]').click()")
    await wait_js(browser, f"!!{row(ref)}.querySelector('[data-result]').dataset.result", f"{ref} answered", 30)


async def error_next_to(browser: Browser, ref: str, field: str) -> str:
    await wait_js(browser, f"{row(ref)}?.querySelector('.error[data-for={field}]')?.textContent !== ''",
                  f"error next to {field}")
    text: str = await browser.eval(f"{row(ref)}.querySelector('.error[data-for={field}]').textContent")
    return text


async def offered(browser: Browser, form: str) -> None:
    """Until the page offers this form: the page lists the forms the http-api held when load() ran."""
    await wait_js(browser, "document.body?.dataset.loaded >= 1", "the setup page loaded")
    for _ in range(60):
        await browser.eval("load()")
        if await browser.eval(f"!!document.querySelector('#manual-protocol option[value=\"{form}\"]')"):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"the {form} form is not offered")


async def fill_manual(browser: Browser, form: str, **values: Any) -> None:
    """Choose the form (its inputs appear) and type into them as a person would."""
    await browser.eval(f"(() => {{ const s = document.getElementById('manual-protocol'); if (s.value !== "
                       f"{json.dumps(form)}) {{ s.value = {json.dumps(form)}; s.dispatchEvent(new Event('change')); }}"
                       "})()")
    for name, value in values.items():
        await browser.eval(f"document.querySelector('#manual-fields [name={name}]').value = {json.dumps(str(value))}")


async def test_wizard_from_nothing_to_a_charging_loadpoint(house_file: tuple[Path, HttpApi], broker: Mosquitto,  # noqa: F811
                                                           start_service: Any, tmp_path: Path) -> None:
    path, api = house_file
    admin = await started_bus(broker, "test-admin", instance="wizard")
    admin.publish(topics.device_meta("sml-reader", "emh-sub"), m.DeviceMeta(
        device_id="emh-sub", kind="meter", source="sml-reader", protocol="sml", serial="sub"), retain=True)
    await wait_devices(api, "house-sim/house-meter", "house-sim/house-wallbox", "sml-reader/emh-sub")
    browser = Browser(tmp_path / "chromium-profile")
    try:
        await browser.connect()
        await browser.send("Page.enable")
        await browser.send("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2,
                           mobile=True)
        await browser.send("Page.navigate", url=api.url + "/ui/")
        # First run: the live view hands over to the setup wizard; this test works on the advanced page.
        await wait_through_navigation(
            browser, "location.pathname === '/ui/setup' && document.body?.dataset.firstRun === '1'",
                      "the setup page on first run")
        await browser.send("Page.navigate", url=api.url + "/ui/setup/advanced")
        await wait_through_navigation(browser, "document.body?.dataset.firstRun === '1'", "the advanced setup page")
        await wait_js(browser, f"!!{row('house-sim/house-wallbox')}", "the wallbox listed")
        # The broker login comes from the environment here: the page says so, with the variable's name.
        overrides = await browser.eval("document.getElementById('overrides').textContent")
        assert f"[bus] port = {broker.port} from WATTBUS_BUS_PORT" in overrides, overrides
        assert "(secret)" in overrides and broker.files.password("http-api") not in overrides

        await set_fields(browser, "house-sim/house-wallbox", role="charger")
        await save_row(browser, "house-sim/house-wallbox")
        assert "grid meter first" in await error_next_to(browser, "house-sim/house-wallbox", "role")

        await set_fields(browser, "house-sim/house-meter", role="grid")
        await save_row(browser, "house-sim/house-meter")
        await wait_js(browser, f"{row('house-sim/house-meter')}?.dataset.role === 'grid'", "grid meter saved")

        await set_fields(browser, "sml-reader/emh-sub", role="grid")
        await save_row(browser, "sml-reader/emh-sub")
        assert "already the grid meter" in await error_next_to(browser, "sml-reader/emh-sub", "role")

        await set_fields(browser, "house-sim/house-wallbox", role="charger", loadpoint_id="garage", mode="now",
                         min_current_a=5)
        await save_row(browser, "house-sim/house-wallbox")
        assert ">= 6" in await error_next_to(browser, "house-sim/house-wallbox", "min_current_a")

        # A device added by hand: the running bridge offers its form, checks the address, reads it once.
        goe = SimulatorProcess(tmp_path / "goe.log", "goe", "--serial", "204711")
        start_service("wattbus_goe_shelly_bridge", "--config", str(path), env=broker.env("goe-shelly-bridge"))
        try:
            await wait_online(broker, ("goe-shelly-bridge",))
            await offered(browser, "goe")
            closed = free_port()
            await fill_manual(browser, "goe", host="127.0.0.1", port=closed)
            await browser.eval("document.getElementById('manual-add').click()")
            await wait_js(browser, "document.querySelector('#manual .error[data-for=host]').textContent !== ''",
                          "error next to host")
            assert f"cannot reach 127.0.0.1:{closed}" in await browser.eval(
                "document.querySelector('#manual .error[data-for=host]').textContent")
            await fill_manual(browser, "goe", port=goe.port)
            await browser.eval("document.getElementById('manual-check').click()")
            await wait_js(browser, "!!document.querySelector('#manual-values [data-probed=goe-204711]')",
                          "the go-e charger's values next to the form", 40)
            values = await browser.eval("document.getElementById('manual-values').textContent")
            assert "charger" in values and "set current a" in values, values
            await browser.eval("document.querySelector('#manual [data-result]').dataset.result = '';"
                               "document.getElementById('manual-add').click()")
            await wait_js(browser, "document.querySelector('#manual [data-result]').dataset.result === 'ok'",
                          "the charger added", 40)
            assert tomllib.loads(path.read_text())["goe-shelly-bridge"]["devices"] == [
                {"url": f"http://127.0.0.1:{goe.port}"}]
        finally:
            goe.stop()

        # Ignoring a discovered Shelly writes the deny entry goe-shelly-bridge honours.
        disco = await started_bus(broker, "discovery", instance="wizard")
        shelly = m.DeviceAnnouncement(device_id="shelly-plug-a1b2", protocol="shelly", address="127.0.0.1",
                                      port=free_port(), kind="relay", serial="A1B2")
        disco.publish(topics.discovery(shelly.device_id), shelly, retain=True)
        try:
            found = "document.querySelector('[data-found=\"shelly-plug-a1b2\"]')"
            # The page lists what the http-api has heard when load() runs: reload until the
            # announcement has reached it (a loaded machine may take a while).
            for _ in range(60):
                await browser.eval("load()")
                if await browser.eval(f"!!{found}"):
                    break
                await asyncio.sleep(0.5)
            await wait_js(browser, f"!!{found}", "the discovered Shelly listed", 30)
            await browser.eval(f"{found}.querySelector('button[data-action=ignore]').click()")
            await wait_js(browser, f"{found}?.dataset.state === 'ignored'", "the Shelly ignored", 30)
            assert tomllib.loads(path.read_text())["goe-shelly-bridge"]["deny"] == ["shelly-plug-a1b2"]
        finally:
            disco.publish(topics.discovery(shelly.device_id), b"", retain=True)
            await disco.stop()

        # Controller settings, each with its current value and a line on what it does. A path is not
        # settable over HTTP: the state file is written into the file by hand, the form shows it read-only.
        by_hand = ConfigFile(path)
        by_hand.set_value("surplus-controller", "state_file", str(tmp_path / "controller.json"))
        by_hand.save()
        await browser.eval("load()")
        state_file = "document.querySelector('#controller input[name=state_file]')"
        await wait_js(browser, f"{state_file}?.value === {json.dumps(str(tmp_path / 'controller.json'))}",
                      "controller form with the state file from the config file")
        assert await browser.eval(f"{state_file}.disabled") is True
        assert await browser.eval("document.querySelectorAll('#controller .help').length") >= 8
        await browser.eval("document.querySelector('#controller [name=command_replies]').value = 'result_topic';"
                           "document.getElementById('controller-save').click()")
        await wait_js(browser, "document.querySelector('#controller [data-result]').dataset.result === 'ok'",
                      "controller settings saved")

        await set_fields(browser, "house-sim/house-wallbox", role="charger", loadpoint_id="garage", mode="now",
                         min_current_a=6, max_current_a=16, breaker_a=20)
        await save_row(browser, "house-sim/house-wallbox")
        await wait_js(browser, f"{row('house-sim/house-wallbox')}?.dataset.role === 'charger'", "loadpoint saved")
        await browser.screenshot(tmp_path / "setup.png")
        width = await browser.eval("document.documentElement.scrollWidth")
        assert width <= 390, f"the setup page scrolls sideways on a phone ({width} px)"

        # The file is what a person would have written; the controller starts on it and charges.
        start_service("wattbus_surplus_controller", "--config", str(path), env=broker.env("surplus-controller"))
        await browser.send("Page.navigate", url=api.url + "/ui/")
        charging = "(document.getElementById('lp-garage')?.textContent || '')"
        await wait_through_navigation(
            browser, f"{charging}.includes('charging') && !{charging}.includes('not charging')",
                      "the garage loadpoint charging in the live view", 60)
        assert await browser.eval("location.pathname") == "/ui/"  # not first run any more
        await browser.screenshot(tmp_path / "charging.png")
    finally:
        await browser.close()
        admin.publish(topics.device_meta("sml-reader", "emh-sub"), b"", retain=True)
        await admin.stop()
