"""One meter: bytes -> frames -> readings on the bus, with its own connection loop and watchdog."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec
import serial
from wattbus import messages as m
from wattbus import topics
from wattbus.runner import DeviceChannel, ServiceContext

from . import iec, sml
from .config import Config, MeterConfig
from .guard import ENERGY_FIELDS, EnergyGuard
from .mapping import Mapper
from .transport import Connection, run_connection
from .values import DecodedFrame, FrameError

if TYPE_CHECKING:
    from . import dsmr

PROTOCOLS: dict[str, m.Protocol] = {"sml": "sml", "dsmr": "dsmr", "iec": "iec62056"}
LOG_EVERY_S = 10.0  # a garbage storm is counted in full but logged once per kind in this interval


class FrameDecoder:
    """The framer and decoder for one meter's format: bytes in, good frames or reasons out."""

    def __init__(self, meter: MeterConfig) -> None:
        self.format = meter.format
        self._sml = sml.SmlFramer(meter.crc) if meter.format == "sml" else None
        self._dsmr: dsmr.DsmrFramer | None = None
        self._dsmr_decoder: dsmr.DsmrDecoder | None = None
        if meter.format == "dsmr":
            # dsmr_parser pulls in dlms_cosem and cryptography (~10 MB RSS): only DSMR meters pay.
            from . import dsmr as dsmr_module

            self._dsmr = dsmr_module.DsmrFramer()
            self._dsmr_decoder = dsmr_module.DsmrDecoder()
        self._iec = iec.IecFramer() if meter.format == "iec" else None

    def feed(self, chunk: bytes) -> list[DecodedFrame | FrameError]:
        framer = self._sml or self._dsmr or self._iec
        assert framer is not None
        out: list[DecodedFrame | FrameError] = []
        for item in framer.feed(chunk):
            if isinstance(item, FrameError):
                out.append(item)
                continue
            try:
                out.append(self.decode(item))
            except FrameError as exc:
                out.append(exc)
        return out

    def decode(self, raw: bytes) -> DecodedFrame:
        if self.format == "sml":
            return sml.decode_frame(raw)
        if self.format == "dsmr":
            assert self._dsmr_decoder is not None
            return self._dsmr_decoder.decode(raw)
        return iec.decode(raw)


class Meter:
    def __init__(self, ctx: ServiceContext[Config], config: MeterConfig, mapper: Mapper) -> None:
        self.ctx = ctx
        self.config = config
        self.mapper = mapper
        self.decoder = FrameDecoder(config)
        self.guard = EnergyGuard(config.max_power_w, config.energy_slack_wh)
        self.channel: DeviceChannel | None = None
        self.last_good = time.monotonic()
        self.log = ctx.log.child(config.key)
        self._logged: dict[str, float] = {}

    def _count(self, name: str, amount: int = 1) -> None:
        self.ctx.counters.inc(name, amount)
        self.ctx.counters.inc(f"{self.config.key}.{name}", amount)

    def _warn_limited(self, kind: str, message: str, **fields: object) -> None:
        now = time.monotonic()
        if now - self._logged.get(kind, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged[kind] = now
            self.log.warning(message, meter=self.config.key, **fields)

    def on_bytes(self, chunk: bytes) -> None:
        self._count("bytes_read", len(chunk))
        for item in self.decoder.feed(chunk):
            if isinstance(item, FrameError):
                self._count("frames_rejected")
                self._count(f"frames_rejected_{item.kind}")
                self._warn_limited(item.kind, "frame rejected", reason=str(item), port=self.config.port)
            else:
                self.publish(item)

    def on_link_error(self, error: FrameError) -> None:
        """A failed mode C exchange: counted like a bad frame; half a readout must not meet the next one."""
        self._count("frames_rejected")
        self._count(f"frames_rejected_{error.kind}")
        self._warn_limited(error.kind, "meter exchange failed", reason=str(error), port=self.config.port)
        self.decoder = FrameDecoder(self.config)

    def device_id(self, frame: DecodedFrame) -> tuple[str, str | None, str | None]:
        serial_no = frame.serial or self.config.serial
        maker = frame.manufacturer or self.config.manufacturer
        if serial_no:
            return topics.slug(maker, serial_no), maker, serial_no
        return topics.slug("meter", self.config.key), maker, None

    def publish(self, frame: DecodedFrame) -> None:
        device_id, maker, serial_no = self.device_id(frame)
        if self.channel is None or self.channel.device_id != device_id:
            self.channel = self.ctx.device(m.DeviceMeta(
                device_id=device_id, kind="meter", source=self.ctx.name, protocol=PROTOCOLS[frame.format],
                manufacturer=maker, model=frame.model, serial=serial_no, address=self.config.port,
                name=self.config.key))
            self.log.info("meter identified", meter=self.config.key, device_id=device_id, format=frame.format)
            self.ctx.clear_device_error(self.config.port)
        now = datetime.now(UTC)
        stamp = frame.timestamp if frame.timestamp and abs((frame.timestamp - now).total_seconds()) < 3600 else now
        mapped = self.mapper.reading(frame, device_id, stamp)
        for problem in mapped.problems:
            self._count("values_rejected")
            self._warn_limited("value", "value rejected", reason=problem)
        reading = self._guard_totals(mapped.reading)
        self.last_good = time.monotonic()
        self._count("frames_ok")
        self.channel.publish_reading(reading)

    def _guard_totals(self, reading: m.MeterReading) -> m.MeterReading:
        at = time.monotonic()
        withheld: dict[str, None] = {}
        for name in ENERGY_FIELDS:
            value = getattr(reading, name)
            if value is None:
                continue
            ok, message = self.guard.check(name, value, at)
            if not ok:
                withheld[name] = None
                self._count("totals_rejected")
                self.log.warning("energy total rejected", meter=self.config.key, field=name, reason=message)
            elif message:
                self.log.warning("energy total re-based", meter=self.config.key, field=name, reason=message)
        return msgspec.structs.replace(reading, **withheld) if withheld else reading

    async def watchdog(self) -> None:
        while await self.ctx.sleep(1.0):
            if self.channel is not None and time.monotonic() - self.last_good > self.config.offline_after_s:
                self.channel.set_online(False)

    def connection_failed(self, conn: Connection, exc: BaseException, retry_s: float) -> None:
        """A port that never opened says so (a wrong path, no permission, a busy port), not "lost";
        the reason also goes on the bus (the service's device_errors) so the UI can show it."""
        port = self.config.port
        if conn.opened:
            self._warn_limited("connection", "meter connection lost", port=port, error=str(exc), retry_s=retry_s)
            reason = f"connection to {port} lost: {exc}"
        else:
            # pyserial's text repeats the port and the errno ("[Errno 2] could not open port X: [Errno 2] ...")
            errno = getattr(exc, "errno", None)
            reason = f"cannot open {port}: {os.strerror(errno) if isinstance(errno, int) else exc}"
            self._warn_limited("open", reason, port=port, error=str(exc), retry_s=retry_s)
        if self.channel is not None:
            self.channel.set_error(reason)
        else:  # never read a frame: no device id yet, so it is reported by its port
            self.ctx.device_error(port, reason, name=self.config.key)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        watchdog = asyncio.create_task(self.watchdog())
        backoff = 1.0
        try:
            while not self.ctx.stopping.is_set():
                def sink(chunk: bytes) -> None:  # called in the reader thread
                    loop.call_soon_threadsafe(self.on_bytes, chunk)

                def on_error(error: FrameError) -> None:  # called in the reader thread
                    loop.call_soon_threadsafe(self.on_link_error, error)

                conn = Connection(self.config, sink, on_error)
                started = time.monotonic()
                try:
                    self.log.info("opening", meter=self.config.key, port=self.config.port)
                    await run_connection(conn)
                    if self.config.port.startswith("file://"):
                        return
                except (serial.SerialException, OSError, ValueError) as exc:
                    self._count("connection_errors")
                    self.connection_failed(conn, exc, backoff)
                if time.monotonic() - started > 30:
                    backoff = 1.0
                if not await self.ctx.sleep(backoff):
                    return
                backoff = min(backoff * 2, 30.0)
        finally:
            watchdog.cancel()
