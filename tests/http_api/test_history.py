"""History and charging sessions end to end: the real http-api process on a broker of the test's
own, fed with readings and loadpoint states as the bridges and the surplus controller publish them.
The day's energy and the sessions survive a restart of the http-api; the sessions CSV carries the
session with the energy published and the PV share computed from the flows at the time; the page
in headless chromium shows the labelled history, the sessions and the loadpoint card."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus
from wattbus_http_api.history_api import period

from tests.http_api.browser import Browser
from tests.http_api.conftest import MODULE, HttpApi
from tests.http_api.test_browser import wait_js
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto, free_port, wait_port

SRC = "house-sim"
PRICE, FEED_IN = 0.30, 0.08
CONFIG = """[http-api]
ports = [{port}]
trusted_networks = ["127.0.0.1/32"]
history_file = "{history}"
grid_price_per_kwh = {price}
feed_in_per_kwh = {feed_in}
[site]
grid = "house-sim/meter"
pv = ["house-sim/pv"]
battery = ["house-sim/battery"]
chargers = ["house-sim/wallbox"]
"""


class Feed:
    """A house whose powers the test sets; PV sends a lifetime counter, as inverters do."""

    def __init__(self, house: Bus, controller: Bus) -> None:
        self.house, self.controller = house, controller
        self.pv, self.grid, self.ev = 0.0, 0.0, 0.0
        self.pv_total = 1_000_000.0
        self.lp: m.LoadpointState | None = None
        self.published: list[m.LoadpointState] = []
        # per round: the readings' time, PV, grid and charger power, whether the car's state followed
        self.sent: list[tuple[float, float, float, float, bool]] = []
        for device_id, kind in (("meter", "meter"), ("pv", "inverter"), ("battery", "battery"),
                                ("wallbox", "charger")):
            house.publish(topics.device_meta(SRC, device_id), m.DeviceMeta(
                device_id=device_id, kind=kind, source=SRC, protocol="simulated", name=device_id), retain=True)
        self.task = asyncio.create_task(self.run())

    async def run(self) -> None:
        last = time.monotonic()
        while True:
            now, at = time.monotonic(), datetime.now(UTC)
            self.pv_total += self.pv * (now - last) / 3600.0
            last = now
            for device_id, reading in (
                    ("meter", m.MeterReading(device_id="meter", timestamp=at, power_w=self.grid)),
                    ("pv", m.InverterReading(device_id="pv", timestamp=at, power_w=self.pv,
                                             energy_total_wh=round(self.pv_total, 3))),
                    ("battery", m.BatteryReading(device_id="battery", timestamp=at, power_w=0.0, soc_pct=50.0)),
                    ("wallbox", m.ChargerReading(device_id="wallbox", timestamp=at, power_w=self.ev))):
                self.house.publish(topics.device_reading(SRC, device_id), reading, qos=0)
            if self.lp is not None:
                self.controller.publish(topics.loadpoint_state("garage"), self.lp, retain=True)
                self.published.append(self.lp)
            self.sent.append((at.timestamp(), self.pv, self.grid, self.ev,
                              self.lp is not None and self.lp.status != "no_vehicle"))
            await asyncio.sleep(0.2)


def plugged(energy_wh: float, duration_s: float, power: float, **extra: Any) -> m.LoadpointState:
    return m.LoadpointState(loadpoint_id="garage", mode="pv", charger_id="wallbox", charging=power > 0,
                            set_current_a=8.7, phases=1, power_w=power, surplus_w=None, min_current_a=6.0,
                            max_current_a=16.0, session_energy_wh=energy_wh, session_duration_s=duration_s,
                            status="charging_from_surplus", reason="surplus 2.0 kW", **extra)


def start_api(broker: Mosquitto, tmp_path: Path, start_service: Any, port: int) -> HttpApi:
    config = tmp_path / "http-api.toml"
    config.write_text(CONFIG.format(port=port, history=tmp_path / "state" / "history.sqlite3", price=PRICE,
                                    feed_in=FEED_IN))
    proc = start_service(MODULE, "--config", str(config), env=broker.env("http-api"))
    wait_port(port, 30)
    return HttpApi(port, proc)


def readings_share(feed: Feed) -> float:
    """The session's PV share from the readings sent: the charger's power by the trapezoid rule
    between its readings, each step at the site's mix of its later reading (PV / (PV + import), the
    battery idle), counted from the round after the car's first state up to the one that said it left."""
    ev_wh = pv_wh = 0.0
    for (t0, _, _, ev0, _), (t1, pv, grid, ev1, _), plugged_before in zip(
            feed.sent, feed.sent[1:], (r[4] for r in feed.sent), strict=False):
        if plugged_before:
            wh = (ev0 + ev1) / 2 * (t1 - t0) / 3600.0
            ev_wh += wh
            pv_wh += wh * max(pv, 0.0) / (max(pv, 0.0) + max(grid, 0.0))
    return pv_wh / ev_wh


async def phase(feed: Feed, seconds: float, pv: float, grid: float, ev: float, energy: list[float]) -> float:
    """Hold these powers for `seconds`, the session counter counting; returns the time held."""
    feed.pv, feed.grid, feed.ev = pv, grid, ev
    started = time.monotonic()
    while (held := time.monotonic() - started) < seconds:
        energy[0] += ev * 0.1 / 3600.0
        feed.lp = plugged(round(energy[0], 2), 600 + held, ev)
        await asyncio.sleep(0.1)
    return time.monotonic() - started


def totals(api: HttpApi) -> dict[str, float]:
    status, doc, _ = api.call("GET", "/api/v1/history?range=day")
    assert status == 200, doc
    assert doc["persistent"] is True and doc["problem"] is None, doc["problem"]
    result: dict[str, float] = doc["totals_wh"]
    return result


async def test_history_sessions_and_page(private_broker: Mosquitto, tmp_path: Path, start_service: Any) -> None:
    api = start_api(private_broker, tmp_path, start_service, free_port())
    house = await started_bus(private_broker, SRC)
    controller = await started_bus(private_broker, "surplus-controller")
    feed = Feed(house, controller)
    browser = Browser(tmp_path / "chromium-profile")
    try:
        await until(lambda: api.call("GET", "/api/v1/site")[1]["flow"]["home_w"] is not None, 15, "the flow")
        # A car charging at 2 kW: 4 s from PV only (1 kW exported), 4 s with PV 1 kW and 1.5 kW import.
        energy = [0.0]
        t_pv = await phase(feed, 4, pv=4000, grid=-1000, ev=2000, energy=energy)
        t_mix = await phase(feed, 4, pv=1000, grid=1500, ev=2000, energy=energy)
        feed.ev, feed.grid = 0.0, -500.0
        feed.lp = m.LoadpointState(loadpoint_id="garage", mode="pv", charger_id="wallbox", status="no_vehicle",
                                   reason="no car")
        # the charger's count in the last state published with the car
        published_wh = [s.session_energy_wh for s in feed.published if s.session_energy_wh is not None][-1]

        def finished() -> list[dict[str, str]]:
            text = api.call("GET", "/api/v1/sessions.csv")[1]
            return [row for row in csv.DictReader(io.StringIO(text)) if row["end"]]
        await until(lambda: bool(finished()), 10, "the session closed in the CSV")
        (row,) = finished()
        # The share the flows published give (all PV in the first phase, 1 kW of 2.5 kW in the second),
        # and the one the readings give by their own timestamps, as the history integrates them.
        expected_share = (t_pv * 1.0 + t_mix * 0.4) / (t_pv + t_mix)
        from_readings = readings_share(feed)
        share = float(row["pv_share"])
        assert row["loadpoint_id"] == "garage" and row["energy_source"] == "charger"
        assert abs(float(row["energy_wh"]) - published_wh) <= 0.05, (row, published_wh)
        assert abs(share - from_readings) < 0.005, (share, from_readings, expected_share)
        assert abs(share - expected_share) < 0.04, (share, expected_share)
        kwh = published_wh / 1000
        assert abs(float(row["cost"]) - (kwh * (1 - share) * PRICE + kwh * share * FEED_IN)) < 1e-3
        assert abs(float(row["duration_s"]) - (600 + t_pv + t_mix)) < 3

        day = totals(api)
        expected_pv = (4000 * t_pv + 1000 * t_mix) / 3600
        assert abs(day["pv_wh"] - expected_pv) / expected_pv < 0.2, (day["pv_wh"], expected_pv)
        assert abs(day["grid_import_wh"] - 1500 * t_mix / 3600) < 1.5, day
        assert day["ev_wh"] > 3.5 and day["home_wh"] > 1.0, day
        status, doc, _ = api.call("GET", "/api/v1/history?range=day")
        assert len(doc["labels"]) in (92, 96, 100) and doc["labels"][48] in ("11:00", "12:00", "13:00")
        assert any(v and v >= 900 for v in doc["curve"]["pv_w"]), doc["curve"]
        for kind in ("week", "month", "year"):
            status, other, _ = api.call("GET", f"/api/v1/history?range={kind}&date={doc['date']}")
            assert status == 200 and abs(sum(other["series"]["pv_wh"]) - other["totals_wh"]["pv_wh"]) < 0.5
            assert other["totals_wh"]["pv_wh"] >= day["pv_wh"] - 0.5, (kind, other["totals_wh"])
        status, bad, _ = api.call("GET", "/api/v1/history?range=decade")
        assert status == 400 and bad["where"] == "query.range"
        status, bad, _ = api.call("GET", "/api/v1/history?date=06.12.2026")
        assert status == 400 and bad["where"] == "query.date" and "06.12.2026" in bad["error"]

        # Restart while the sun shines (3.6 kW: 1 Wh a second): what was recorded is still there, and
        # what the PV counter counted while the http-api was down is credited when it is back.
        feed.pv = 3600.0
        await asyncio.sleep(1.0)
        before = totals(api)
        down_at = time.monotonic()
        api.proc.stop()
        await asyncio.sleep(3.0)  # an update's worth of downtime
        api = start_api(private_broker, tmp_path, start_service, api.port)
        down_s = time.monotonic() - down_at
        await until(lambda: totals(api)["pv_wh"] - before["pv_wh"] >= 0.9 * down_s, 10, "the downtime's PV")
        after, elapsed = totals(api), time.monotonic() - down_at
        print(f"PV today {before['pv_wh']:.2f} Wh before the restart, {after['pv_wh']:.2f} Wh after "
              f"({down_s:.1f} s down, {elapsed:.1f} s at 1 Wh/s); session {published_wh} Wh, "
              f"PV share {share:.4f} (readings: {from_readings:.4f}, published flows: {expected_share:.4f})")
        assert after["pv_wh"] - before["pv_wh"] <= elapsed + 0.5, (before, after)
        assert after["grid_import_wh"] >= before["grid_import_wh"] - 0.01 and after["ev_wh"] >= day["ev_wh"] - 0.01
        assert len(finished()) == 1

        # A new car: the loadpoint card shows its session, current, limits and why.
        feed.pv, feed.grid, feed.ev = 5000.0, -1500.0, 3000.0
        feed.lp = plugged(1234.0, 3700.0, 3000.0)
        await until(lambda: any(s["active"] and s["pv_share"] == 1.0 for s in api.call("GET", "/api/v1/sessions")[1]),
                    10, "the new session charging from PV")
        await page(browser, api, tmp_path, share)
    finally:
        feed.task.cancel()
        await browser.close()
        await house.stop()
        await controller.stop()


async def page(browser: Browser, api: HttpApi, out: Path, share: float) -> None:
    """The history, sessions and loadpoint card on a desktop and a 420 px screen."""
    await browser.connect()
    await browser.send("Page.enable")
    for width, name in ((1280, "history-desktop.png"), (420, "history-phone.png")):
        await browser.send("Emulation.setDeviceMetricsOverride", width=width, height=1800, deviceScaleFactor=1,
                           mobile=width < 500)
        await browser.send("Page.navigate", url=api.url + "/ui/")
        await wait_js(browser, "document.getElementById('lp-garage-session')?.textContent.includes('1.23 kWh')",
                      "the session energy on the loadpoint card")
        card = await browser.eval("document.getElementById('lp-garage').innerText")
        for text in ("1 h 01 min", "1 phase", "8.7 A", "6–16 A", "charging from surplus", "surplus 2.0 kW"):
            assert text in card, (text, card)
        await wait_js(browser, "document.querySelectorAll('#history-chart .axis text').length >= 4",
                      "labelled history axis")
        labels = await browser.eval("[...document.querySelectorAll('#history-chart .axis text')]"
                                    ".map((t) => t.textContent)")
        assert "06:00" in labels and "12:00" in labels and any("kWh" in t or "Wh" in t for t in labels), labels
        assert await browser.eval("document.querySelectorAll('#power-curve path.pv').length") == 1
        # no InfluxDB configured: the page says the local store answered
        assert await browser.eval("document.getElementById('history-source').textContent") == "from the local store"
        await wait_js(browser, "document.querySelectorAll('#sessions tbody tr').length === 2", "two sessions listed")
        rows = await browser.eval("[...document.querySelectorAll('#sessions tbody tr')].map((r) => r.innerText)")
        assert "(charging)" in rows[1] and "1.23 kWh" in rows[1] and "100 %" in rows[1], rows
        assert f"{round(share * 100)} %" in rows[0], (share, rows)
        # A week: one labelled bar per day.
        await browser.eval("document.querySelector('button[data-range=week]').click()")
        await wait_js(browser, "document.getElementById('history-chart').dataset.range === 'week'", "the week view")
        assert await browser.eval("document.querySelectorAll('#history-chart .axis text.x').length") == 7
        await browser.eval("document.querySelector('button[data-range=day]').click()")
        await wait_js(browser, "document.getElementById('history-chart').dataset.range === 'day'", "the day again")
        await browser.screenshot(out / name)
        scroll = await browser.eval("document.documentElement.scrollWidth")
        assert scroll <= width, f"the page scrolls sideways at {width} px ({scroll} px)"


def test_periods_cut_at_local_boundaries() -> None:
    """Weeks start on Monday, months have their own length, a year has twelve month buckets."""
    first, end, starts = period("week", date(2026, 12, 6))  # a Sunday
    assert (first, end, len(starts)) == (date(2026, 11, 30), date(2026, 12, 7), 7)
    first, end, starts = period("month", date(2028, 2, 10))
    assert (first, end, len(starts)) == (date(2028, 2, 1), date(2028, 3, 1), 29)
    first, end, starts = period("year", date(2026, 6, 1))
    assert (first, end, starts[-1]) == (date(2026, 1, 1), date(2027, 1, 1), date(2026, 12, 1))


def test_unusable_history_file_keeps_the_service_up(broker: Mosquitto, tmp_path: Path,
                                                    http_api: Callable[..., HttpApi]) -> None:
    """A history_file that cannot be opened (here a directory): the API says so, the page keeps working.
    With a token set and no trusted network, history and sessions stay open reads; writes do not."""
    blocked = tmp_path / "not-a-file"
    blocked.mkdir()
    api = http_api(f'history_file = "{blocked}"\ntoken = "s3cret-history"\ntrusted_networks = []')
    status, doc, _ = api.call("GET", "/api/v1/history?range=week")
    assert status == 200 and doc["persistent"] is False, doc
    assert f"history_file = '{blocked}' cannot be used" in doc["problem"], doc["problem"]
    assert api.call("GET", "/api/v1/sessions.csv")[1].startswith("id,loadpoint_id,")  # in memory, still answered
    assert "history not kept on disk" in api.proc.output()
    status, refused, _ = api.call("PUT", "/api/v1/loadpoints/garage/limits", {"max_current_a": 10})
    assert status == 401 and refused["where"] == "header.Authorization", refused
