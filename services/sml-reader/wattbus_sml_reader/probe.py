"""`probe_device`: listen to a meter until its first good frame (the setup page's "add by hand"
check), with the same connection, framers, decoders and OBIS mapping the reader uses. A meter
pushes every 1-10 s (IEC mode C answers a request at 300 baud), so the wait is per format."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import serial
from wattbus import messages as m
from wattbus import topics
from wattbus.config import ConfigError, convert
from wattbus.runner import ServiceContext

from .config import Config, MeterConfig
from .mapping import Mapper
from .meter import PROTOCOLS, FrameDecoder
from .transport import Connection, run_connection
from .values import DecodedFrame, FrameError

WAIT_S = {"sml": 12.0, "dsmr": 15.0, "iec": 40.0}  # a little over each format's slowest push/readout


async def _first_frame(cfg: MeterConfig, rejected: list[str]) -> DecodedFrame | None:
    """The first frame that decodes; None when the source ended or the wait ran out."""
    loop = asyncio.get_running_loop()
    decoder = FrameDecoder(cfg)
    first: asyncio.Future[DecodedFrame] = loop.create_future()

    def on_bytes(chunk: bytes) -> None:
        for item in decoder.feed(chunk):
            if isinstance(item, FrameError):
                rejected.append(f"{item.kind}: {item}")
            elif not first.done():
                first.set_result(item)

    def sink(chunk: bytes) -> None:  # called in the reader thread
        loop.call_soon_threadsafe(on_bytes, chunk)

    def on_error(error: FrameError) -> None:  # called in the reader thread (mode C exchange)
        loop.call_soon_threadsafe(rejected.append, f"{error.kind}: {error}")

    conn = Connection(cfg, sink, on_error)
    reader: asyncio.Future[None] = asyncio.ensure_future(run_connection(conn))
    try:
        waiting: set[asyncio.Future[object]] = {first, reader}  # type: ignore[arg-type]
        done, _ = await asyncio.wait(waiting, timeout=WAIT_S[cfg.format], return_when=asyncio.FIRST_COMPLETED)
        if first in done:
            return first.result()
        if reader in done:
            reader.result()  # raises the connection's error (port missing, refused, ...)
        return None
    finally:
        conn.stop()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def probe(ctx: ServiceContext[Config], command: m.CommandBase) -> m.CommandResult:
    assert isinstance(command, m.ProbeDevice)
    try:
        cfg = convert(f"{ctx.name}.meters", dict(command.entry), MeterConfig, dict.fromkeys(command.entry, "probe"))
    except ConfigError as exc:
        ctx.counters.inc("probes_invalid")
        return m.CommandResult(status="invalid", message=str(exc))
    rejected: list[str] = []
    try:
        frame = await _first_frame(cfg, rejected)
    except (serial.SerialException, OSError, ValueError) as exc:
        ctx.counters.inc("probes_failed")
        return m.CommandResult(status="failed", message=f"{cfg.port}: cannot read it ({exc})")
    if frame is None:
        ctx.counters.inc("probes_failed")
        seen = f"; {len(rejected)} frame(s) rejected, last: {rejected[-1]}" if rejected else "; no bytes at all"
        return m.CommandResult(status="failed", message=f"{cfg.port}: no good {cfg.format} frame within "
                               f"{WAIT_S[cfg.format]:g} s{seen} (wrong format, baud rate or port?)")
    serial_no = frame.serial or cfg.serial
    maker = frame.manufacturer or cfg.manufacturer
    device_id = topics.slug(maker, serial_no) if serial_no else topics.slug("meter", cfg.key)
    mapped = Mapper().reading(frame, device_id, frame.timestamp or datetime.now(UTC))
    meta = m.DeviceMeta(device_id=device_id, kind="meter", source=ctx.name, protocol=PROTOCOLS[frame.format],
                        manufacturer=maker, model=frame.model, serial=serial_no, address=cfg.port, name=cfg.key)
    problems = [*rejected, *mapped.problems]
    note = f" ({len(problems)} problem(s), first: {problems[0]})" if problems else ""
    return m.CommandResult(status="ok", devices=[meta], readings=[mapped.reading],
                           message=f"{cfg.port}: {cfg.format} meter {serial_no or cfg.key} answered{note}")
