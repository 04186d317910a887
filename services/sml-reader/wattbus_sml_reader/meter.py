"""One meter as the bridge toolkit's push adapter: bytes -> frames -> readings.

The serial line (or network head, or capture file) runs in its reader thread for as long as it
delivers; every chunk is framed, decoded, mapped and guarded the moment it arrives, and the
readings wait in a queue for the poller's `read`. A line that fails or ends is the failed read
(the poller backs off, 1 s doubling to 30 s, before it is opened again); no good frame within
`offline_after_s` is one too (the device goes offline), and the next good frame brings it back.
"""

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
from wattbus.bridge import answer
from wattbus.counters import Counters
from wattbus.runner import ServiceContext

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
RETRY_S, MAX_RETRY_S = 1.0, 30.0  # reopening a failed line: the poller's backoff from 1 s to 30 s


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


class MeterDown(Exception):
    """The line failed or fell silent: no reading this time (the reason names port and cause)."""


class Meter:
    """The toolkit `Adapter` of one meter (push: `read` waits for the meter's next frames)."""

    commands: tuple[type[m.CommandBase], ...] = ()
    errors: tuple[type[Exception], ...] = (MeterDown,)

    def __init__(self, ctx: ServiceContext[Config], config: MeterConfig, mapper: Mapper, *,
                 probe: bool = False) -> None:
        self.ctx = ctx
        self.config = config
        # A probe (the setup page's check of an entry not saved yet) counts on its own and reports
        # nothing in the service status: the meter is not the service's yet.
        self.probe = probe
        self.counters = Counters() if probe else ctx.counters
        self.last_rejection: str | None = None
        self.problems: list[str] = []  # values the mapping dropped
        self.mapper = mapper
        self.decoder = FrameDecoder(config)
        self.guard = EnergyGuard(config.max_power_w, config.energy_slack_wh)
        self.metas: list[m.DeviceMeta] = []
        self.log = ctx.log.child(config.key)
        self.readings: asyncio.Queue[m.MeterReading] = asyncio.Queue()
        self._conn: Connection | None = None
        self._line: asyncio.Task[None] | None = None
        self._logged: dict[str, float] = {}
        self._held: m.MeterReading | None = None  # the frame identify waited for: the first read's
        self._ended = False  # a capture replayed once has nothing more to say

    def _count(self, name: str, amount: int = 1) -> None:
        self.counters.inc(name, amount)
        self.counters.inc(f"{self.config.key}.{name}", amount)

    def _warn_limited(self, kind: str, message: str, **fields: object) -> None:
        now = time.monotonic()
        if now - self._logged.get(kind, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged[kind] = now
            self.log.warning(message, meter=self.config.key, **fields)

    # ------------------------------------------------------------------ the adapter

    async def identify(self) -> list[m.DeviceMeta]:
        """The meter says who it is in its frames: the first good one names the device."""
        self._held = await self._next()
        return self.metas

    async def read(self) -> list[m.ReadingBase]:
        held, self._held = self._held, None
        readings: list[m.ReadingBase] = [held if held is not None else await self._next()]
        while not self.readings.empty():  # frames that came while the last ones were published
            readings.append(self.readings.get_nowait())
        return readings

    async def execute(self, command: m.CommandBase) -> m.CommandResult:
        device_id = self.metas[0].device_id if self.metas else self.config.key
        return answer(command, device_id, "refused", f"{device_id}: a meter takes no commands")

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.stop()
        if self._line is not None:
            self._line.cancel()
            await asyncio.gather(self._line, return_exceptions=True)
        self._conn = self._line = None

    async def _next(self) -> m.MeterReading:
        if self.readings.empty():
            self._open()
        line = self._line
        waiting = asyncio.ensure_future(self.readings.get())
        try:
            pending: set[asyncio.Future[object]] = {waiting}  # type: ignore[arg-type]
            if line is not None:
                pending.add(line)  # type: ignore[arg-type]
            done, _ = await asyncio.wait(pending, timeout=self.config.offline_after_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not waiting.done():
                waiting.cancel()
        if waiting in done:
            return waiting.result()
        if line is not None and line in done:
            self._line = None
            error = line.exception()
            self._ended = error is None and self.config.port.startswith("file://")
            raise MeterDown(self.connection_failed(error) if error is not None else f"{self.config.port} ended")
        raise MeterDown(f"no good {self.config.format} frame from {self.config.port} within "
                        f"{self.config.offline_after_s:g} s")

    def _open(self) -> None:
        """Start the line's reader thread unless it runs (a capture that ended stays ended)."""
        if self._line is not None or self._ended:
            return
        loop = asyncio.get_running_loop()

        def sink(chunk: bytes) -> None:  # called in the reader thread
            loop.call_soon_threadsafe(self.on_bytes, chunk)

        def on_error(error: FrameError) -> None:  # called in the reader thread
            loop.call_soon_threadsafe(self.on_link_error, error)

        self._conn = Connection(self.config, sink, on_error)
        self.log.info("opening", meter=self.config.key, port=self.config.port)
        self._line = asyncio.create_task(self._run_line(self._conn), name=f"meter-{self.config.key}")

    async def _run_line(self, conn: Connection) -> None:
        try:
            await run_connection(conn)
        except (serial.SerialException, OSError, ValueError):
            self._count("connection_errors")
            raise

    # ------------------------------------------------------------------ bytes to readings

    def on_bytes(self, chunk: bytes) -> None:
        self._count("bytes_read", len(chunk))
        for item in self.decoder.feed(chunk):
            if isinstance(item, FrameError):
                self._count("frames_rejected")
                self._count(f"frames_rejected_{item.kind}")
                self.last_rejection = f"{item.kind}: {item}"
                self._warn_limited(item.kind, "frame rejected", reason=str(item), port=self.config.port)
            else:
                self.readings.put_nowait(self.reading(item))

    def on_link_error(self, error: FrameError) -> None:
        """A failed mode C exchange: counted like a bad frame; half a readout must not meet the next one."""
        self._count("frames_rejected")
        self._count(f"frames_rejected_{error.kind}")
        self.last_rejection = f"{error.kind}: {error}"
        self._warn_limited(error.kind, "meter exchange failed", reason=str(error), port=self.config.port)
        self.decoder = FrameDecoder(self.config)

    def device_id(self, frame: DecodedFrame) -> tuple[str, str | None, str | None]:
        serial_no = frame.serial or self.config.serial
        maker = frame.manufacturer or self.config.manufacturer
        if serial_no:
            return topics.slug(maker, serial_no), maker, serial_no
        return topics.slug("meter", self.config.key), maker, None

    def reading(self, frame: DecodedFrame) -> m.MeterReading:
        """The frame as a reading, stamped and guarded as it arrives; a new identity becomes the meta."""
        device_id, maker, serial_no = self.device_id(frame)
        if not self.metas or self.metas[0].device_id != device_id:
            self.metas = [m.DeviceMeta(
                device_id=device_id, kind="meter", source=self.ctx.name, protocol=PROTOCOLS[frame.format],
                manufacturer=maker, model=frame.model, serial=serial_no, address=self.config.port,
                name=self.config.key)]
            self.log.info("meter identified", meter=self.config.key, device_id=device_id, format=frame.format)
            if not self.probe:
                self.ctx.clear_device_error(self.config.port)
        now = datetime.now(UTC)
        stamp = frame.timestamp if frame.timestamp and abs((frame.timestamp - now).total_seconds()) < 3600 else now
        mapped = self.mapper.reading(frame, device_id, stamp)
        self.problems += mapped.problems
        for problem in mapped.problems:
            self._count("values_rejected")
            self._warn_limited("value", "value rejected", reason=problem)
        self._count("frames_ok")
        return self._guard_totals(mapped.reading)

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

    def connection_failed(self, exc: BaseException) -> str:
        """Why the line is down, as the service status shows it: a port that never opened says so
        (a wrong path, no permission, a busy port), not "lost". Before the first frame there is no
        device id, so the reason is reported by port."""
        port = self.config.port
        if self._conn is not None and self._conn.opened:
            reason = f"connection to {port} lost: {exc}"
        else:
            # pyserial's text repeats the port and the errno ("[Errno 2] could not open port X: [Errno 2] ...")
            errno = getattr(exc, "errno", None)
            reason = f"cannot open {port}: {os.strerror(errno) if isinstance(errno, int) else exc}"
        if not self.metas and not self.probe:
            self.ctx.device_error(port, reason, name=self.config.key)
        return reason
