"""An asyncio connection to one GivEnergy dongle: requests, answers, heartbeats, rejections.

The dongle serves one request at a time and forwards every answer to every connected client,
so answers are matched by (address, function, register) and anything unasked-for is counted
and dropped. Heartbeats are echoed at once from the reader task, even while a request waits.
"""

from __future__ import annotations

import asyncio
import contextlib

from wattbus import givenergy as f
from wattbus.counters import Counters
from wattbus.log import Logger


class DongleError(Exception):
    """The dongle did not answer usefully (timeout, exception response, lost connection)."""


class Dongle:
    def __init__(self, host: str, port: int, counters: Counters, log: Logger, *, timeout_s: float = 5.0,
                 retries: int = 2, adapter_serial: str = "AB1234G567") -> None:
        self.host, self.port = host, port
        self.counters = counters
        self.log = log
        self.timeout_s = timeout_s
        self.retries = retries
        self.adapter_serial = adapter_serial
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._pending: dict[tuple[int, int, int], asyncio.Future[f.Frame]] = {}

    @property
    def connected(self) -> bool:
        return self._writer is not None and self._task is not None and not self._task.done()

    async def connect(self) -> None:
        await self.close()
        try:
            reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout_s)
        except (OSError, TimeoutError) as exc:
            raise DongleError(f"cannot connect to {self.host}:{self.port} ({exc!r})") from exc
        self._task = asyncio.create_task(self._read_loop(reader), name=f"giv-{self.host}:{self.port}")
        self.counters.inc("dongle_connects")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._writer = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(DongleError("connection closed"))
        self._pending.clear()

    # ------------------------------------------------------------------ requests

    async def read(self, address: int, function: int, base: int, count: int) -> f.ReadResponse:
        frame = await self._request((address, function, base), f.encode_read(address, function, base, count,
                                                                             self.adapter_serial))
        if not isinstance(frame, f.ReadResponse) or len(frame.values) != count:
            raise DongleError(f"address {address:#04x} answered {frame!r} to a read of {base}+{count}")
        return frame

    async def write(self, address: int, register: int, value: int) -> f.WriteResponse:
        frame = await self._request((address, f.WRITE_SINGLE, register),
                                    f.encode_write(address, register, value, self.adapter_serial))
        if not isinstance(frame, f.WriteResponse):
            raise DongleError(f"address {address:#04x} answered {frame!r} to a write of {register}")
        return frame

    async def _request(self, key: tuple[int, int, int], raw: bytes) -> f.Frame:
        async with self._lock:
            last: Exception | None = None
            for _attempt in range(self.retries + 1):
                if not self.connected:
                    await self.connect()
                future: asyncio.Future[f.Frame] = asyncio.get_running_loop().create_future()
                self._pending[key] = future
                try:
                    assert self._writer is not None
                    self._writer.write(raw)
                    await self._writer.drain()
                    frame = await asyncio.wait_for(future, self.timeout_s)
                except TimeoutError:
                    self.counters.inc("request_timeouts")
                    last = DongleError(f"no answer to {key} within {self.timeout_s:g} s")
                    continue
                except (OSError, DongleError) as exc:
                    self.counters.inc("request_errors")
                    last = exc
                    await self.close()
                    continue
                finally:
                    self._pending.pop(key, None)
                if isinstance(frame, f.ErrorResponse):
                    self.counters.inc("exception_responses")
                    raise DongleError(f"address {key[0]:#04x} refused function {key[1]} register {key[2]}")
                return frame
            raise DongleError(str(last))

    # ------------------------------------------------------------------ reader task

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        stream = f.FrameStream(from_dongle=True)
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    self.log.warning("dongle closed the connection", host=self.host, port=self.port)
                    break
                for frame, raw in stream.feed(data):
                    self._handle(frame, raw)
        except OSError as exc:
            self.log.warning("dongle connection lost", host=self.host, error=repr(exc))
        finally:
            self.counters.inc("dongle_disconnects")
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(DongleError("connection closed"))

    def _handle(self, frame: f.Frame | f.FrameError, raw: bytes) -> None:
        if isinstance(frame, f.FrameError):
            self.reject(frame.reason, frame.detail, raw)
            return
        if isinstance(frame, f.Heartbeat):
            # Echo it at once: the dongle drops clients that miss heartbeats.
            if self._writer is not None:
                self._writer.write(raw)
            self.counters.inc("heartbeats_echoed")
            return
        if isinstance(frame, f.ReadRequest | f.WriteRequest):
            self.reject("unexpected_request", "the dongle sent a request frame", raw)
            return
        match frame:
            case f.ReadResponse() | f.ErrorResponse():
                key = (frame.address, frame.function, frame.base)
            case f.WriteResponse():
                key = (frame.address, f.WRITE_SINGLE, frame.register)
        future = self._pending.get(key)
        if future is None or future.done():
            self.counters.inc("unsolicited_frames")  # another client's answer, broadcast by the dongle
            return
        future.set_result(frame)

    def reject(self, reason: str, detail: str, raw: bytes) -> None:
        total = self.counters.inc("frames_rejected")
        self.counters.inc(f"frames_rejected_{reason}")
        if total <= 20 or total % 100 == 0:
            self.log.warning("frame rejected", reason=reason, detail=detail, host=self.host,
                             frame=raw[:64].hex(), rejected_total=total)
