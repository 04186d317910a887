"""Two writers in one share group split the stream with no duplicates (v2 API into VictoriaMetrics);
bad config stops start-up with a message naming the key."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.influx_writer.helpers import (
    PUBLISHER,
    StatusWatch,
    meter_readings,
    publish,
    victoria_count,
    warm_up,
    write_config,
    writer_env,
)
from tests.support.bus_helpers import started_bus, until
from tests.support.servers import Mosquitto, VictoriaMetrics

MODULE = "wattbus_influx_writer"


async def test_two_instances_share_the_stream(broker: Mosquitto, victoria: VictoriaMetrics, tmp_path: Path,
                                             start_service: Callable[..., Any]) -> None:
    watch = StatusWatch(only={"share-a", "share-b"})
    admin = await started_bus(broker, "test-admin", "watch-share")
    watch.attach(admin)
    writers = []
    for instance in ("share-a", "share-b"):
        conf = write_config(tmp_path, instance, url=victoria.url, api="v2", bucket="share", org="home",
                            instance=instance, share_group="iw-share", batch_size=400)
        writers.append(start_service(MODULE, "--config", str(conf), env=writer_env(broker)))
    pub = await started_bus(broker, PUBLISHER, "share")
    for instance in ("share-a", "share-b"):
        await warm_up(pub, watch, instance)
    base = watch.counter("received")
    publish(pub, meter_readings(4000, "meter-share"))
    await until(lambda: victoria_count(victoria, "meter_power_w", device_id="meter-share") >= 4000, 60,
                "4000 samples in VictoriaMetrics")
    assert victoria_count(victoria, "meter_power_w", device_id="meter-share") == 4000
    await until(lambda: watch.counter("written") == watch.counter("received") == base + 4000, 30,
                "both writers report every reading written")
    a, b = watch.counter("received", "share-a"), watch.counter("received", "share-b")
    assert a > 500 and b > 500, f"the broker did not split the stream: {a} / {b}"
    assert watch.counter("spooled") == 0 and watch.counter("dead_lettered") == 0
    await pub.stop()
    await admin.stop()
    for writer in writers:
        assert writer.stop() == 0, writer.output()


async def test_scale_down_drains_and_strands_nothing(broker: Mosquitto, victoria: VictoriaMetrics, tmp_path: Path,
                                                     start_service: Callable[..., Any]) -> None:
    """One of two writers stops mid-stream (a scale-down): it leaves the share group and ends its
    session, so the readings after it left all reach the other writer; none wait in its session."""
    watch = StatusWatch()
    admin = await started_bus(broker, "test-admin", "watch-down")
    watch.attach(admin)
    writers = {}
    for instance in ("down-a", "down-b"):
        conf = write_config(tmp_path, instance, url=victoria.url, api="v2", bucket="down", org="home",
                            instance=instance, share_group="iw-down", batch_size=400)
        writers[instance] = start_service(MODULE, "--config", str(conf), env=writer_env(broker))
    pub = await started_bus(broker, PUBLISHER, "down")
    for instance in writers:
        await warm_up(pub, watch, instance)
    base_b = watch.counter("received", "down-b")

    async def stream() -> None:  # 6000 readings over ~6 s
        for start in range(0, 6000, 100):
            publish(pub, meter_readings(100, "meter-down", start=start))
            await asyncio.sleep(0.1)

    streaming = asyncio.create_task(stream())
    await until(lambda: watch.counter("received", "down-b") > base_b + 100, 30, "down-b takes its share")
    assert not streaming.done()
    assert writers["down-b"].stop() == 0, writers["down-b"].output()  # mid-stream
    await streaming
    await until(lambda: victoria_count(victoria, "meter_power_w", device_id="meter-down") >= 6000, 60,
                "all 6000 samples stored, those after the scale-down by the remaining writer")
    assert victoria_count(victoria, "meter_power_w", device_id="meter-down") == 6000
    assert "drained: left the share group" in writers["down-b"].output()
    await pub.stop()
    await admin.stop()
    assert writers["down-a"].stop() == 0, writers["down-a"].output()


async def test_stopping_every_writer_keeps_the_sessions(broker: Mosquitto, victoria: VictoriaMetrics, tmp_path: Path,
                                                        start_service: Callable[..., Any]) -> None:
    """`docker compose stop`: both replicas stop together, see each other leave and keep their
    sessions, so what is published while none runs waits in the broker and is stored on return."""
    watch = StatusWatch()
    admin = await started_bus(broker, "test-admin", "watch-all")
    watch.attach(admin)
    confs = {instance: write_config(tmp_path, instance, url=victoria.url, api="v2", bucket="all", org="home",
                                    instance=instance, share_group="iw-all", batch_size=400)
             for instance in ("all-a", "all-b")}
    writers = [start_service(MODULE, "--config", str(conf), env=writer_env(broker)) for conf in confs.values()]
    pub = await started_bus(broker, PUBLISHER, "all")
    for instance in confs:
        await warm_up(pub, watch, instance)
    for writer in writers:
        writer.proc.terminate()  # together, as compose does
    for writer in writers:
        assert writer.proc.wait(30) == 0, writer.output()
        assert "draining before stop" not in writer.output()  # each saw the other leave too
    publish(pub, meter_readings(2000, "meter-all"))
    await asyncio.sleep(1)  # published while no writer runs
    writers = [start_service(MODULE, "--config", str(conf), env=writer_env(broker)) for conf in confs.values()]
    await until(lambda: victoria_count(victoria, "meter_power_w", device_id="meter-all") >= 2000, 60,
                "the 2000 readings kept in the sessions are stored")
    assert victoria_count(victoria, "meter_power_w", device_id="meter-all") == 2000
    await pub.stop()
    await admin.stop()
    for writer in writers:
        assert writer.stop() == 0, writer.output()


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text('[influx-writer]\napi = "v3"\n')
    proc = subprocess.run([sys.executable, "-m", MODULE, "--config", str(conf)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "[influx-writer] api" in proc.stderr and "v3" in proc.stderr
    conf.write_text('[influx-writer]\nsubscriptions = ["$share/x/wattbus/v1/#"]\n')
    proc = subprocess.run([sys.executable, "-m", MODULE, "--config", str(conf)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "share_group" in proc.stderr, proc.stderr
    conf.write_text('[influx-writer]\nsubscriptions = ["wattbus/v1/#/reading"]\n')
    proc = subprocess.run([sys.executable, "-m", MODULE, "--config", str(conf)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "not a valid MQTT filter" in proc.stderr, proc.stderr
