"""The ECU's TCP client: one connection at a time, a fresh connection per command, a pause for the
ECU between command and answer, and an answer read by its length field (never by guessing)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from wattbus import apsystems


class EcuConnectionError(OSError):
    """The ECU could not be reached or did not answer in time; str() names host and step."""


class EcuUnreachable(EcuConnectionError):
    """Nothing accepted the connection (refused, no route): the ECU is off, booting or elsewhere."""


class EcuBusy(EcuConnectionError):
    """The ECU closed the connection without a byte: it serves one client at a time."""


@dataclass(frozen=True, slots=True)
class Timing:
    answer_delay_s: float = 5.0
    pause_between_commands_s: float = 1.0
    timeout_s: float = 15.0


class EcuClient:
    def __init__(self, host: str, port: int, timing: Timing) -> None:
        self.host, self.port, self.timing = host, port, timing
        # ECUs accept one client at a time; every command of this client goes through the lock.
        self._lock = asyncio.Lock()
        self._last_close = 0.0

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    async def ask(self, query: bytes, command: str) -> bytes:
        """Send one query on its own connection and return the validated raw answer. An ECU busy
        with another client (a discovery probe, a second integration) gets one more try after the
        time that client's command takes."""
        try:
            return await self._ask_once(query, command)
        except EcuBusy:
            await asyncio.sleep(self.timing.answer_delay_s + self.timing.pause_between_commands_s)
            return await self._ask_once(query, command)

    async def _ask_once(self, query: bytes, command: str) -> bytes:
        async with self._lock:
            loop = asyncio.get_running_loop()
            wait = self._last_close + self.timing.pause_between_commands_s - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                return await asyncio.wait_for(self._exchange(query, command), self.timing.timeout_s
                                              + self.timing.answer_delay_s)
            except TimeoutError as exc:
                raise EcuConnectionError(f"ECU {self.where}: no complete answer to {apsystems.COMMAND_NAMES[command]} "
                                         f"within {self.timing.timeout_s:g} s") from exc
            finally:
                self._last_close = loop.time()

    async def _exchange(self, query: bytes, command: str) -> bytes:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            raise EcuUnreachable(f"ECU {self.where}: cannot connect ({exc.strerror or exc})") from exc
        try:
            writer.write(query)
            await writer.drain()
            await asyncio.sleep(self.timing.answer_delay_s)
            return apsystems.validate(await self._read_answer(reader, command), command).data
        except ConnectionError as exc:
            raise EcuConnectionError(f"ECU {self.where}: connection lost ({exc})") from exc
        finally:
            writer.close()
            # The ECU may reset the socket after answering; the answer is already read.
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _read_answer(self, reader: asyncio.StreamReader, command: str) -> bytes:
        """Read up to the length the header announces. An answer can arrive in pieces; it can also
        carry a wrong length field, so a buffer already ending in END\\n is handed to validation
        after a short quiet spell instead of waiting for bytes that never come."""
        buf = b""
        settle = min(1.0, self.timing.timeout_s / 4)
        while True:
            total = apsystems.declared_length(buf)
            if total is not None and len(buf) >= total:
                return buf
            if len(buf) > 65536:
                raise apsystems.EcuFrameError(f"ECU {self.where}: more than 64 KiB without a complete answer")
            try:
                chunk = await (asyncio.wait_for(reader.read(65536), settle) if buf.endswith(apsystems.SUFFIX)
                               else reader.read(65536))
            except TimeoutError:
                return buf  # ends in END\\n and nothing more came: let validation say what is wrong
            except ConnectionResetError as exc:
                if buf:
                    raise
                # Closed on us with our query unread (a reset, not a clean end): busy with another client.
                raise EcuBusy(f"ECU {self.where} reset the connection without answering "
                              f"{apsystems.COMMAND_NAMES[command]}") from exc
            if not chunk:
                if not buf:
                    raise EcuBusy(f"ECU {self.where} closed the connection without answering "
                                  f"{apsystems.COMMAND_NAMES[command]}")
                return buf
            buf += chunk
