"""The generic adapter (wattbus.bridge.Adapter): a described device over HTTP, Modbus or MQTT.

HTTP and Modbus devices are read on the description's schedule; an MQTT device speaks when it likes,
so its `read` waits for the next message and a silence of `stale_after_s` is its failed poll. A
selector that stops matching (a firmware update renamed a key) leaves that value null, is counted
(`selector_misses`) and shown in the reading's `extra.error`, and never fails the poll.
`set_relay` (a relay with a `[write]`) is refused within the switch interval, and `ok` only after a
fresh read shows the asked state.
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
from wattbus import messages as m
from wattbus.bridge import answer
from wattbus.bus import Bus, Message
from wattbus.counters import Counters
from wattbus.log import Logger

from .config import DeviceConfig
from .fetch import FetchError, HttpDevice
from .mapper import Mapper
from .modbus import ModbusError, ModbusReader
from .spec import Description, HttpSource, ModbusSource, MqttSource

PROTOCOL: dict[type[Any], m.Protocol] = {HttpSource: "http", ModbusSource: "modbus", MqttSource: "mqtt"}


class Silent(OSError):
    """An MQTT device that published nothing for its `stale_after_s`."""


def device_meta(source_name: str, dev: DeviceConfig, desc: Description) -> m.DeviceMeta:
    source = desc.source
    address = source.url if isinstance(source, HttpSource) else source.topic if isinstance(source, MqttSource) \
        else f"tcp://{source.host}:{source.port}/{source.unit_id}"
    return m.DeviceMeta(device_id=dev.id, kind=desc.kind, source=source_name, protocol=PROTOCOL[type(source)],
                        manufacturer=desc.manufacturer, model=desc.model, address=address, name=dev.name,
                        capabilities=["set_relay"] if desc.write else [])


class DescribedDevice:
    errors: tuple[type[Exception], ...] = (FetchError, ModbusError, Silent)

    def __init__(self, source_name: str, dev: DeviceConfig, desc: Description, counters: Counters, log: Logger,
                 bus: Bus | None = None) -> None:
        self.dev, self.desc, self.counters, self.log, self.bus = dev, desc, counters, log, bus
        self.device_id = dev.id
        self.commands: tuple[type[m.CommandBase], ...] = (m.SetRelay,) if desc.write else ()
        self.metas = [device_meta(source_name, dev, desc)]
        self.mapper = Mapper(dev.id, desc)
        source = desc.source
        self.push = isinstance(source, MqttSource)
        self.interval_s = dev.interval_s or (source.stale_after_s if isinstance(source, MqttSource)
                                             else source.interval_s)
        self.http = HttpDevice(source.timeout_s if isinstance(source, HttpSource) else 5.0, dev.username,
                               dev.resolved_password(), source.auth if isinstance(source, HttpSource) else "basic")
        self.modbus = ModbusReader(source, desc.values) if isinstance(source, ModbusSource) else None
        self.misses = 0
        self.last_misses: list[str] = []
        self.latest: m.ReadingBase | None = None
        self.last_switch: float | None = None
        self._messages: asyncio.Queue[dict[int, Any]] | None = None
        self._raws: dict[int, Any] = {}

    async def identify(self) -> list[m.DeviceMeta]:
        """The description says what the device is; an MQTT device is subscribed to here, once."""
        if self.push and self._messages is None and self.bus is not None:
            self._messages = asyncio.Queue()
            for topic in sorted({self.mapper.topic_of(v) for v in self.desc.values}):
                self.bus.subscribe(topic, bytes, self.on_message)
        return self.metas

    async def read(self) -> list[m.ReadingBase]:
        raws = await self._next_message() if self.push else await self.read_raw()
        return [self.reading(raws)]

    async def read_raw(self) -> dict[int, Any]:
        source = self.desc.source
        if isinstance(source, HttpSource):
            return self.mapper.select(await self.http.get_json(source.url))
        if self.modbus is None:
            raise FetchError(f"{self.device_id} listens on MQTT: it cannot be read on demand")
        return dict(await self.modbus.read())

    def reading(self, raws: dict[int, Any]) -> m.ReadingBase:
        """The reading, with what did not match shown in it (a ValidationError is a failed poll)."""
        reading, misses = self.mapper.reading(raws, datetime.now(UTC))
        self.last_misses = misses
        if misses:
            self.misses += len(misses)
            total = self.counters.inc("selector_misses", len(misses))
            error = "; ".join(misses)
            if self.misses == len(misses) or self.misses % 100 < len(misses):
                self.log.warning("values did not match", device=self.device_id, error=error,
                                 device_misses=self.misses, total=total)
            reading = msgspec.structs.replace(reading, extra={**reading.extra, "error": error[:500],
                                                              "selector_misses": self.misses})
        elif self.misses:
            reading = msgspec.structs.replace(reading, extra={**reading.extra, "selector_misses": self.misses})
        self.latest = reading
        return reading

    # ------------------------------------------------------------------ MQTT

    async def _next_message(self) -> dict[int, Any]:
        source = self.desc.source
        assert isinstance(source, MqttSource) and self._messages is not None
        try:
            return await asyncio.wait_for(self._messages.get(), source.stale_after_s)
        except TimeoutError:
            raise Silent(f"no message on {source.topic} for {source.stale_after_s:g} s") from None

    def on_message(self, msg: Message[bytes]) -> None:
        source = self.desc.source
        assert isinstance(source, MqttSource) and self._messages is not None
        if source.payload == "plain":
            doc: Any = msg.payload.decode("utf-8", "replace").strip()
        else:
            try:
                doc = msgspec.json.decode(msg.payload)
            except msgspec.DecodeError:
                self.counters.inc("payloads_rejected")
                self.log.warning("payload is not JSON", device=self.device_id, topic=msg.topic)
                return
        self._raws.update(self.mapper.select(doc, msg.topic))
        self._messages.put_nowait(dict(self._raws))  # one reading per message, as the device sent them

    # ------------------------------------------------------------------ set_relay

    async def execute(self, command: m.CommandBase) -> m.CommandResult:
        dev, write = self.device_id, self.desc.write
        assert write is not None and isinstance(command, m.SetRelay)  # the router sends only what we handle
        if command.channel != 0:
            return answer(command, dev, "refused", f"{dev}: a described relay has channel 0 only")
        now_on = await self._state()
        if now_on != command.on:
            ago = time.monotonic() - self.last_switch if self.last_switch is not None else math.inf
            if ago < write.min_switch_interval_s:  # contacts (and the load behind them) are worn by chatter
                return answer(command, dev, "refused",
                              f"{dev}: last switch was {ago:.0f} s ago; the minimum interval is "
                              f"{write.min_switch_interval_s:g} s (retry in "
                              f"{math.ceil(write.min_switch_interval_s - ago)} s)")
            await self.http.request(write.on_url if command.on else write.off_url, write.method)
            self.last_switch = time.monotonic()
        got = await self._confirm(command.on, write.confirm_timeout_s)
        applied: dict[str, m.ExtraValue] = {"on": got, "channel": 0}
        if got == command.on:
            return answer(command, dev, "ok", "confirmed by reading back", applied)
        return answer(command, dev, "failed", f"{dev}: the device did not report the new state (read back {got})",
                      applied)

    async def _state(self) -> bool | None:
        timestamp = self.latest.timestamp if self.latest else m.utc_now()
        on = getattr(self.mapper.reading(await self.read_raw(), timestamp)[0], "on", None)
        return on if isinstance(on, bool) else None

    async def _confirm(self, wanted: bool, timeout_s: float) -> bool | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            got = await self._state()
            if got == wanted or loop.time() >= deadline:
                return got
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        await self.http.close()
        if self.modbus is not None:
            self.modbus.close()
