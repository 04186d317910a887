"""Byte sources for a meter: a serial device or network serial bridge (pyserial), or a capture file.

pyserial is blocking, so every meter gets one reader thread; chunks go to the event loop as they
arrive (a frame is decoded the moment its last byte is in: no polling delay). A pulled cable or a
vanished /dev/ttyUSB0 ends the connection; the meter loop opens it again with a backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

import serial

from . import iec
from .config import MeterConfig
from .values import FrameError

Sink = Callable[[bytes], None]
ErrorSink = Callable[[FrameError], None]
RESPONSE_S = 1.5  # IEC 62056-21 tr and inter-character timeout maximum
SLACK_S = 2.0  # a loaded Raspberry Pi or a WiFi IR head adds latency
IDENT_MAX = 40  # `/MMMZ` + 16 identification characters + CR LF, with room for escape sequences


def char_time(baud: int) -> float:
    return 10 / baud  # 7E1: start, 7 data, parity, stop


def load_capture(path: Path) -> bytes:
    """A capture file: raw bytes, or hex text (`.hex`, with `#` comment lines) as dumps are published."""
    data = path.read_bytes()
    if path.suffix.lower() == ".hex":
        text = "".join(line for line in data.decode("ascii", errors="replace").splitlines()
                       if not line.lstrip().startswith("#"))
        return bytes.fromhex("".join(text.split()))
    return data


class Connection:
    """One open source; `run()` blocks in the reader thread until the source ends or `stop()`."""

    def __init__(self, meter: MeterConfig, sink: Sink, on_error: ErrorSink | None = None) -> None:
        self.meter = meter
        self.sink = sink
        self.on_error: ErrorSink = on_error or (lambda error: None)  # link-level faults (mode C exchange)
        self._stop = threading.Event()
        self._port: serial.SerialBase | None = None
        self.opened = False  # the port (or file) opened: a later error is a lost connection, not a failed open

    def stop(self) -> None:
        self._stop.set()
        port = self._port
        if port is not None and hasattr(port, "cancel_read"):
            port.cancel_read()

    def run(self) -> None:
        if self.meter.port.startswith("file://"):
            self._replay(Path(self.meter.port[len("file://"):]))
            return
        baud, size, parity, stop = self.meter.serial_settings()
        port = serial.serial_for_url(self.meter.port, baudrate=baud, bytesize=size, parity=parity,
                                     stopbits=stop, timeout=0.5, do_not_open=False)
        self._port = port
        self.opened = True
        try:
            if self.meter.format == "iec" and self.meter.iec_mode == "c":
                self._mode_c(port)
            else:
                self._stream(port)
        finally:
            self._port = None
            port.close()

    def _stream(self, port: serial.SerialBase) -> None:
        while not self._stop.is_set():
            first = port.read(1)  # blocks up to the timeout; returns as soon as a byte is there
            if first:
                self.sink(first + port.read(port.in_waiting))

    def _mode_c(self, port: serial.SerialBase) -> None:
        """Sign on at the start baud rate, accept the meter's offer, read the readout, repeat.

        After every readout (or a failed exchange) the meter is back at its start rate, so each
        cycle begins there. A noisy or missing answer is reported and the next cycle tries again.
        """
        baud = port.baudrate
        request = iec.sign_on(self.meter.iec_address)
        while not self._stop.is_set():
            set_baudrate(port, baud)
            port.reset_input_buffer()
            port.write(self._line_bytes(request))
            try:
                self._mode_c_exchange(port, baud)
            except FrameError as exc:
                self.on_error(exc)
            self._stop.wait(self.meter.iec_request_interval_s)

    def _mode_c_exchange(self, port: serial.SerialBase, baud: int) -> None:
        # The answer comes within tr (200-1500 ms) and then takes its own length at the start rate
        # (an identification at 300 baud is most of a second); slack for a loaded host on top.
        answer = self._read_until(port, b"\n", RESPONSE_S + IDENT_MAX * char_time(baud) + SLACK_S, IDENT_MAX)
        if not answer:
            raise FrameError(f"no identification from the meter on {self.meter.port} after sign-on", "timeout")
        ident = iec.check_ident(answer)
        ack, rate = iec.option_select(ident, baud, self.meter.iec_baud_switch)
        port.write(self._line_bytes(ack))
        port.flush()  # all of the acknowledgement out at the old rate before we switch
        set_baudrate(port, rate)
        self.sink(ident)
        # The readout: from tr after the acknowledgement, characters at most 1500 ms apart (inter-
        # character timeout); ETX and the block check character end it.
        cap = time.monotonic() + RESPONSE_S + iec.MAX_READOUT * char_time(rate) + SLACK_S
        last = time.monotonic()
        after_etx = False
        while not self._stop.is_set():
            chunk = port.read(max(1, port.in_waiting))
            now = time.monotonic()
            if chunk:
                last = now
                etx = chunk.find(b"\x03") if not after_etx else 0
                if after_etx or etx != -1:
                    end = 1 if after_etx else etx + 2  # ETX then one BCC byte
                    if len(chunk) >= end:
                        self.sink(chunk[:end])
                        return
                    after_etx = True
                self.sink(chunk)
            elif now - last > RESPONSE_S + SLACK_S or now > cap:
                raise FrameError(f"mode C readout from {self.meter.port} stopped before ETX", "timeout")

    def _line_bytes(self, data: bytes) -> bytes:
        """A 7E1 request sent through an 8N1 port (ser2net, WiFi heads, ptys): the parity as bit 7."""
        if self.meter.serial_settings()[1:3] != (8, "N"):
            return data
        return bytes(b | 0x80 if b.bit_count() % 2 else b for b in data)

    def _read_until(self, port: serial.SerialBase, end: bytes, seconds: float, limit: int) -> bytes:
        deadline = time.monotonic() + seconds
        data = b""
        while not self._stop.is_set() and time.monotonic() < deadline and len(data) < limit:
            data += port.read_until(end, limit - len(data))  # returns at `end` or after port.timeout
            if data.endswith(end):
                break
        return data

    def _replay(self, path: Path) -> None:
        data = load_capture(path)
        self.opened = True
        baud, size, parity, stop = self.meter.serial_settings()
        bits_per_byte = 1 + size + (parity != "N") + stop
        chunk = 64
        while not self._stop.is_set():
            for offset in range(0, len(data), chunk):
                if self._stop.wait(chunk * bits_per_byte / baud):  # the line's real pacing
                    return
                self.sink(data[offset: offset + chunk])
            if not self.meter.replay_loop:
                self._stop.wait()
                return


def set_baudrate(port: serial.SerialBase, baud: int) -> None:
    """Change the rate mid-session; a driver refusing it (termios.error) is a connection failure."""
    try:
        port.baudrate = baud
    except termios.error as exc:
        raise serial.SerialException(f"{port.port}: cannot switch to {baud} baud: {exc}") from exc


async def run_connection(conn: Connection) -> None:
    """Run the blocking reader in its own thread; stop it when the awaiting task is cancelled."""
    loop = asyncio.get_running_loop()
    thread_done: asyncio.Future[None] = loop.create_future()

    def target() -> None:
        error: BaseException | None = None
        try:
            conn.run()
        except (serial.SerialException, OSError, ValueError) as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed first (a stop): nobody waits for this any more
            loop.call_soon_threadsafe(_finish, thread_done, error)

    threading.Thread(target=target, name=f"meter-{conn.meter.key}", daemon=True).start()
    try:
        await asyncio.shield(thread_done)
    except asyncio.CancelledError:
        conn.stop()
        raise


def _finish(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
