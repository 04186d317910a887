"""The writer as a real process: real broker (ACL, user influx-writer), real InfluxDB 1.x (v1 /write)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus

from tests.influx_writer.helpers import (
    PUBLISHER,
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


async def _start(broker: Mosquitto, start_service: Callable[..., Any], conf: Path,
                 instance: str) -> tuple[Any, StatusWatch, Bus, Bus, int]:
    watch = StatusWatch()
    admin = await started_bus(broker, "test-admin", f"watch-{instance}")
    watch.attach(admin)
    writer = start_service(MODULE, "--config", str(conf), env=writer_env(broker))
    pub = await started_bus(broker, PUBLISHER, instance)
    base = await warm_up(pub, watch, instance)
    return writer, watch, admin, pub, base


async def test_every_reading_lands_once(broker: Mosquitto, influxdb: InfluxDB1, tmp_path: Path,
                                        start_service: Callable[..., Any]) -> None:
    db = "v1_once"
    conf = write_config(tmp_path, "w", url=influxdb.url, api="v1", database=db, create_database=True,
                        instance="once", batch_size=500)
    writer, watch, admin, pub, base = await _start(broker, start_service, conf, "once")
    publish(pub, meter_readings(3000, "meter-once"))
    await until(lambda: watch.counter("written", "once") >= base + 3000, 60, "3000 points written")
    assert influx_count(influxdb, db, "meter-once") == 3000
    assert watch.counter("received", "once") == base + 3000
    assert watch.counter("dead_lettered", "once") == 0
    assert watch.counter("spooled", "once") == 0
    await pub.stop()
    await admin.stop()
    assert writer.stop() == 0, writer.output()


async def test_outage_spools_then_replays_exactly(broker: Mosquitto, tmp_path: Path,
                                                  start_service: Callable[..., Any]) -> None:
    """Stop InfluxDB mid-stream, keep publishing, start it again: every point arrives once."""
    (tmp_path / "influx").mkdir()
    server = InfluxDB1(tmp_path / "influx")
    server.start()
    try:
        conf = write_config(tmp_path, "w", url=server.url, api="v1", database="outage", create_database=True,
                            instance="outage", batch_size=200, timeout_s=3)
        writer, watch, admin, pub, base = await _start(broker, start_service, conf, "outage")
        publish(pub, meter_readings(1000, "meter-outage"))
        await until(lambda: watch.counter("written", "outage") >= base + 1000, 60, "first 1000 written")

        server.stop()
        publish(pub, meter_readings(1500, "meter-outage", start=1000))
        await until(lambda: watch.counter("spooled", "outage") >= 1500, 60, "1500 points spooled")
        assert watch.counter("written", "outage") == base + 1000

        server.start()
        publish(pub, meter_readings(500, "meter-outage", start=2500))
        await until(lambda: watch.counter("written", "outage") >= base + 3000
                    and watch.counter("spool_points", "outage") == 0, 90, "spool replayed")
        assert influx_count(server, "outage", "meter-outage") == 3000
        assert watch.counter("received", "outage") == base + 3000
        assert watch.counter("replayed", "outage") >= 1500
        assert watch.counter("write_failures", "outage") >= 1
        assert watch.counter("spool_dropped", "outage") == 0
        assert "database unavailable, spooling to disk" in writer.output()
        assert "database back, spool replayed" in writer.output()
        await pub.stop()
        await admin.stop()
        assert writer.stop() == 0, writer.output()
    finally:
        server.stop()


async def test_writer_restart_loses_nothing(broker: Mosquitto, influxdb: InfluxDB1, tmp_path: Path,
                                            start_service: Callable[..., Any]) -> None:
    """The persistent session keeps QoS 1 readings while the writer is stopped."""
    db = "v1_restart"
    conf = write_config(tmp_path, "w", url=influxdb.url, api="v1", database=db, create_database=True,
                        instance="restart", batch_size=300)
    writer, _watch, admin, pub, _base = await _start(broker, start_service, conf, "restart")
    publish(pub, meter_readings(800, "meter-restart"))
    await until(lambda: influx_count(influxdb, db, "meter-restart") == 800, 60, "800 points before the restart")
    assert writer.stop() == 0, writer.output()

    sent = pub.counters.get("messages_out")
    publish(pub, meter_readings(1200, "meter-restart", start=800))  # the writer is away
    await until(lambda: pub.counters.get("messages_out") >= sent + 1200, 10, "published")
    writer = start_service(MODULE, "--config", str(conf), env=writer_env(broker))
    await until(lambda: influx_count(influxdb, db, "meter-restart") == 2000, 60, "2000 points after the restart")
    await pub.stop()
    await admin.stop()
    assert writer.stop() == 0, writer.output()


async def test_sigkill_with_readings_in_memory_loses_nothing(broker: Mosquitto, influxdb: InfluxDB1, tmp_path: Path,
                                                             start_service: Callable[..., Any]) -> None:
    """PUBACKs wait until a batch is stored: readings the killed writer held in memory come back
    from the broker at the next start and are stored once (rewriting a point is idempotent)."""
    db = "v1_sigkill"
    normal = write_config(tmp_path, "normal", url=influxdb.url, api="v1", database=db, create_database=True,
                          instance="sigkill", share_group="iw-sigkill")
    holding = write_config(tmp_path, "holding", url=influxdb.url, api="v1", database=db, instance="sigkill",
                           share_group="iw-sigkill", batch_size=1_000_000, flush_interval_s=60, idle_flush_s=0)
    writer, watch, admin, pub, _base = await _start(broker, start_service, normal, "sigkill")
    assert writer.stop() == 0, writer.output()  # the session and its subscription stay on the broker
    writer = start_service(MODULE, "--config", str(holding), env=writer_env(broker))
    await until(lambda: "ingest connected" in writer.output(), 30, "the holding writer connected")
    publish(pub, meter_readings(1500, "meter-sigkill"))
    await until(lambda: watch.counter("received", "sigkill") == 1500, 60, "1500 readings in the writer")
    assert influx_count(influxdb, db, "meter-sigkill") == 0  # all of them only in the writer's memory
    writer.proc.kill()
    writer.proc.wait(10)

    writer = start_service(MODULE, "--config", str(normal), env=writer_env(broker))
    await until(lambda: influx_count(influxdb, db, "meter-sigkill") == 1500, 60, "1500 points after the restart")
    await until(lambda: watch.counter("received", "sigkill") >= 1500, 30, "the broker re-sent them")
    await pub.stop()
    await admin.stop()
    assert writer.stop() == 0, writer.output()


async def test_reload_request_is_answered_in_the_requester_inbox(broker: Mosquitto, influxdb: InfluxDB1, tmp_path: Path,
                                                                 start_service: Callable[..., Any]) -> None:
    """A v5 request (reply topic + correlation) reaches the writer and its answer reaches the
    requester: the ACL lets the writer write reply inboxes (it once timed out there)."""
    conf = write_config(tmp_path, "w", url=influxdb.url, api="v1", database="v1_reload", create_database=True,
                        instance="reload")
    writer, _watch, admin, pub, _base = await _start(broker, start_service, conf, "reload")
    result = await admin.request(topics.service_command("influx-writer", "reload"), m.ReloadConfig(), timeout=20)
    assert result.status == "ok" and "unchanged" in (result.message or ""), result
    await pub.stop()
    await admin.stop()
    assert writer.stop() == 0, writer.output()
