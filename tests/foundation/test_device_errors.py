"""Device errors on the bus (ServiceStatus.device_errors), a refused broker login in the log, and
what `wattbus healthcheck` says without its heartbeat file: each against the real broker or CLI."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Bus
from wattbus.config import LoadedConfig, ServiceCommon
from wattbus.counters import Counters
from wattbus.log import get_logger
from wattbus.runner import ServiceContext

from tests.support.bus_helpers import started_bus, subscriptions_active, until
from tests.support.servers import Mosquitto

SERVICE = "sml-reader"


async def test_set_error_and_device_error_reach_the_status_and_clear_on_a_good_reading(broker: Mosquitto) -> None:
    watcher = await started_bus(broker, "test-admin", "errors")
    statuses: list[m.ServiceStatus] = []
    status_topic = topics.service_status(SERVICE, "errors")
    watcher.subscribe(status_topic, bytes, lambda msg: statuses.append(codec.decode(msg.payload, m.ServiceStatus)))
    await subscriptions_active(watcher)
    bus = await started_bus(broker, SERVICE, "errors")
    ctx = ServiceContext(SERVICE, ServiceCommon(instance="errors"), LoadedConfig({}, None, {}), bus, Counters(),
                         get_logger(SERVICE), asyncio.Event())
    try:
        ctx.device_error("/dev/ttyUSB7", "cannot open /dev/ttyUSB7: No such file or directory", name="cellar")
        await until(lambda: bool(statuses) and bool(statuses[-1].device_errors), 5, "the address error")
        (first,) = statuses[-1].device_errors
        assert (first.device_id, first.address, first.name) == (None, "/dev/ttyUSB7", "cellar")

        channel = ctx.device(m.DeviceMeta(device_id="meter-1", kind="meter", source=SERVICE, protocol="sml",
                                          address="/dev/ttyUSB7"))
        ctx.clear_device_error("/dev/ttyUSB7")
        channel.set_error("no frame for 15 s")
        assert channel.error is not None
        began = channel.error.since
        channel.set_error("no frame for 15 s")  # the same reason again: nothing new to send
        channel.set_error("CRC errors only")  # a new reason keeps the time the failures began
        await until(lambda: [e.error for e in statuses[-1].device_errors] == ["CRC errors only"], 5, "reason")
        (error,) = statuses[-1].device_errors
        assert error.device_id == "meter-1" and error.address == "/dev/ttyUSB7"
        assert error.since == began
        sent = len(statuses)
        channel.publish_reading(m.MeterReading(device_id="meter-1", timestamp=datetime.now(UTC), power_w=1.0))
        await until(lambda: len(statuses) > sent and not statuses[-1].device_errors, 5, "cleared by a reading")
    finally:
        await bus.stop()
        await watcher.stop()


async def test_a_refused_login_names_user_broker_reason_and_the_hint(broker: Mosquitto,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    bus = Bus(broker.bus_config(SERVICE, password="not-the-password", reconnect_min_s=1.0, reconnect_max_s=2.0),
              SERVICE, "wrong")
    caplog.set_level(logging.WARNING)
    await bus.start()
    try:
        await until(lambda: sum("refused the login" in r.getMessage() for r in caplog.records) >= 2, 10,
                    "two refused tries")
    finally:
        await bus.stop()
    refused = [r for r in caplog.records if "refused the login" in r.getMessage()]
    assert not bus.connected
    for record in refused:  # one line per try, nothing else about the same try
        fields = record.__dict__.get("fields", {})
        assert fields["user"] == SERVICE and fields["broker"] == f"127.0.0.1:{broker.port}", fields
        assert fields["reason"] == "not authorised" and "password" in fields["hint"], fields
    assert [r.__dict__["fields"]["retry_s"] for r in refused[:2]] == [1.0, 2.0]
    assert not [r for r in caplog.records if "lost broker connection" in r.getMessage()]


def test_healthcheck_without_its_file_says_what_it_checks_and_how_to_run_it() -> None:
    env = {k: v for k, v in os.environ.items() if k != "WATTBUS_HEALTH_FILE"}
    done = subprocess.run([sys.executable, "-m", "wattbus.cli", "healthcheck"], env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 1
    text = done.stderr
    assert "WATTBUS_HEALTH_FILE is not set" in text
    assert "connected to the broker" in text and "--max-age" in text  # what it checks
    assert "docker compose exec <service> wattbus healthcheck" in text  # in a container
    assert "WATTBUS_HEALTH_FILE=/tmp/sml-reader.health wattbus healthcheck" in text  # outside one
