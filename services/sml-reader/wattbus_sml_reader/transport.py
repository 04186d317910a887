"""Byte sources for a meter: a serial device or network serial bridge (pyserial), or a capture file.

pyserial is blocking, so every meter gets one reader thread; chunks go to the event loop as they
arrive (a frame is decoded the moment its last byte is in: no polling delay). A pulled cable or a
vanished /dev/ttyUSB0 ends the connection; the meter loop opens it again with a backoff.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import serial

from .config import MeterConfig
from .iec import SIGN_ON, baud_from_ident

Sink = Callable[[bytes], None]


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

    def __init__(self, meter: MeterConfig, sink: Sink) -> None:
        self.meter = meter
        self.sink = sink
        self._stop = threading.Event()
        self._port: serial.SerialBase | None = None

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
        """Sign on at the start baud rate, accept the meter's offer, read the readout, repeat."""
        baud = port.baudrate
        while not self._stop.is_set():
            port.baudrate = baud
            port.reset_input_buffer()
            port.write(SIGN_ON)
            ident = port.read_until(b"\n")
            if ident.startswith(b"/"):
                self.sink(ident)
                offered = baud_from_ident(ident)
                if self.meter.iec_baud_switch and offered is not None:
                    port.write(b"\x06" + b"0" + ident[4:5] + b"0\r\n")  # data readout at the offered rate
                    port.flush()
                    time.sleep(0.25)  # the meter switches about 200 ms after the acknowledgement
                    port.baudrate = offered
                else:
                    port.write(b"\x060" + b"0" + b"0\r\n")
                deadline = time.monotonic() + 10.0
                while not self._stop.is_set() and time.monotonic() < deadline:
                    chunk = port.read(max(1, port.in_waiting))
                    if chunk:
                        self.sink(chunk)
                        if b"\x03" in chunk:
                            self.sink(port.read(1))  # the block check character after ETX
                            break
            self._stop.wait(self.meter.iec_request_interval_s)

    def _replay(self, path: Path) -> None:
        data = load_capture(path)
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
