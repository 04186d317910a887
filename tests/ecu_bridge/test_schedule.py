"""When the poller asks next: aligned to the ECU's refresh, never faster for long."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from wattbus.bus import Bus
from wattbus.config import BusConfig, LoadedConfig
from wattbus.counters import Counters
from wattbus.log import get_logger
from wattbus.runner import ServiceContext
from wattbus_ecu_bridge.adapter import EcuAdapter
from wattbus_ecu_bridge.config import Config, EcuConfig


def adapter(**ecu: object) -> EcuAdapter:
    cfg = Config(ecus=[EcuConfig(host="127.0.0.1", **ecu)])  # type: ignore[arg-type]
    bus = Bus(BusConfig(), "ecu-bridge")  # never started: the schedule needs no broker
    ctx = ServiceContext("ecu-bridge", cfg, LoadedConfig({}, None, {}), bus, Counters(), get_logger("t"),
                         asyncio.Event())
    return EcuAdapter(ctx, cfg.ecus[0])


def after(ecu: EcuAdapter, stamp: datetime | None) -> float:
    """The pause after a read whose data has this timestamp (None: the ECU had not refreshed)."""
    ecu.stamp = stamp
    return ecu.next_poll()


def test_next_poll_follows_the_ecu_refresh() -> None:
    p = adapter(poll_interval_s=300.0, refresh_margin_s=20.0)
    now = datetime.now(UTC)
    assert abs(after(p, now - timedelta(seconds=100)) - 220.0) < 2  # 300 - 100 + 20
    assert after(p, now - timedelta(seconds=290)) == 60.0  # never below a fifth of the interval
    assert after(p, now + timedelta(hours=1)) == 300.0  # ECU clock ahead: plain interval
    assert after(p, now - timedelta(hours=3)) == 300.0  # stale or zone off: plain interval


def test_unchanged_answers_back_off_to_the_interval() -> None:
    p = adapter(poll_interval_s=300.0)
    p.unchanged = 1
    assert after(p, None) == 60.0
    p.unchanged = 3
    assert after(p, None) == 300.0
