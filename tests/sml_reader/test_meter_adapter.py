"""The meter as the toolkit's push adapter, on capture files: a read returns what the line
delivered, a silent line and a port that does not open are failed reads that name the cause."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from wattbus.config import LoadedConfig
from wattbus.counters import Counters
from wattbus.log import get_logger
from wattbus.runner import ServiceContext
from wattbus_sml_reader.config import Config, MeterConfig
from wattbus_sml_reader.mapping import Mapper
from wattbus_sml_reader.meter import Meter, MeterDown

from tests.support.bus_helpers import started_bus
from tests.support.servers import Mosquitto

CAPTURE = Path(__file__).parent / "data" / "sml" / "ebz_dd3.hex"


@pytest.fixture
async def ctx(broker: Mosquitto) -> AsyncIterator[ServiceContext[Config]]:
    bus = await started_bus(broker, "test-admin")
    context = ServiceContext("sml-reader", Config(), LoadedConfig({}, None, {}), bus, Counters(),
                             get_logger("sml-reader"), asyncio.Event())
    try:
        yield context
    finally:
        await bus.stop()


async def test_a_capture_is_read_then_falls_silent(ctx: ServiceContext[Config]) -> None:
    meter = Meter(ctx, MeterConfig(key="t", port=f"file://{CAPTURE}", replay_loop=False, offline_after_s=1),
                  Mapper())
    try:
        metas = await meter.identify()
        assert [(meta.kind, meta.protocol) for meta in metas] == [("meter", "sml")]
        readings = await meter.read()
        assert readings and {r.device_id for r in readings} == {metas[0].device_id}
        with pytest.raises(MeterDown, match=r"no good sml frame from file://.* within 1 s"):
            for _ in range(20):  # the capture runs out, then the line is silent
                await meter.read()
        assert ctx.counters.get("t.frames_ok") >= 1
    finally:
        await meter.close()


async def test_a_port_that_does_not_open_is_named_and_tried_again(ctx: ServiceContext[Config],
                                                                   tmp_path: Path) -> None:
    port = f"file://{tmp_path}/absent.hex"
    meter = Meter(ctx, MeterConfig(key="gone", port=port, offline_after_s=1), Mapper())
    try:
        for attempt in (1, 2):  # the poller's backoff sits between two of these
            with pytest.raises(MeterDown, match=re.escape(f"cannot open {port}: No such file or directory")):
                await meter.identify()
            assert ctx.counters.get("gone.connection_errors") == attempt
        assert [(e.address, e.name) for e in ctx.device_errors()] == [(port, "gone")]
    finally:
        await meter.close()
