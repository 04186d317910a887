"""Line protocol from recorded readings, written to the real servers and read back; bad input."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC
from pathlib import Path
from typing import Any

import msgspec
import pytest
from wattbus import messages as m
from wattbus import topics
from wattbus.counters import Counters
from wattbus.log import get_logger
from wattbus_influx_writer import lineproto
from wattbus_influx_writer.config import Config
from wattbus_influx_writer.pipeline import Pipeline
from wattbus_influx_writer.sink import Outcome, Sink
from wattbus_influx_writer.spool import DeadLetters, Spool

from tests.influx_writer.helpers import BASE_TIME, DATA, decode, influxql, recorded_readings, victoria_count
from tests.support.bus_helpers import until
from tests.support.servers import InfluxDB1, VictoriaMetrics

RECORDED = recorded_readings()
BAD = [json.loads(line) for line in (DATA / "bad_payloads.jsonl").read_text().splitlines() if line.strip()]


def make_pipeline(tmp_path: Path, **cfg: Any) -> tuple[Pipeline, Counters]:
    config = msgspec.convert({"spool_dir": str(tmp_path / "spool"), "spool_fsync": False,
                              "dead_letter_file": str(tmp_path / "dead.jsonl"), **cfg}, Config)
    counters = Counters()
    log = get_logger("test-influx-writer")
    spool = Spool(Path(config.spool_dir), int(config.spool_max_mb * 2**20), False, counters, log)
    dead = DeadLetters(Path(config.dead_letter_file), 2**20, counters, log)
    return Pipeline(config, Sink(config), spool, dead, counters, log), counters


@pytest.fixture
async def v1_pipeline(influxdb: InfluxDB1, tmp_path: Path) -> AsyncIterator[tuple[Pipeline, Counters]]:
    pipeline, counters = make_pipeline(tmp_path, url=influxdb.url, api="v1", database="points")
    async with pipeline.sink:
        assert (await pipeline.sink.create_database()).outcome is Outcome.OK
        yield pipeline, counters


def expected_fields(reading: m.ReadingBase) -> dict[str, Any]:
    """What the database must hold for the main point: every non-None measured value."""
    skip = {"device_id", "timestamp", "extra", "phases", "kind", "inverter_id", "index", "channel"}
    fields: dict[str, Any] = {}
    for name in reading.__struct_fields__:
        value = getattr(reading, name)
        if name in skip or value is None:
            continue
        if isinstance(value, list):
            base, _, unit = name.rpartition("_")
            fields.update({f"{base}_{i}_{unit}": v for i, v in enumerate(value, 1)})
        else:
            fields[name] = value
    fields.update({f"extra_{k}": v for k, v in reading.extra.items() if v is not None})
    return fields


@pytest.mark.parametrize(("name", "payload"), RECORDED, ids=[r[0] for r in RECORDED])
async def test_recorded_reading_round_trips_through_influxdb(
        name: str, payload: bytes, v1_pipeline: tuple[Pipeline, Counters], influxdb: InfluxDB1) -> None:
    pipeline, counters = v1_pipeline
    reading = decode(payload)
    lines = lineproto.encode(reading, "recorded", reading.device_id)
    assert await pipeline.send(lines) == []
    assert counters.get("written") == len(lines)
    kind = type(reading).__struct_config__.tag
    ts = lineproto.timestamp_ns(reading.timestamp)
    query = f"SELECT * FROM \"{kind}\" WHERE device_id = '{reading.device_id}' AND time = {ts}"
    doc = influxql(influxdb, query, "points")
    assert len(doc) == 1, f"{name}: {doc}"
    row = dict(zip(_columns(influxdb, query), doc[0], strict=True))
    assert row["time"] == ts
    assert row["kind"] == kind and row["source"] == "recorded"
    for field, value in expected_fields(reading).items():
        stored = row[field]
        if isinstance(value, (bool, str)):
            assert stored == value, f"{name}.{field}"
        else:
            assert math.isclose(stored, value), f"{name}.{field}: {stored} != {value}"
    phases = getattr(reading, "phases", [])
    if phases:
        rows = influxql(influxdb, f"SELECT count(*) FROM \"{kind}_phase\" WHERE device_id = '{reading.device_id}' "
                                  f"AND time = {ts} GROUP BY phase", "points")
        assert len(rows) == len(phases)


def _columns(server: InfluxDB1, query: str) -> list[str]:
    url = f"{server.url}/query?" + urllib.parse.urlencode({"db": "points", "q": query, "epoch": "ns"})
    with urllib.request.urlopen(url, timeout=10) as resp:
        return list(json.load(resp)["results"][0]["series"][0]["columns"])


def test_naive_and_offset_timestamps_are_utc() -> None:
    naive = decode(b'{"kind":"relay","device_id":"r","timestamp":"2025-06-01T12:00:00","on":true}')
    aware = decode(b'{"kind":"relay","device_id":"r","timestamp":"2025-06-01T14:00:00+02:00","on":true}')
    assert lineproto.timestamp_ns(naive.timestamp) == lineproto.timestamp_ns(aware.timestamp)
    assert lineproto.timestamp_ns(aware.timestamp.astimezone(UTC)) == 1748779200 * 10**9


@pytest.mark.parametrize("case", BAD, ids=[c["why"] for c in BAD])
def test_bad_payload_is_dead_lettered_with_reason(case: dict[str, str], tmp_path: Path) -> None:
    pipeline, counters = make_pipeline(tmp_path)
    pipeline.on_message(case["topic"], case["payload"].encode())
    pipeline.sync_counters()
    assert counters.get("payload_rejected") == 1
    assert counters.get("received") == 1
    assert counters.get("points") == 0
    record = json.loads((tmp_path / "dead.jsonl").read_text().splitlines()[0])
    assert record["topic"] == case["topic"] and record["reason"].startswith("payload: ")
    assert len(record["reason"]) > len("payload: ") + 5


async def test_conflicting_point_is_dead_lettered_and_the_rest_written(
        v1_pipeline: tuple[Pipeline, Counters], influxdb: InfluxDB1, tmp_path: Path) -> None:
    """A vendor value that flips from bool to text: InfluxDB refuses that one point (field type
    conflict); the batch is halved until it is found, every other point is stored."""
    pipeline, counters = v1_pipeline
    lines = []
    for i in range(40):
        flag: m.ExtraValue = "on" if i == 23 else True
        reading = m.RelayReading(device_id="conflict-1", timestamp=decode(RECORDED[0][1]).timestamp.replace(second=i),
                                 on=True, power_w=float(i), extra={"boost": flag})
        lines += lineproto.encode(reading, "test")
    assert await pipeline.send(lines) == []
    assert counters.get("written") == 39
    assert counters.get("dead_lettered") == 1
    record = json.loads((tmp_path / "dead.jsonl").read_text().splitlines()[0])
    assert "extra_boost=\"on\"" in record["line"] and "conflict" in record["reason"]
    rows = influxql(influxdb, "SELECT count(power_w) FROM relay WHERE device_id = 'conflict-1'", "points")
    assert rows[0][1] == 39


async def test_v2_write_api_into_victoria(victoria: VictoriaMetrics, tmp_path: Path) -> None:
    pipeline, counters = make_pipeline(tmp_path, url=victoria.url, api="v2", bucket="wattbus", org="home",
                                       token="not-checked-by-victoria")
    lines: list[str] = []
    for name, payload in RECORDED:
        # VictoriaMetrics drops samples older than its retention (one month) without an error.
        reading = msgspec.structs.replace(decode(payload), timestamp=BASE_TIME)
        lines += lineproto.encode(reading, "recorded", f"{name}-v2")
    async with pipeline.sink:
        assert await pipeline.send(lines) == []
    assert counters.get("written") == len(lines)
    await until(lambda: victoria_count(victoria, "battery_cell_voltages_4_v", device_id="battery_cells-v2") == 1,
                20, "battery point in VictoriaMetrics")
    assert victoria_count(victoria, "meter_phase_power_w", device_id="meter_3phase-v2") == 3
    assert victoria_count(victoria, "string_power_w", device_id="string_panel-v2", inverter_id="aps-408000123456",
                          index="2") == 1


@pytest.mark.parametrize(("name", "payload"), RECORDED, ids=[r[0] for r in RECORDED])
def test_cached_encoder_matches_one_off_encoding(name: str, payload: bytes) -> None:
    """The writer's LineEncoder caches each series' tag part; a cache hit must give the same lines,
    and readings that differ only in a tag field (string index, relay channel) must not share one."""
    encoder = lineproto.LineEncoder()
    reading = decode(payload)
    first = encoder.encode(reading, "recorded", reading.device_id)
    assert first == lineproto.encode(reading, "recorded", reading.device_id), name
    assert encoder.encode(reading, "recorded", reading.device_id) == first  # from the cache
    assert encoder.encode(reading, "other-source", "other-id") == lineproto.encode(reading, "other-source",
                                                                                    "other-id")
    for tag in ("index", "channel"):
        if hasattr(reading, tag):
            moved = msgspec.structs.replace(reading, **{tag: getattr(reading, tag) + 1})
            lines = encoder.encode(moved, "recorded", reading.device_id)
            assert lines == lineproto.encode(moved, "recorded", reading.device_id) != first
            assert f"{tag}={getattr(reading, tag) + 1}" in lines[0]


def test_counters_tally_per_message_and_sync(tmp_path: Path) -> None:
    """received/points/device_id_mismatch are plain ints on the hot path, copied on sync."""
    pipeline, counters = make_pipeline(tmp_path)
    points = 0
    for _name, payload in RECORDED * 2:  # the second round takes the topic cache
        reading = decode(payload)
        pipeline.on_message(topics.device_reading("recorded", reading.device_id), payload)
        points += len(lineproto.encode(reading, "recorded"))
    assert counters.get("received") == 0  # not synced yet
    pipeline.on_message(topics.device_reading("recorded", "someone-else"), RECORDED[0][1])
    pipeline.sync_counters()
    assert counters.get("received") == 2 * len(RECORDED) + 1
    assert counters.get("points") == points + len(lineproto.encode(decode(RECORDED[0][1]), "recorded"))
    assert counters.get("device_id_mismatch") == 1
    assert counters.get("payload_rejected") == 0
    batch, _since, _acks = pipeline._take()
    assert len(batch) == counters.get("points")
    assert any("device_id=someone-else" in line for line in batch)


async def test_pause_in_the_stream_flushes_before_the_interval(influxdb: InfluxDB1, tmp_path: Path) -> None:
    """The tail of a burst is written once the stream pauses (idle_flush_s), not after flush_interval_s."""
    pipeline, counters = make_pipeline(tmp_path, url=influxdb.url, api="v1", database="idle", create_database=True,
                                       flush_interval_s=60, idle_flush_s=0.2, batch_size=100_000)
    async with pipeline.sink:
        task = asyncio.create_task(pipeline.run())
        for name, payload in RECORDED:
            pipeline.on_message(topics.device_reading("recorded", f"{name}-idle"), payload)
        await until(lambda: counters.get("written") == counters.get("points") > 0, 30,
                    "the burst written well before the 60 s flush interval")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    rows = influxql(influxdb, "SELECT count(power_w) FROM meter WHERE device_id = 'meter_3phase-idle'", "idle")
    assert rows[0][1] == 1
