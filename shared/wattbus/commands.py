"""At-most-once command execution for the services that act on commands.

MQTT QoS 1 is at-least-once: a broker restarted with queued messages redelivers them, paho
re-sends an unacknowledged PUBLISH (DUP) after a reconnect, and a commanding service that was
SIGKILLed may send its last request again when it comes back. A command applied twice can undo a
newer one (10 A, then 12 A, then the 10 A again), so a service executes each request at most once:
it remembers the last `size` requests it executed and answers a repeat with the first result.

A request is identified by the client's `request_id` (scoped by the command topic, so two clients'
ids on two devices never collide) or, without one, by the MQTT v5 correlation data (scoped by the
response topic; `Bus.request` makes a fresh one per request). A request with neither cannot be told
apart from a new one and always runs.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from . import messages as m
from .bus import Message
from .counters import Counters

Key = tuple[str, str, str]

# Enough for minutes of commands at the rates any controller sends (one per loadpoint every few
# seconds); a redelivery arrives within seconds of the original.
DEFAULT_SIZE = 1024


def request_key(msg: Message[Any], request_id: str | None) -> Key | None:
    """What makes this request unique, or None when nothing does."""
    if request_id:
        return ("id", msg.topic, request_id)
    if msg.correlation_data:
        return ("corr", msg.response_topic or "", msg.correlation_data.hex())
    return None


class RecentCommands:
    """A bounded memory of executed requests and their results (one per service, no global state)."""

    def __init__(self, counters: Counters, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError(f"RecentCommands size must be at least 1, got {size}")
        self.counters = counters
        self.size = size
        # The future is the result: pending while the first delivery still executes, so a repeat
        # arriving meanwhile waits for it instead of running beside it.
        self._seen: OrderedDict[Key, asyncio.Future[m.CommandResult]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def recall(self, key: Key | None) -> m.CommandResult | None:
        """The first result of an already executed request (counted as a duplicate), else None."""
        if key is None:
            return None
        future = self._seen.get(key)
        if future is None or not future.done() or future.cancelled():
            return None
        self.counters.inc("commands_duplicate")
        return future.result()

    def remember(self, key: Key | None, result: m.CommandResult) -> None:
        """Store the result of a request a synchronous handler just executed."""
        if key is None:
            return
        future: asyncio.Future[m.CommandResult] = asyncio.get_running_loop().create_future()
        future.set_result(result)
        self._store(key, future)

    async def once(self, key: Key | None,
                   execute: Callable[[], Awaitable[m.CommandResult]]) -> tuple[m.CommandResult, bool]:
        """Execute a new request, or return the first result of a repeated one (waiting for it if
        it is still running). Returns (result, duplicate)."""
        if key is None:
            return await execute(), False
        earlier = self._seen.get(key)
        if earlier is not None:
            await asyncio.wait({earlier})
            if not earlier.cancelled():
                self.counters.inc("commands_duplicate")
                return earlier.result(), True
            # The first delivery ended without an answer (its handler was cancelled): run this one.
        future: asyncio.Future[m.CommandResult] = asyncio.get_running_loop().create_future()
        self._store(key, future)
        try:
            result = await execute()
            future.set_result(result)
        finally:
            if not future.done():
                # execute() raised or was cancelled, so nothing was answered: forget the request so
                # a retry executes, and release any repeat waiting for it.
                self._seen.pop(key, None)
                future.cancel()
        return result, False

    def _store(self, key: Key, future: asyncio.Future[m.CommandResult]) -> None:
        self._seen[key] = future
        self._seen.move_to_end(key)
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)
