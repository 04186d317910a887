"""Fleet mode: a central influx-writer reads the bridged `sites/<site_id>/wattbus/v1/...` topics
on a central Mosquitto with the shipped central ACL (mosquitto/acl.central) and stores every
reading with a `site` tag, into VictoriaMetrics through the v2 API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus
from wattbus.config import ConfigError
from wattbus.embedded import write_broker
from wattbus_influx_writer import lineproto
from wattbus_influx_writer.config import Config

from tests.influx_writer.helpers import (
    BASE_TIME,
    PUBLISHER,
    StatusWatch,
    decode,
    meter_readings,
    recorded_readings,
    victoria_count,
    write_config,
    writer_env,
)
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import ROOT, TEST_ADMIN, Mosquitto, VictoriaMetrics

MODULE = "wattbus_influx_writer"
SITES = ("a", "b")  # central broker users named like the site ids, as the bridges log in
ADMIN_ACL = f"\nuser {TEST_ADMIN}\ntopic readwrite #\ntopic readwrite $SYS/#\n"
PER_SITE = 1500


@pytest.fixture
def central(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto with the project's ACL plus the shipped central ACL and one user per site."""
    broker = Mosquitto(tmp_path / "central")
    broker.files = write_broker(ROOT, tmp_path / "central", broker.port, anonymous=False,
                                extra_users=(TEST_ADMIN, *SITES),
                                extra_acl=ADMIN_ACL + "\n" + (ROOT / "mosquitto" / "acl.central").read_text(),
                                persistence=False)
    broker.start()
    yield broker
    broker.stop()


def publish_site(bus: Bus, site: str, readings: list[m.MeterReading]) -> None:
    for reading in readings:
        assert bus.publish(topics.in_site(site, topics.device_reading(PUBLISHER, reading.device_id)), reading)


async def test_readings_of_two_sites_are_stored_with_site_tags(
        central: Mosquitto, victoria: VictoriaMetrics, tmp_path: Path, start_service: Callable[..., Any]) -> None:
    watch = StatusWatch(only={"central-1"})
    admin = await started_bus(central, TEST_ADMIN, "watch-sites")
    watch.attach(admin)
    conf = write_config(tmp_path, "central", url=victoria.url, api="v2", bucket="fleet", org="installer",
                        instance="central-1", batch_size=500,
                        subscriptions=[topics.in_site("+", topics.ALL_READINGS)])
    writer = start_service(MODULE, "--config", str(conf), env=writer_env(central))
    buses = {site: await started_bus(central, site, "bridge") for site in SITES}
    # The broker drops what is published before the writer subscribed: warm up until it receives.
    i = 0
    while watch.counter("received", "central-1") == 0:
        assert i < 200, "the central writer received nothing"
        warm = m.MeterReading(device_id="warmup-sites", timestamp=BASE_TIME - timedelta(seconds=i), power_w=1.0)
        publish_site(buses["a"], "a", [warm])
        i += 1
        await asyncio.sleep(0.3)
        assert writer.proc.poll() is None, writer.output()
    # The same device id at both sites (a reused demo serial): two series, told apart by the tag.
    for site in SITES:
        publish_site(buses[site], site, meter_readings(PER_SITE, "meter-fleet"))

    def stored(site: str) -> int:
        return victoria_count(victoria, "meter_power_w", device_id="meter-fleet", site=site)

    await until(lambda: all(stored(site) >= PER_SITE for site in SITES), 90, f"{PER_SITE} samples of each site")
    for site in SITES:
        assert victoria_count(victoria, "meter_power_w", device_id="meter-fleet", site=site) == PER_SITE
        assert victoria_count(victoria, "meter_power_w", device_id="meter-fleet", site=site,
                              source=PUBLISHER, kind="meter") == PER_SITE
    # Warm-up readings published before the subscription existed were dropped by the broker, so
    # the writer's own count is at least both sites' readings plus the first warm-up that arrived.
    await until(lambda: watch.counter("written") == watch.counter("received") >= 2 * PER_SITE + 1, 30,
                "the writer reports every reading written")
    assert watch.counter("dead_lettered") == 0 and watch.counter("payload_rejected") == 0
    # A site id no bridge can have (MQTT allows spaces in a level): dead-lettered, named, counted.
    bad_topic = "sites/bad site/" + topics.device_reading(PUBLISHER, "meter-fleet")
    assert admin.publish(bad_topic, meter_readings(1, "meter-fleet")[0])
    await until(lambda: watch.counter("payload_rejected") == 1, 30, "the bad site topic rejected")
    dead = (tmp_path / "central" / "dead-letter.jsonl").read_text()
    assert "invalid site id 'bad site'" in dead and bad_topic in dead, dead
    assert writer.proc.poll() is None, writer.output()
    for bus in (*buses.values(), admin):
        await bus.stop()
    assert writer.stop() == 0, writer.output()



@pytest.mark.parametrize(("name", "payload"), recorded_readings())
def test_recorded_readings_carry_the_site_tag(name: str, payload: bytes) -> None:
    reading = decode(payload)
    encoder = lineproto.LineEncoder()
    plain = encoder.encode(reading, "sunspec-bridge")
    at_a = encoder.encode(reading, "sunspec-bridge", site="a")
    at_b = encoder.encode(reading, "sunspec-bridge", site="b")
    assert len(plain) == len(at_a) == len(at_b) > 0, name
    for line_plain, line_a, line_b in zip(plain, at_a, at_b, strict=True):
        series_plain, series_a, series_b = (line.split(" ", 1)[0] for line in (line_plain, line_a, line_b))
        assert ",site=" not in series_plain
        assert ",site=a" in series_a and ",site=b" in series_b, name
        # Only the tag differs: fields and timestamp are the same point.
        assert series_a.replace(",site=a", "") == series_plain == series_b.replace(",site=b", "")
        assert line_a.split(" ", 1)[1] == line_plain.split(" ", 1)[1] == line_b.split(" ", 1)[1]
    # The cache did not hand site a's series to site b (or the plain one to either).
    assert encoder.encode(reading, "sunspec-bridge", site="a") == at_a
    assert encoder.encode(reading, "sunspec-bridge") == plain


def test_config_accepts_site_filters() -> None:
    every = topics.in_site("+", topics.ALL_READINGS)
    one = topics.in_site("site-0042", topics.ALL_READINGS)
    cfg = Config(subscriptions=[every, one, topics.ALL_READINGS], share_group="central")
    assert cfg.subscription_list() == [f"$share/central/{every}", f"$share/central/{one}",
                                       f"$share/central/{topics.ALL_READINGS}"]


@pytest.mark.parametrize(("sub", "reason"), [
    ("sites/+/#", "is not a wattbus/v1/ filter"),
    ("sites/#", "invalid site id"),
    ("sites/a b/wattbus/v1/device/+/+/reading", "invalid site id"),
    ("sites/+/to-site/wattbus/v1/device/+/+/command", "is not a wattbus/v1/ filter"),
    ("$share/g/sites/+/wattbus/v1/device/+/+/reading", "share_group"),
    ("homeassistant/#", "is not a wattbus/v1/ filter"),
])
def test_config_rejects_other_filters(sub: str, reason: str) -> None:
    with pytest.raises(ConfigError, match="subscriptions") as info:
        Config(subscriptions=[sub])
    assert reason in str(info.value) and sub in str(info.value)
