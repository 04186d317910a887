"""Issue 28 on the setup page, in headless chromium: an AI-on-the-edge water meter added through the
form the generic-bridge announces (its shipped description as a template). A variable that is not a
plain word is refused beside its field, a number sequence the meter does not have is the bridge's
refusal beside the host, the right one shows the first values before anything is saved; saved, it is
a `[[generic-bridge.devices]]` entry and the restarted bridge puts the meter on the bus.

Real broker (the project's ACL), the AI-on-the-edge simulator, the http-api and the generic-bridge
(in `wattbus run-many`, which restarts it on its new section as supervisord would)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from tests.http_api.browser import Browser
from tests.http_api.conftest import HttpApi
from tests.http_api.test_browser import wait_js
from tests.http_api.test_setup import broker  # noqa: F401  (the module's broker fixture)
from tests.http_api.test_setup_browser import fill_manual, offered
from tests.http_api.test_setup_probe import start_api
from tests.support.servers import Mosquitto, SimulatorProcess

FORM = "generic:ai-on-the-edge"
ERROR = "document.querySelector('#manual .error[data-for={}]').textContent"


def start_with_generic_bridge(tmp_path: Path, start_service: Any, broker: Mosquitto) -> tuple[Path, HttpApi]:  # noqa: F811
    """An http-api and a generic-bridge under `wattbus run-many` (restarted on its new section, as
    supervisord would) on one fresh config file."""
    path, api = start_api(tmp_path, start_service, broker, "[generic-bridge]\nstatus_interval_s = 1\n",
                          reload_timeout_s=5)
    start_service("wattbus.cli", "run-many", "generic-bridge", "--config", str(path),
                  "--secrets-dir", str(broker.files.secrets_dir),
                  env={"WATTBUS_BUS_HOST": "127.0.0.1", "WATTBUS_BUS_PORT": str(broker.port),
                       "WATTBUS_BUS_RECONNECT_MAX_S": "2"})
    return path, api


async def test_a_generic_device_shows_its_first_values_before_it_is_saved(tmp_path: Path, start_service: Any,
                                                                          broker: Mosquitto) -> None:  # noqa: F811
    water = SimulatorProcess(tmp_path / "water.log", "generic_http", "--device", "ai-on-the-edge")
    path, api = start_with_generic_bridge(tmp_path, start_service, broker)
    browser = Browser(tmp_path / "chromium-profile")
    try:
        await browser.connect()
        await browser.send("Page.enable")
        await browser.send("Emulation.setDeviceMetricsOverride", width=390, height=1400, deviceScaleFactor=1,
                           mobile=True)
        await browser.send("Page.navigate", url=api.url + "/ui/setup/advanced")
        await offered(browser, FORM)
        await fill_manual(browser, FORM)
        names = await browser.eval("[...document.querySelectorAll('#manual-fields .field')]"
                                   ".map((f) => f.dataset.field)")
        assert names == ["id", "host", "port", "number", "unit", "username", "password"], names
        assert await browser.eval("document.querySelector('#manual-fields [name=password]').type") == "password"
        assert await browser.eval("document.querySelector('#manual-fields [name=number]').placeholder") == "main"

        # A variable lands in the device's URL or selector: only a plain word is taken (refused by the page's API).
        await fill_manual(browser, FORM, id="water", host="127.0.0.1", port=water.port, number="../admin?x=")
        await browser.eval("document.getElementById('manual-check').click()")
        await wait_js(browser, f"{ERROR.format('number')} !== ''", "the refusal beside the number sequence")
        assert "does not fit" in await browser.eval(ERROR.format("number"))
        # A sequence this meter does not have: the bridge read it and says what did not match.
        await fill_manual(browser, FORM, number="wasser")
        await browser.eval("document.getElementById('manual-check').click()")
        await wait_js(browser, f"{ERROR.format('host')} !== ''", "the bridge's refusal beside the host", 30)
        refusal = await browser.eval(ERROR.format("host"))
        assert "generic-bridge could not read" in refusal and "$.wasser.value" in refusal, refusal

        # The right one: the first values, before anything is saved.
        await fill_manual(browser, FORM, number="main")
        await browser.eval("document.getElementById('manual-check').click()")
        await wait_js(browser, "!!document.querySelector('#manual-values [data-probed=water] [data-key=water_m3]')",
                      "the water meter's first values next to the form", 30)
        shown = await browser.eval("document.querySelector('#manual-values [data-key=water_m3]').textContent")
        assert float(shown.split(":")[1]) > 1000, shown  # the simulator's meter counts from 1130 m³
        assert "devices" not in tomllib.loads(path.read_text())["generic-bridge"]  # nothing saved yet
        await browser.eval("document.getElementById('manual-values').scrollIntoView({block: 'end'})")
        await browser.screenshot(tmp_path / "generic-first-values.png")

        await browser.eval("document.querySelector('#manual [data-result]').dataset.result = '';"
                           "document.getElementById('manual-add').click()")
        await wait_js(browser, "document.querySelector('#manual [data-result]').dataset.result === 'ok'",
                      "the water meter saved", 30)
        assert tomllib.loads(path.read_text())["generic-bridge"]["devices"] == [
            {"id": "water", "template": "ai-on-the-edge", "host": "127.0.0.1", "port": water.port,
             "vars": {"number": "main", "unit": "m3"}}]
        # The bridge restarts on its new section: the meter is on the bus, with its volume, on the page.
        device = "document.querySelector('#bus-devices .dev[data-ref=\"generic-bridge/water\"]')"
        await wait_js(browser, f"/m³ water/.test({device}?.textContent || '')", "the water meter listed", 40)
        await browser.eval(f"{device}.scrollIntoView()")
        await browser.screenshot(tmp_path / "generic-added.png")
    finally:
        await browser.close()
        water.stop()
