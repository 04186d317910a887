"""MeterHub face: the flat document from recorded house readings, stale/offline nulls, POST values."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Message

from tests.http_api.conftest import DATA, HttpApi, load_readings
from tests.support.bus_helpers import started_bus, subscriptions_active, until
from tests.support.servers import Mosquitto


async def publish_site(broker: Mosquitto, user: str = "house-sim") -> Any:
    bus = await started_bus(broker, user, instance="rec")
    for topic, payload in load_readings("house_site.jsonl"):
        retained = topic.endswith(("/meta", "/availability"))
        bus.publish(topic, payload.decode() if topic.endswith("/availability") else payload, retain=retained)
    return bus


async def doc_when(api: HttpApi, predicate: Callable[[dict[str, Any]], bool], what: str,
                   timeout: float = 20) -> dict[str, Any]:
    box: dict[str, Any] = {}

    def check() -> bool:
        box["doc"] = api.call("GET", "/")[1]
        return predicate(box["doc"])
    await until(check, timeout, what)
    doc: dict[str, Any] = box["doc"]
    return doc


async def test_document_has_meterhub_keys_and_values(broker: Mosquitto, http_api: Callable[..., HttpApi]) -> None:
    api = http_api("stale_after_s = 3\n")
    bus = await publish_site(broker)
    try:
        doc = await doc_when(api, lambda d: d.get("grid_p") is not None and d.get("car_state") is not None,
                             "the site in the MeterHub document")
        example = json.loads((DATA / "meterhub_example.json").read_text())
        assert set(example) <= set(doc), set(example) - set(doc)
        for key, value in example.items():  # same JSON types as MeterHub sends
            assert type(doc[key]) is type(value), (key, doc[key], value)
        assert doc["grid_imp_eto"] == 3985744 and doc["grid_exp_eto"] == 18804181
        assert doc["grid_p"] == -2108 and doc["pv1_p"] == 5230 and doc["pv_p"] == 5230
        assert doc["pv1_eto"] == 16152530 and doc["car_eto"] == 735688
        assert (doc["car_p"], doc["car_amp"], doc["car_phase"], doc["car_state"]) == (1410, 6, 1, "charging")
        assert doc["bat_soc"] == 85 and doc["bat_p"] == -1200
        assert doc["home_p"] == 513  # 5230.4 - 2107.6 - 1200 - 1410
        assert doc["pv2_p"] is None  # a role with no device is missing, not 0

        # The battery goes offline: its values are null at once, and so is home (it needs the battery).
        bus.publish(topics.device_availability("house-sim", "house-battery"), m.OFFLINE, retain=True)
        doc = await doc_when(api, lambda d: d["bat_soc"] is None, "offline battery as null")
        assert doc["bat_p"] is None and doc["home_p"] is None and doc["grid_p"] == -2108
        # No more readings: after stale_after_s everything is null, never the last value.
        doc = await doc_when(api, lambda d: d["grid_p"] is None, "stale values as null")
        assert doc["car_state"] is None and doc["pv1_eto"] is None and isinstance(doc["time"], str)
    finally:
        await bus.stop()


async def test_mapping_is_configurable(broker: Mosquitto, http_api: Callable[..., HttpApi]) -> None:
    config = """
[http-api.meterhub]
grid_p = { source = "house-sim/house-meter", field = "frequency_hz", digits = 2 }
pv_kw = { source = "pv", field = "power_w", scale = 0.001, digits = 1 }
home_p = { source = "" }
"""
    api = http_api(config)
    bus = await publish_site(broker)
    try:
        doc = await doc_when(api, lambda d: d.get("pv_kw") is not None, "the configured keys")
        assert doc["grid_p"] == 50.01 and doc["pv_kw"] == 5.2 and "home_p" not in doc
    finally:
        await bus.stop()


async def test_posted_values_appear_expire_and_reach_the_bus(broker: Mosquitto,
                                                             http_api: Callable[..., HttpApi]) -> None:
    api = http_api("[http-api.publish]\next_soc = 2.0\nwater_vto = 600\n")
    watcher = await started_bus(broker, "influx-writer", instance="watch")
    seen: list[m.GatewayReading] = []

    def on_reading(msg: Message[m.Reading]) -> None:
        if isinstance(msg.payload, m.GatewayReading):
            seen.append(msg.payload)
    watcher.subscribe(f"{topics.PREFIX}/device/http-api/+/reading", m.Reading, on_reading)
    await subscriptions_active(watcher)  # the POST's reading is published once, not retained
    try:
        status, doc, headers = api.call("POST", "/", {"ext_soc": 85, "water_vto": 1130154, "secret": 1})
        assert status == 200 and doc["ext_soc"] == 85 and doc["water_vto"] == 1130154  # POST answers the document
        assert "secret" not in doc and headers["X-Wattbus-Ignored"] == "secret"
        await until(lambda: any(r.extra.get("ext_soc") == 85 for r in seen), 10, "posted value on the bus")
        # ext_soc expires after 2 s: null in the document, gone from the bus reading; water_vto stays.
        doc = await doc_when(api, lambda d: d["ext_soc"] is None, "expired value as null", 15)
        assert doc["water_vto"] == 1130154
        await until(lambda: "ext_soc" not in seen[-1].extra and seen[-1].extra.get("water_vto") == 1130154, 10,
                    "expiry on the bus")

        for bad, where in (([1, 2], "body"), ({"ext_soc": {"nested": 1}}, "$.ext_soc")):
            status, err, _ = api.call("POST", "/", bad)
            assert status == 400 and err["where"] == where, err
        status, err, _ = api.call("POST", "/", raw=b"{not json")
        assert status == 400 and "not JSON" in err["error"]
        status, err, _ = api.call("POST", "/", raw=b"x" * 70000)
        assert status == 413
        counters = api.call("GET", "/api/v1/status")[1]["counters"]
        assert counters["http_rejected"] >= 4 and counters["values_ignored"] == 1
    finally:
        await watcher.stop()
        await asyncio.sleep(0)
