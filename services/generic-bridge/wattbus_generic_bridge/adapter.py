"""The generic adapter (wattbus.bridge.Adapter): a described device over HTTP, Modbus or MQTT.

HTTP and Modbus devices are read on the description's schedule; an MQTT device speaks when it likes,
so its `read` waits for the next message and a silence of `stale_after_s` is its failed poll. A
selector that stops matching (a firmware update renamed a key) leaves that value null, is counted
(`selector_misses`) and shown in the reading's `extra.error`, and never fails the poll.
Writes (a relay's switch, a charger's current, charging and phases: control.py) are checked against
their limits, written over the source's transport, and `ok` only after a fresh read shows them.
An MQTT device may live on another broker (brokers.py); a Modbus one on a serial line (modbus.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import msgspec
from wattbus import messages as m
from wattbus.bus import Bus, Message, Subscription
from wattbus.counters import Counters
from wattbus.log import Logger

from . import control
from .brokers import Brokers
from .config import DeviceConfig, current_limits
from .fetch import FetchError, HttpDevice
from .mapper import Mapper
from .modbus import ModbusError, ModbusReader, Transport
from .spec import Description, HttpSource, ModbusSource, MqttSource

PROTOCOL: dict[type[Any], m.Protocol] = {HttpSource: "http", ModbusSource: "modbus", MqttSource: "mqtt"}


BROKER_WAIT_S = 5.0  # another broker that has not answered by then is reported, and tried again


class Silent(OSError):
    """An MQTT device that published nothing for its `stale_after_s`."""


def transport(dev: DeviceConfig, source: ModbusSource) -> Transport:
    """TCP to the description's host, or RTU on the entry's serial port."""
    if dev.serial_port is not None:
        return Transport(serial_port=dev.serial_port, baudrate=dev.baudrate, parity=dev.parity,
                         stopbits=dev.stopbits)
    return Transport(host=source.host, port=source.port)


def device_meta(source_name: str, dev: DeviceConfig, desc: Description) -> m.DeviceMeta:
    source = desc.source
    if isinstance(source, HttpSource):
        address = source.url
    elif isinstance(source, MqttSource):  # the other broker without its password: mqtt://user@host:port/topic
        address = f"{dev.broker.url}/{source.topic}" if dev.broker is not None else source.topic
    else:
        address = f"{transport(dev, source).address}/{source.unit_id}"
    return m.DeviceMeta(device_id=dev.id, kind=desc.kind, source=source_name, protocol=PROTOCOL[type(source)],
                        manufacturer=desc.manufacturer, model=desc.model, address=address, name=dev.name,
                        capabilities=[str(c.__struct_config__.tag) for c in control.commands(desc)])


class DescribedDevice:
    errors: tuple[type[Exception], ...] = (FetchError, ModbusError, Silent)

    def __init__(self, source_name: str, dev: DeviceConfig, desc: Description, counters: Counters, log: Logger,
                 bus: Bus | None = None, brokers: Brokers | None = None) -> None:
        self.dev, self.desc, self.counters, self.log, self.bus = dev, desc, counters, log, bus
        self.brokers = brokers
        self.device_id = dev.id
        self.commands: tuple[type[m.CommandBase], ...] = control.commands(desc)
        self.metas = [device_meta(source_name, dev, desc)]
        self.mapper = Mapper(dev.id, desc)
        # the installation's fixed values (`const`) join whatever is read
        self.consts = {i: v.const for i, v in enumerate(desc.values) if v.const is not None}
        write = desc.write
        # what a person may set (Home Assistant's number entity): the bridge's limits, as go-e's bridge says them
        self.limits: dict[str, m.ExtraValue] = {}
        if desc.kind == "charger" and write is not None and write.charge_current is not None:
            low, high = current_limits(dev, desc)
            self.limits = {"limit_min_current_a": low, "limit_max_current_a": high}
        source = desc.source
        self.push = isinstance(source, MqttSource)
        self.interval_s = dev.interval_s or (source.stale_after_s if isinstance(source, MqttSource)
                                             else source.interval_s)
        self.http = HttpDevice(source.timeout_s if isinstance(source, HttpSource) else 5.0, dev.username,
                               dev.resolved_password(), source.auth if isinstance(source, HttpSource) else "basic")
        self.modbus = ModbusReader(source, desc.values, transport(dev, source), dev.timeout_s) \
            if isinstance(source, ModbusSource) else None
        self.local = self.modbus is not None and self.modbus.line.transport.local  # a serial port on this host
        self.misses = 0
        self.last_misses: list[str] = []
        self.latest: m.ReadingBase | None = None
        self.last_switch: float | None = None
        self._messages: asyncio.Queue[dict[int, Any]] | None = None
        self._raws: dict[int, Any] = {}
        self.subscriptions: list[Subscription] = []  # an MQTT device's topics (a probe drops them after)

    async def identify(self) -> list[m.DeviceMeta]:
        """The description says what the device is; an MQTT device is subscribed to here, once."""
        if self.push and self._messages is None and self.dev.broker is not None and self.brokers is not None:
            self.bus = await self.brokers.bus(self.dev.broker)  # the device's own broker, not wattbus's
        if self.push and self._messages is None and self.bus is not None:
            self._messages = asyncio.Queue()
            self.subscriptions = [self.bus.subscribe(topic, bytes, self.on_message)
                                  for topic in sorted({self.mapper.topic_of(v) for v in self.desc.values})]
        return self.metas

    async def read(self) -> list[m.ReadingBase]:
        raws = await self._next_message() if self.push else await self.read_raw()
        return [self.reading(raws)]

    async def read_raw(self) -> dict[int, Any]:
        source = self.desc.source
        if isinstance(source, HttpSource):
            return {**self.mapper.select(await self.http.get_json(source.url)), **self.consts}
        if self.modbus is None:
            raise FetchError(f"{self.device_id} listens on MQTT: it cannot be read on demand")
        return {**await self.modbus.read(), **self.consts}

    def reading(self, raws: dict[int, Any]) -> m.ReadingBase:
        """The reading, with what did not match shown in it (a ValidationError is a failed poll)."""
        reading, misses = self.mapper.reading(raws, datetime.now(UTC))
        if self.limits:
            reading = msgspec.structs.replace(reading, extra={**reading.extra, **self.limits})
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
        broker = self.dev.broker
        if broker is not None and self.bus is not None and not await self.bus.wait_connected(BROKER_WAIT_S):
            # said at once, not after stale_after_s (5 min for a Tasmota head): the broker is the problem
            raise Silent(f"broker {broker.url} not connected (see the log for why)")
        try:
            return await asyncio.wait_for(self._messages.get(), source.stale_after_s)
        except TimeoutError:
            broker = self.dev.broker
            if broker is not None and self.bus is not None and not self.bus.connected:
                raise Silent(f"broker {broker.url} not connected (see the log for why)") from None
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
        self._raws.update({**self.mapper.select(doc, msg.topic), **self.consts})
        self._messages.put_nowait(dict(self._raws))  # one reading per message, as the device sent them

    # ------------------------------------------------------------------ writes (control.py)

    async def execute(self, command: m.CommandBase) -> m.CommandResult:
        return await control.execute(self, command)

    async def current_raws(self) -> dict[int, Any]:
        """The device's values now: a fresh read, or for MQTT the last message of each topic."""
        return dict(self._raws) if self.push else await self.read_raw()

    async def close(self) -> None:
        await self.http.close()
        if self.modbus is not None:
            self.modbus.close()
