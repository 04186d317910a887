"""The setup wizard in headless chromium, first run to a loadpoint the controller runs.

The simulated house plus five more meters (four sub meters and a water meter) on the real broker:
a person tells six meters apart by the live value beside each, picks the grid meter by what the
utility meter shows, sets the wallbox up with typed inputs (a refusal beside its field) and saves;
the surplus-controller, idle since the start ("not configured", under `wattbus run-many`), picks
the loadpoint up. Screenshots at desktop width and at 420 px land in the test's tmp dir."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Message
from wattbus.settings import ConfigFile

from tests.http_api.browser import Browser
from tests.http_api.conftest import HttpApi
from tests.http_api.test_browser import wait_js
from tests.http_api.test_setup import broker, house_file, wait_devices  # noqa: F401  (fixtures)
from tests.http_api.test_setup_browser import wait_through_navigation
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto, free_port

GRID = "house-sim/house-meter"
OFFSETS_W = (-1600.0, -800.0, 800.0, 1600.0)  # sub meters around the grid value: only the grid matches
# The page's power of one choice, in W: "1.39 kW export" -> -1390 (what the wizard shows, parsed back).
POWER_OF = """(node) => { const t = node.querySelector('.live').textContent;
  const f = t.match(/(-?[0-9.]+) (kW|W) (import|export)/); if (!f) return null;
  return Number(f[1]) * (f[2] === 'kW' ? 1000 : 1) * (f[3] === 'export' ? -1 : 1); }"""


async def phone(browser: Browser, width: int) -> None:
    await browser.send("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1,
                       mobile=width < 600)


async def shoot(browser: Browser, path: Path, width: int) -> None:
    await phone(browser, width)
    await asyncio.sleep(0.2)  # one layout pass at the new width
    await browser.screenshot(path)
    scroll = await browser.eval("document.documentElement.scrollWidth")
    assert scroll <= width, f"{path.name}: the page scrolls sideways at {width} px ({scroll} px)"


async def test_wizard_first_run_to_a_running_loadpoint(house_file: tuple[Path, HttpApi], broker: Mosquitto,  # noqa: F811
                                                        start_service: Any, tmp_path: Path) -> None:
    path, api = house_file
    by_hand = ConfigFile(path)  # an empty controller section, but its state file in the test's dir
    by_hand.set_value("surplus-controller", "state_file", str(tmp_path / "controller.json"))
    by_hand.set_value("surplus-controller", "status_interval_s", 1)
    by_hand.save()
    admin = await started_bus(broker, "test-admin", instance="wizard-steps")
    grid_w: list[float] = []
    controller: dict[str, Any] = {}

    def on_grid(msg: Message[m.ReadingBase]) -> None:
        if isinstance(msg.payload, m.MeterReading) and msg.payload.power_w is not None:
            grid_w.append(msg.payload.power_w)

    def on_status(msg: Message[m.ServiceStatus]) -> None:
        controller["errors"] = [e.error for e in msg.payload.device_errors]

    def on_loadpoint(msg: Message[m.LoadpointState]) -> None:
        controller["loadpoint"] = msg.payload

    admin.subscribe(topics.device_reading("house-sim", "house-meter"), m.Reading, on_grid)
    admin.subscribe(topics.service_status("surplus-controller", "main"), m.ServiceStatus, on_status)
    admin.subscribe(topics.loadpoint_state("garage"), m.LoadpointState, on_loadpoint)
    subs = [f"sub-{i}" for i in range(len(OFFSETS_W))]
    for device_id in (*subs, "water"):
        admin.publish(topics.device_meta("sml-reader", device_id), m.DeviceMeta(
            device_id=device_id, kind="meter", source="sml-reader", protocol="sml", manufacturer="EMH",
            model="eHZ" if device_id != "water" else "MWZ"), retain=True)
    await until(lambda: bool(grid_w), 30, "a grid reading from the house simulator")

    async def feed() -> None:  # the sub meters follow the grid at fixed distances, as real ones would not
        while True:
            for device_id, offset in zip(subs, OFFSETS_W, strict=True):
                admin.publish(topics.device_reading("sml-reader", device_id), m.MeterReading(
                    device_id=device_id, timestamp=m.utc_now(), power_w=grid_w[-1] + offset))
            admin.publish(topics.device_reading("sml-reader", "water"), m.MeterReading(
                device_id="water", timestamp=m.utc_now(), water_m3=123.456))
            await asyncio.sleep(1)

    feeder = asyncio.create_task(feed())
    disco = await started_bus(broker, "discovery", instance="wizard-steps")
    known = m.DeviceAnnouncement(device_id="sub-0", protocol="shelly", address="127.0.0.1", port=free_port(),
                                 kind="meter")  # already on the bus: no "adopt" for it
    new = m.DeviceAnnouncement(device_id="shelly-plug-77", protocol="shelly", address="127.0.0.1",
                               port=free_port(), kind="relay")
    for ann in (known, new):
        disco.publish(topics.discovery(ann.device_id), ann, retain=True)
    # The controller in the one-process profile, started on the first-run file: it stays up idle.
    controller_proc = start_service(
        "wattbus.cli", "run-many", "surplus-controller", "--config", str(path),
        "--secrets-dir", str(broker.files.secrets_dir),
        env={"WATTBUS_BUS_HOST": "127.0.0.1", "WATTBUS_BUS_PORT": str(broker.port), "WATTBUS_BUS_RECONNECT_MAX_S": "2"})
    browser = Browser(tmp_path / "chromium-profile")
    try:
        await until(lambda: any("not configured" in e for e in controller.get("errors", [])), 30,
                    "the idle controller saying it is not configured")
        await wait_devices(api, GRID, "house-sim/house-wallbox", *(f"sml-reader/{s}" for s in subs), "sml-reader/water")
        await browser.connect()
        await browser.send("Page.enable")
        await phone(browser, 1280)
        await browser.send("Page.navigate", url=api.url + "/ui/")
        await wait_through_navigation(
            browser, "location.pathname === '/ui/setup' && document.body?.dataset.firstRun === '1'"
                     " && document.body.dataset.step === 'find'", "the wizard on first run")
        found = "document.querySelector('[data-found=\"{}\"]')"
        # The page looks again every few seconds: the announcements show up without a reload.
        await wait_js(browser, f"!!{found.format(new.device_id)} && !!{found.format(known.device_id)}",
                      "both announced devices listed", 30)
        assert await browser.eval(f"!!{found.format(new.device_id)}.querySelector('[data-action=adopt]')")
        assert await browser.eval(f"{found.format(known.device_id)}.querySelector('[data-action=adopt]')") is None
        assert await browser.eval(f"{found.format(known.device_id)}.dataset.state") == "adopted"

        await browser.eval("document.querySelector('[data-step=find] [data-go=identify]').click()")
        meters = "[...document.querySelectorAll('#identify-list .dev[data-kind=meter]')]"
        await wait_js(browser, f"{meters}.length === 6 && {meters}.every((n) => /W|m³/.test(n.textContent))",
                      "six meters, each with a live value")
        assert "123.456 m³ water" in await browser.eval("document.getElementById('identify-list').textContent")
        await shoot(browser, tmp_path / "wizard-identify-desktop.png", 1280)

        await browser.eval("document.querySelector('[data-step=identify] [data-go=roles]').click()")
        choices = "[...document.querySelectorAll('#roles-grid .choice')]"
        await wait_js(browser, f"{choices}.length === 5", "five grid meter candidates (not the water meter)")
        # The person compares with the utility meter's display (here: the simulator's latest value).
        target = grid_w[-1]
        picked = await browser.eval(f"""(() => {{ const power = {POWER_OF};
            const near = {choices}.filter((n) => power(n) !== null)
              .sort((a, b) => Math.abs(power(a) - {target}) - Math.abs(power(b) - {target}))[0];
            near.querySelector('input').click(); return near.dataset.ref; }})()""")
        assert picked == GRID, f"the live values did not single out the grid meter ({target} W): {picked}"
        await browser.eval("document.querySelector('#roles-pv input[value=\"house-sim/house-pv\"]').click()")
        await shoot(browser, tmp_path / "wizard-roles-420.png", 420)
        await browser.eval("document.getElementById('roles-save').click()")
        await wait_js(browser, "document.body.dataset.step === 'loadpoint'"
                               " && !!document.querySelector('#lp-fields [name=mode]')", "the loadpoint step", 30)

        # Typed inputs: enums are selects, currents numbers with the contract's bounds, labels in words.
        kinds = await browser.eval("""(() => { const f = (k) => document.querySelector(`#lp-fields [name=${k}]`);
            const label = document.querySelector('label[for=' + f('min_current_a').id + ']').textContent;
            return [f('mode').tagName, f('phases').tagName, f('min_current_a').type, f('min_current_a').min,
                    f('max_current_a').max, label]; })()""")
        assert kinds == ["SELECT", "SELECT", "number", "6", "32", "Minimum current (A)"], kinds
        page = await browser.eval("document.body.innerText")
        assert "min current a" not in page and "min_current_a" not in page

        async def fill(**values: Any) -> None:
            for key, value in values.items():
                field = f"document.querySelector('#lp-fields [name={key}]')"
                await browser.eval(f"{field}.value = {json.dumps(str(value))}")

        await fill(loadpoint_id="garage", mode="now", min_current_a=5, max_current_a=16, phases=3)
        await browser.eval("document.getElementById('lp-save').click()")
        error = "document.querySelector('#lp-fields .error[data-for=min_current_a]').textContent"
        await wait_js(browser, f"{error} !== ''", "the refusal next to the minimum current", 30)
        assert ">= 6" in await browser.eval(error)
        await shoot(browser, tmp_path / "wizard-loadpoint-refusal-420.png", 420)
        await phone(browser, 1280)
        await fill(min_current_a=6)
        await browser.eval("document.getElementById('lp-save').click()")
        await wait_js(browser, "document.body.dataset.step === 'done'", "the done step", 30)
        summary = await browser.eval("document.getElementById('summary').textContent")
        assert GRID in summary and "garage: house-sim/house-wallbox" in summary and "house-sim/house-pv" in summary

        # The idle controller was told (reload_config), restarted in place and runs the loadpoint:
        # the done step says so once the controller publishes it.
        await wait_js(browser, "document.getElementById('done-controller').dataset.state === 'running'",
                      "the done step showing the controller running the loadpoint", 40)
        assert "garage" in await browser.eval("document.getElementById('done-controller').textContent")
        await shoot(browser, tmp_path / "wizard-done-420.png", 420)
        await shoot(browser, tmp_path / "wizard-done-desktop.png", 1280)
        await until(lambda: "loadpoint" in controller, 40, "the controller publishing the garage loadpoint")
        state: m.LoadpointState = controller["loadpoint"]
        assert state.mode == "now" and state.charger_id == "house-wallbox", state
        await until(lambda: not controller.get("errors"), 20, "the controller no longer 'not configured'")
        assert controller_proc.proc.poll() is None, controller_proc.output()[-2000:]
        await browser.send("Page.navigate", url=api.url + "/ui/")
        await wait_through_navigation(browser, "!!document.getElementById('lp-garage')", "the live view's loadpoint")
        assert await browser.eval("location.pathname") == "/ui/"  # not a first run any more
    finally:
        feeder.cancel()
        await browser.close()
        for ann in (known, new):
            disco.publish(topics.discovery(ann.device_id), b"", retain=True)
        for device_id in (*subs, "water"):
            admin.publish(topics.device_meta("sml-reader", device_id), b"", retain=True)
        await disco.stop()
        await admin.stop()
