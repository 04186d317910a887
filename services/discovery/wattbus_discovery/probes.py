"""Protocol-level probes over one open TCP connection each. They only read.

A probe returns what the device told about itself; a port that is open but speaks something else
returns nothing (and the reason is counted), so an open port is never mistaken for a device.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from wattbus import apsystems, givenergy, sunspec
from wattbus.counters import Counters
from wattbus.log import Logger

from . import modbus_wire as mw
from .found import Found


@dataclass(frozen=True, slots=True)
class ProbeTimeouts:
    answer_s: float
    ecu_answer_s: float


class ModbusLink:
    """Sequential reads on one Modbus TCP connection; stale answers (after a timeout) are skipped
    by transaction id instead of being taken for the next answer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.transaction = 0

    async def read(self, unit: int, address: int, count: int, timeout: float) -> mw.Answer | None:
        self.transaction = (self.transaction + 1) & 0xFFFF
        self.writer.write(mw.read_request(self.transaction, unit, address, count))
        await self.writer.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return None
            try:
                header = await asyncio.wait_for(self.reader.readexactly(7), left)
                body = await asyncio.wait_for(self.reader.readexactly(mw.mbap_length(header)), max(left, 0.05))
            except TimeoutError:
                return None
            answer = mw.parse_answer(header, body)
            if answer.transaction == self.transaction:
                return answer


async def probe_sunspec(link: ModbusLink, host: str, port: int, units: list[int], bases: list[int],
                        timeout: float, counters: Counters) -> list[Found]:
    """Every configured unit id that answers with the SunSpec marker and a common model."""
    found: list[Found] = []
    for unit in units:
        for base in bases:
            answer = await link.read(unit, base, 2, timeout)
            if answer is None:
                counters.inc("modbus_unit_timeouts")
                break  # a unit that does not answer at all will not answer at another base
            if answer.exception is not None:
                if answer.exception in (0x0A, 0x0B):
                    break  # gateway: no device behind this unit id
                continue
            if not sunspec.is_marker(answer.registers):
                counters.inc("modbus_not_sunspec")
                continue
            device = await _sunspec_identity(link, host, port, unit, base, timeout, counters)
            if device is not None:
                found.append(device)
            break
    return found


async def _sunspec_identity(link: ModbusLink, host: str, port: int, unit: int, base: int, timeout: float,
                            counters: Counters) -> Found | None:
    head = await link.read(unit, base + 2, 2, timeout)
    if head is None or head.exception is not None or len(head.registers) != 2:
        counters.inc("sunspec_bad_common")
        return None
    model_id, length = head.registers
    if model_id != sunspec.COMMON_MODEL or length not in sunspec.COMMON_LENGTHS:
        counters.inc("sunspec_bad_common")
        return None
    body = await link.read(unit, base + 4, length, timeout)
    if body is None or body.exception is not None or len(body.registers) != length:
        counters.inc("sunspec_bad_common")
        return None
    common = sunspec.decode_common(body.registers)
    models = await _model_chain(link, unit, base + 4 + length, timeout)
    return Found("sunspec", host, port, common.serial, common.manufacturer, common.model, sunspec.kind_of(models),
                 unit, common.version, extra={"models": ",".join(str(mid) for mid in models), "base": base})


async def _model_chain(link: ModbusLink, unit: int, at: int, timeout: float, limit: int = 40) -> list[int]:
    """Model ids after the common model, from their ID/L headers only (the kind comes from them)."""

    async def read(address: int, count: int) -> tuple[int, ...] | None:
        answer = await link.read(unit, address, count, timeout)
        return None if answer is None or answer.exception is not None else answer.registers

    return [block.model_id for block in await sunspec.model_chain(read, at, limit)]


async def probe_8899(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int,
                     timeouts: ProbeTimeouts, counters: Counters, log: Logger) -> Found | None:
    """ECU info query first (a GivEnergy dongle ignores ASCII and resynchronises on its marker;
    an ECU would take dongle bytes as the start of a bad query and hang up), then the dongle read."""
    writer.write(apsystems.info_query())
    await writer.drain()
    data = await _read_some(reader, timeouts.ecu_answer_s, until=apsystems.SUFFIX, stop_prefix=givenergy.MARKER)
    if data.startswith(apsystems.PREFIX):
        return _ecu(data, host, port, counters, log)
    if not data.startswith(givenergy.MARKER):
        if data:
            counters.inc("port8899_unknown")
            return None  # it said something, and neither an ECU nor a dongle would say that
        writer.write(givenergy.detect_request())
        await writer.drain()
    stream = givenergy.FrameStream(from_dongle=True)
    received, chunk = data, data
    adapter: str | None = None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeouts.answer_s
    while loop.time() < deadline:
        for frame, _raw in stream.feed(chunk):
            if isinstance(frame, givenergy.Heartbeat):
                adapter = frame.adapter_serial or adapter
                # the echo keeps the dongle from dropping us mid-probe
                writer.write(givenergy.encode_heartbeat(frame.adapter_serial, frame.adapter_type))
            elif isinstance(frame, givenergy.ReadResponse):
                ident = givenergy.identity(frame)
                return Found("givenergy", host, port, ident.inverter_serial, "GivEnergy", None, "inverter",
                             extra={"adapter_serial": ident.adapter_serial or adapter,
                                    "device_type": f"{ident.device_type:04x}" if ident.device_type is not None
                                    else None})
            elif not isinstance(frame, givenergy.FrameError) or frame.reason != "garbage":
                counters.inc("giv_answers_rejected")
                log.warning("GivEnergy dongle answer rejected", host=host, port=port, error=_why(frame))
        chunk = await _read_some(reader, deadline - loop.time())
        if not chunk:
            break
        received += chunk
        if received.startswith(apsystems.PREFIX) and received.endswith(apsystems.SUFFIX):
            return _ecu(received, host, port, counters, log)  # a slow ECU answering after our wait
    if adapter:
        counters.inc("giv_dongle_without_inverter")
    else:
        counters.inc("port8899_unknown")
    return None


def _why(frame: givenergy.Frame | givenergy.FrameError) -> str:
    if isinstance(frame, givenergy.ErrorResponse):
        return f"the inverter refused the read (address {frame.address:#04x}, function {frame.function})"
    return str(frame) if isinstance(frame, givenergy.FrameError) else f"unexpected {type(frame).__name__}"


def _ecu(data: bytes, host: str, port: int, counters: Counters, log: Logger) -> Found | None:
    try:
        info = apsystems.decode_info(data)
    except apsystems.EcuFrameError as exc:
        counters.inc("ecu_answers_rejected")
        log.warning("port 8899 answers APS but not a valid ECU info answer", host=host, port=port, error=str(exc))
        return None
    return Found("aps-ecu", host, port, info.ecu_id, "APsystems", info.model, "gateway", firmware=info.firmware,
                 extra={"layout": info.layout, "inverters": info.inverters_total})


async def _read_some(reader: asyncio.StreamReader, timeout: float, until: bytes | None = None,
                     stop_prefix: bytes | None = None) -> bytes:
    """Bytes that arrive within timeout; with `until`, keep reading to that terminator."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(timeout, 0.0)
    data = b""
    while len(data) < 4096:
        left = deadline - loop.time()
        if left <= 0:
            break
        try:
            chunk = await asyncio.wait_for(reader.read(4096), left)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
        if until is None or data.endswith(until) or (stop_prefix and data.startswith(stop_prefix)):
            break
        if not data.startswith(apsystems.PREFIX[:len(data)]):
            break  # not an ECU answer; let the caller judge what it is
    return data


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 1.0)
