"""One poll loop per configured device: detect, read, publish, back off, report availability.

Each device has its own task, HTTP session and lock, so a charger that left the network only
delays its own loop (bounded by the timeout) and never the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec
from wattbus import messages as m
from wattbus.runner import DeviceChannel, ServiceContext

from .config import Config, DeviceConfig
from .detect import Adapter, NotSupported, detect
from .guard import Guard, Limits
from .shelly import ShellyDevice
from .transport import DeviceError, HttpDevice, ResponseRejected


class DeviceWorker:
    def __init__(self, ctx: ServiceContext[Config], cfg: DeviceConfig) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.http = HttpDevice(cfg.url, timeout_s=ctx.config.timeout_s, username=cfg.username,
                               password=cfg.resolved_password())
        self.guard = Guard(Limits(cfg.max_current_a, cfg.min_current_a, cfg.min_switch_interval_s,
                                  cfg.min_phase_switch_interval_s))
        self.adapter: Adapter | None = None
        self.channels: dict[str, DeviceChannel] = {}
        self.latest: dict[str, m.ReadingBase] = {}
        self.lock = asyncio.Lock()  # one request at a time: small devices (ESP8266) choke on more
        self.failures = 0
        self.last_error = ""
        self.interval = cfg.poll_interval_s or ctx.config.poll_interval_s
        self.on_detected: Callable[[DeviceWorker], None] | None = None  # adoption pins configured ids

    @property
    def online(self) -> bool:
        return self.adapter is not None and self.failures < self.ctx.config.offline_after_failures

    def owns(self, device_id: str) -> bool:
        return device_id in self.channels

    async def run(self) -> None:
        delay = self.interval
        try:
            while True:
                delay = await self.poll_once(delay)
                if not await self.ctx.sleep(delay):
                    return
        finally:
            await self.http.close()

    async def poll_once(self, delay: float) -> float:
        """Poll the device once; returns how long to wait before the next poll."""
        try:
            async with self.lock:
                if self.adapter is None:
                    self.adapter = await detect(self.http)
                    self.ctx.log.info("device detected", url=self.cfg.url, kind=self.adapter.kind,
                                      api=self.adapter.generation, device=self.adapter.device_id)
                    if self.on_detected is not None:
                        self.on_detected(self)
                readings = await self.adapter.read()
        except DeviceError as exc:
            return self._failed(exc, delay)
        self.publish(readings)
        if self.failures:
            self.ctx.log.info("device answers again", url=self.cfg.url, after_failures=self.failures)
        self.failures = 0
        return self.interval

    def publish(self, readings: list[m.ReadingBase]) -> None:
        assert self.adapter is not None
        new = [r for r in readings if r.device_id not in self.channels]
        if new:
            metas = (self.adapter.metas(self.ctx.name, readings) if isinstance(self.adapter, ShellyDevice)
                     else self.adapter.metas(self.ctx.name))
            for meta in metas:
                if meta.device_id not in self.channels:
                    self.channels[meta.device_id] = self.ctx.device(meta)
        for reading in readings:
            if isinstance(reading, m.ChargerReading):
                reading = self.with_limits(reading)
            self.latest[f"{reading.device_id}/{getattr(reading, 'channel', 0)}"] = reading
            self.channels[reading.device_id].publish_reading(reading)
            self.ctx.counters.inc("readings_published")

    def with_limits(self, reading: m.ChargerReading) -> m.ChargerReading:
        """The charge current range this bridge accepts, as extras (limit_min/max_current_a)."""
        device_max = reading.extra.get("max_current_a")
        low, high = self.guard.current_range_a(float(device_max) if isinstance(device_max, int | float)
                                               and not isinstance(device_max, bool) else None)
        return msgspec.structs.replace(reading, extra={**reading.extra, "limit_min_current_a": low,
                                                        "limit_max_current_a": high})

    def _failed(self, exc: DeviceError, delay: float) -> float:
        self.failures += 1
        self.last_error = str(exc)
        counter = "responses_rejected" if isinstance(exc, ResponseRejected) else "poll_failures"
        total = self.ctx.counters.inc(counter)
        if isinstance(exc, NotSupported) or "serial changed" in str(exc):
            self.adapter = None  # detect again: maybe another device took the address
        if self.failures == 1 or self.failures % 10 == 0:
            self.ctx.log.warning("device poll failed", url=self.cfg.url, error=str(exc), failures=self.failures,
                                 total=total)
        if self.failures >= self.ctx.config.offline_after_failures:
            for channel in self.channels.values():
                channel.set_online(False)
        # Exponential backoff after repeated failures; the first retry keeps the normal pace.
        if self.failures < self.ctx.config.offline_after_failures:
            return self.interval
        return min(max(delay, self.interval) * 2, self.ctx.config.max_backoff_s)
