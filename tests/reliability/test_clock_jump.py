"""A wall clock stepped by +1 h and -1 h under running services (libfaketime, see clock.py).

Expected: intervals and staleness run on the monotonic clock, so the bridge keeps polling and
publishing, stamps readings with the new wall time, the writer stores them under that time, the
surplus controller neither takes fresh grid data for stale after +1 h nor misses a silent meter
after -1 h (with staleness on wall time its age would be negative for an hour).
"""

from __future__ import annotations

import asyncio
import functools
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Message
from wattbus_sim.house import House
from wattbus_sim.house_bus import HouseBus

from tests.influx_writer.helpers import influxql, write_config, writer_env
from tests.reliability.clock import SteppedClock
from tests.reliability.goe_rig import SOURCE, bridge_config, chargers
from tests.support.bus_helpers import started_bus, until
from tests.support.house_site import HOUSE_SITE
from tests.support.servers import InfluxDB1, Mosquitto

HOUR = timedelta(hours=1)
SKEW = timedelta(minutes=2)  # tolerance between a stamp and the test's idea of the service clock


def _grew(items: list[datetime], wanted: int) -> bool:
    return len(items) >= wanted


def _stored(count: Callable[[datetime, datetime], int], start: datetime, end: datetime, wanted: int) -> bool:
    return count(start, end) >= wanted


def _near(stamp: datetime, expected: datetime) -> bool:
    return abs(stamp - expected) < SKEW


async def test_bridge_and_writer_follow_a_stepped_wall_clock(broker: Mosquitto, influxdb: InfluxDB1,
                                                             start_service: Callable[..., Any],
                                                             tmp_path: Path) -> None:
    clock = SteppedClock(tmp_path)
    sims = await chargers(1)
    dev = sims[0].device_id
    stamps: list[datetime] = []
    admin = await started_bus(broker, "test-admin", "clock")

    def on_reading(msg: Message[m.Reading]) -> None:
        stamps.append(msg.payload.timestamp)

    admin.subscribe(topics.device_reading(SOURCE, dev), m.Reading, on_reading)
    # Created here, so counting before the writer's first batch reads 0 instead of "database not found".
    create = urllib.request.Request(f"{influxdb.url}/query?q=CREATE+DATABASE+clockjump", method="POST")
    urllib.request.urlopen(create, timeout=10).close()
    conf = write_config(tmp_path, "clock", url=influxdb.url, api="v1", database="clockjump", create_database=True,
                        instance="clock")
    writer = start_service("wattbus_influx_writer", "--config", str(conf), env={**writer_env(broker), **clock.env()})
    bridge = start_service("wattbus_goe_shelly_bridge", "--config", str(bridge_config(tmp_path, sims)),
                           env={**broker.env(SOURCE), **clock.env()})

    def stored_between(start: datetime, end: datetime) -> int:
        query = (f"SELECT count(\"power_w\") FROM \"charger\" WHERE device_id = '{dev}' "
                 f"AND time >= '{start.isoformat()}' AND time <= '{end.isoformat()}'")
        try:
            rows = influxql(influxdb, query, "clockjump")
        except OSError:
            return -1
        return int(rows[0][1]) if rows else 0

    try:
        await until(lambda: len(stamps) >= 3, 30, "readings before the step")
        # The writer subscribes when it starts; what was published before that is not its to store.
        await until(lambda: stored_between(stamps[0] - HOUR, stamps[-1] + HOUR) > 0, 60, "the writer storing")
        for offset in (HOUR, -HOUR):
            clock.step(offset)
            seen = len(stamps)
            # The poll loop goes on (it sleeps on the monotonic clock) ...
            await until(functools.partial(_grew, stamps, seen + 5), 30,
                        f"readings after stepping the clock by {offset}")
            after = [s for s in stamps[seen:] if _near(s, clock.service_now())]
            # ... and stamps what it reads with the new wall time.
            assert len(after) >= 3, (offset, stamps[seen:])
            first, last, count = min(after), max(after), len(after)
            await until(functools.partial(_stored, stored_between, first, last, count), 60,
                        f"the writer stored the readings stamped {first}..{last}")
        assert bridge.proc.poll() is None and writer.proc.poll() is None
    finally:
        await admin.stop()
        await sims[0].stop()


async def test_controller_staleness_ignores_wall_clock_steps(broker: Mosquitto, start_service: Callable[..., Any],
                                                             tmp_path: Path) -> None:
    clock = SteppedClock(tmp_path)
    config = tmp_path / "controller.toml"
    config.write_text(HOUSE_SITE + f"""
[surplus-controller]
clock = "wall"
state_file = "{tmp_path}/state.json"
command_replies = "result_topic"
status_interval_s = 5
stale_after_s = 3
stale_action = "stop"
[surplus-controller.tuning.garage]
enable_delay_s = 10
""")
    controller = start_service("wattbus_surplus_controller", "--config", str(config),
                               env={**broker.env("surplus-controller"), **clock.env()})
    sim_bus = await started_bus(broker, "house-sim", "clock")
    watcher = await started_bus(broker, "influx-writer", "clock")
    states: list[m.LoadpointState] = []
    watcher.subscribe(topics.loadpoint_state("garage"), m.LoadpointState, lambda msg: states.append(msg.payload))
    house = House.from_profile("clear", "11:00", with_heater=False)
    adapter = HouseBus(house, sim_bus, meter_interval_s=1, speed=4)
    adapter.start()
    runner = asyncio.create_task(adapter.run(house.time_s + 3600))
    try:
        await until(lambda: house.charger.enabled, 60, "charging from the sun")
        clock.step(HOUR)
        mark = len(states)
        # Fresh readings keep arriving: for stale_after_s and more, no alert and still charging.
        await until(lambda: len(states) >= mark + 8 and (states[-1].timestamp - states[mark].timestamp) > timedelta(
            seconds=6), 40, "states for 6 s after the step")
        assert all(s.alert is None for s in states[mark:]), [s.alert for s in states[mark:] if s.alert]
        assert house.charger.enabled
        assert _near(states[-1].timestamp, clock.service_now()), "states stamped with the new wall time"

        clock.step(-HOUR)
        adapter.meter_dropout = True  # the meter goes silent right after the step back
        mark = len(states)
        await until(lambda: any(s.alert is not None for s in states[mark:]), 30,
                    "stale alert within stale_after_s although the wall clock went back an hour")
        assert "silent" in (next(s.alert for s in states[mark:] if s.alert) or "")
        await until(lambda: not house.charger.enabled, 10, "safe state: stopped")
        assert _near(states[-1].timestamp, clock.service_now())
        adapter.meter_dropout = False
        await until(lambda: states[-1].alert is None, 20, "alert cleared when the meter is back")
        assert controller.proc.poll() is None
    finally:
        runner.cancel()
        await watcher.stop()
        await sim_bus.stop()
