"""One worker per configured device: poll (HTTP, Modbus) or listen (MQTT), publish, report errors.

A device that does not answer goes offline after `offline_after_failures` polls and is polled with
backoff; a selector that stops matching (a firmware update renamed a key) leaves that value null,
is counted (`selector_misses`) and shown in the reading's `extra.error`, and never stops the worker.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
from wattbus import messages as m
from wattbus.bus import Message
from wattbus.runner import DeviceChannel, ServiceContext

from .adapter import Mapper
from .config import Config, DeviceConfig
from .fetch import FetchError, HttpDevice
from .modbus import ModbusError, ModbusReader
from .spec import Description, HttpSource, ModbusSource, MqttSource

PROTOCOL: dict[type[Any], m.Protocol] = {HttpSource: "http", ModbusSource: "modbus", MqttSource: "mqtt"}


def device_meta(ctx_name: str, dev: DeviceConfig, desc: Description) -> m.DeviceMeta:
    source = desc.source
    address = source.url if isinstance(source, HttpSource) else source.topic if isinstance(source, MqttSource) \
        else f"tcp://{source.host}:{source.port}/{source.unit_id}"
    return m.DeviceMeta(device_id=dev.id, kind=desc.kind, source=ctx_name, protocol=PROTOCOL[type(source)],
                        manufacturer=desc.manufacturer, model=desc.model, address=address, name=dev.name,
                        capabilities=["set_relay"] if desc.write else [])


class DeviceWorker:
    def __init__(self, ctx: ServiceContext[Config], dev: DeviceConfig, desc: Description) -> None:
        self.ctx = ctx
        self.dev = dev
        self.desc = desc
        self.device_id = dev.id
        self.mapper = Mapper(dev.id, desc)
        self.channel: DeviceChannel = ctx.device(device_meta(ctx.name, dev, desc))
        source = desc.source
        self.interval = dev.interval_s or (source.stale_after_s if isinstance(source, MqttSource)
                                           else source.interval_s)
        self.http = HttpDevice(source.timeout_s if isinstance(source, HttpSource) else 5.0, dev.username,
                               dev.resolved_password(), source.auth if isinstance(source, HttpSource) else "basic")
        self.modbus = ModbusReader(source, desc.values) if isinstance(source, ModbusSource) else None
        self.lock = asyncio.Lock()  # a command's read-back and the poll never interleave on one device
        self.failures = 0
        self.misses = 0
        self.last_error = ""
        self.latest: m.ReadingBase | None = None
        self._mqtt_raws: dict[int, Any] = {}
        self._mqtt_seen = 0.0

    @property
    def online(self) -> bool:
        return self.latest is not None and self.failures < self.ctx.config.offline_after_failures

    async def run(self) -> None:
        try:
            if isinstance(self.desc.source, MqttSource):
                await self._listen()
            else:
                delay = self.interval
                while True:
                    delay = await self.poll_once(delay)
                    if not await self.ctx.sleep(delay):
                        return
        finally:
            await self.http.close()
            if self.modbus is not None:
                self.modbus.close()

    async def read_raw(self) -> dict[int, Any]:
        source = self.desc.source
        if isinstance(source, HttpSource):
            return self.mapper.select(await self.http.get_json(source.url))
        assert self.modbus is not None
        return dict(await self.modbus.read())

    async def poll_once(self, delay: float) -> float:
        """Poll once; returns how long to wait before the next poll."""
        try:
            async with self.lock:
                raws = await self.read_raw()
        except (FetchError, ModbusError) as exc:
            return self._failed(str(exc), delay)
        if self.failures:
            self.ctx.log.info("device answers again", device=self.device_id, after_failures=self.failures)
        self.failures = 0
        self.publish(raws)
        return self.interval

    def publish(self, raws: dict[int, Any]) -> m.ReadingBase | None:
        try:
            reading, misses = self.mapper.reading(raws, datetime.now(UTC))
        except msgspec.ValidationError as exc:  # not expected: the mapper drops bad fields; kept alive anyway
            self._failed(f"reading does not fit the contract: {exc}", self.interval)
            return None
        if misses:
            self.misses += len(misses)
            total = self.ctx.counters.inc("selector_misses", len(misses))
            self.last_error = "; ".join(misses)
            if self.misses == len(misses) or self.misses % 100 < len(misses):
                self.ctx.log.warning("values did not match", device=self.device_id, error=self.last_error,
                                     device_misses=self.misses, total=total)
            reading = msgspec.structs.replace(reading, extra={**reading.extra, "error": self.last_error[:500],
                                                              "selector_misses": self.misses})
        elif self.misses:
            reading = msgspec.structs.replace(reading, extra={**reading.extra, "selector_misses": self.misses})
        self.latest = reading
        self.channel.publish_reading(reading)
        self.ctx.counters.inc("readings_published")
        return reading

    def _failed(self, error: str, delay: float) -> float:
        self.failures += 1
        self.last_error = error
        total = self.ctx.counters.inc("poll_failures")
        if self.failures == 1 or self.failures % 10 == 0:
            self.ctx.log.warning("device poll failed", device=self.device_id, error=error, failures=self.failures,
                                 total=total)
        if self.failures < self.ctx.config.offline_after_failures:
            return self.interval
        self.channel.set_online(False)
        return min(max(delay, self.interval) * 2, self.ctx.config.max_backoff_s)

    # ------------------------------------------------------------------ MQTT

    async def _listen(self) -> None:
        source = self.desc.source
        assert isinstance(source, MqttSource)
        for topic in sorted({self.mapper.topic_of(v) for v in self.desc.values}):
            self.ctx.bus.subscribe(topic, bytes, self.on_message)
        while await self.ctx.sleep(min(source.stale_after_s, 30.0)):
            if self.latest is not None and time.monotonic() - self._mqtt_seen > source.stale_after_s:
                self.last_error = f"no message on {source.topic} for {source.stale_after_s:g} s"
                self.channel.set_online(False)

    def on_message(self, msg: Message[bytes]) -> None:
        source = self.desc.source
        assert isinstance(source, MqttSource)
        if source.payload == "plain":
            doc: Any = msg.payload.decode("utf-8", "replace").strip()
        else:
            try:
                doc = msgspec.json.decode(msg.payload)
            except msgspec.DecodeError as exc:
                self.ctx.counters.inc("payloads_rejected")
                self.last_error = f"{msg.topic}: payload is not JSON ({exc})"
                self.ctx.log.warning("payload is not JSON", device=self.device_id, topic=msg.topic)
                return
        self._mqtt_raws.update(self.mapper.select(doc, msg.topic))
        self._mqtt_seen = time.monotonic()
        self.publish(dict(self._mqtt_raws))
