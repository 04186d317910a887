"""The writer path with InfluxDB stopped for ~10 s mid-stream (the short variant; `make reliability`
runs the long one, minutes of outage plus a SIGKILLed writer, in reliability/scenarios).

Real parts: Debian's influxd 1.x of the test's own (it gets stopped), the real broker with the
real ACL, the influx-writer as a subprocess. Expected: every reading published before, during and
after the outage is in InfluxDB afterwards, compared exactly (loss = 0, no duplicates).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.influx_writer.helpers import (
    StatusWatch,
    influx_count,
    meter_readings,
    publish,
    warm_up,
    write_config,
    writer_env,
)
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import InfluxDB1, Mosquitto


async def test_influx_down_briefly_loses_nothing(broker: Mosquitto, start_service: Callable[..., Any],
                                                 tmp_path: Path,
                                                 record_property: Callable[[str, object], None]) -> None:
    outage_s = float(os.environ.get("WATTBUS_SHORT_OUTAGE_S", "10"))
    rate = 20  # readings per second, a busy house
    (tmp_path / "influx").mkdir()
    server = InfluxDB1(tmp_path / "influx")
    server.start()
    conf = write_config(tmp_path, "w", url=server.url, api="v1", database="short", create_database=True,
                        instance="short", batch_size=100, timeout_s=2)
    watch = StatusWatch()
    admin = await started_bus(broker, "test-admin", "short-watch")
    watch.attach(admin)
    writer = start_service("wattbus_influx_writer", "--config", str(conf), env=writer_env(broker))
    pub = await started_bus(broker, "house-sim", "short")
    sent = 0

    async def stream(seconds: float) -> None:
        nonlocal sent
        for _ in range(int(seconds)):
            publish(pub, meter_readings(rate, "meter-short", start=sent))
            sent += rate
            await asyncio.sleep(1)

    try:
        await warm_up(pub, watch, "short")
        await stream(2)
        await until(lambda: influx_count(server, "short", "meter-short") > 0, 30, "first points stored")
        server.stop()  # mid-stream: the writer's batches now fail and go to its spool
        await stream(outage_s)
        assert writer.proc.poll() is None, writer.output()[-2000:]
        server.start()
        await stream(2)
        await until(lambda: influx_count(server, "short", "meter-short") >= sent, 120, f"{sent} points in InfluxDB")
        stored = influx_count(server, "short", "meter-short")
        record_property("published", sent)
        record_property("stored", stored)
        record_property("outage_s", outage_s)
        assert stored == sent, f"published {sent}, stored {stored}"
        assert writer.proc.poll() is None, "the writer survived the outage"
    finally:
        await pub.stop()
        await admin.stop()
        writer.stop()
        server.stop()
