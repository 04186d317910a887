"""The writer path under compound faults: InfluxDB down for a while, and the influx-writer itself
SIGKILLed during the outage (its on-disk spool and persistent broker session must cover it).

Expected: every reading published reaches InfluxDB once it is back; loss = 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
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

MODULE = "wattbus_influx_writer"


async def test_influx_down_and_writer_killed_loses_nothing(broker: Mosquitto, start_service: Callable[..., Any],
                                                           tmp_path: Path,
                                                           record_property: Callable[[str, object], None]) -> None:
    outage_s = float(os.environ.get("WATTBUS_OUTAGE_S", "20"))
    rate = 50  # readings per second, like 50 devices at 1 Hz
    (tmp_path / "influx").mkdir()
    server = InfluxDB1(tmp_path / "influx")
    server.start()
    conf = write_config(tmp_path, "w", url=server.url, api="v1", database="rel", create_database=True,
                        instance="rel", batch_size=200, timeout_s=2, spool_fsync=True)
    watch = StatusWatch()
    admin = await started_bus(broker, "test-admin", "rel-watch")
    watch.attach(admin)
    writer = start_service(MODULE, "--config", str(conf), env=writer_env(broker))
    pub = await started_bus(broker, "house-sim", "rel")
    try:
        await warm_up(pub, watch, "rel")
        sent = 0

        async def stream(seconds: float) -> None:
            nonlocal sent
            for _ in range(int(seconds)):
                publish(pub, meter_readings(rate, "meter-rel", start=sent))
                sent += rate
                await asyncio.sleep(1)

        await stream(3)
        server.stop()
        await stream(outage_s / 2)
        os.kill(writer.proc.pid, signal.SIGKILL)  # the writer dies with points in its spool
        writer.proc.wait()
        await stream(3)  # published while no writer runs: the broker queues them for its session
        writer = start_service(MODULE, "--config", str(conf), env=writer_env(broker))
        await stream(outage_s / 2)
        server.start()
        await stream(3)
        await until(lambda: influx_count(server, "rel", "meter-rel") >= sent, 180, f"{sent} points in InfluxDB")
        stored = influx_count(server, "rel", "meter-rel")
        record_property("published", sent)
        record_property("stored", stored)
        record_property("lost", sent - stored)
        record_property("outage_s", outage_s)
        assert stored == sent
    finally:
        await pub.stop()
        await admin.stop()
        writer.stop()
        server.stop()
