"""One device's poll loop: its own schedule and backoff, so a dead device never delays the others.

Every bridge had written this loop again (`Polled`, `DeviceWorker`, `EcuPoller`, `poll_loop`,
`Meter.run`); this is the one the toolkit's bridges share:
- a failed poll (one of the adapter's `errors`, or a decoder tripping over garbage) is counted,
  logged (the first three, then every 50th, so a dead device does not flood the log) and set as
  the device's error in the service status until a good read; the next poll waits twice as long
  each time, up to `max_backoff_s`;
- after `offline_after` failures in a row every device of the adapter goes offline (retained) and
  the adapter identifies the device again before the next read: it may have been replaced or
  come back with another layout; the next good read brings them back online;
- a reading with `online = False` (a gateway's lost inverter) is published with its device offline;
- a device is `online` only once it has been read: its availability follows its first reading
  (as Home Assistant and evcc count an entity available once it has a state), and a command that
  arrives before that waits for the first read's outcome (`first_read`, the router's bound);
- a `push` adapter's `read` waits for the device to speak (an MQTT topic): no schedule, and a read
  that times out is the failure; with `push_backoff` (a device behind a link that can fail, such
  as a serial line) a failed read waits `interval_s`, doubling up to `max_backoff_s`, before the next.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection
from typing import Any

from .. import messages as m
from .. import topics
from ..channel import DeviceChannel
from ..runner import ServiceContext
from .adapter import Adapter, check_capabilities, tags

GARBAGE = (ValueError, KeyError, IndexError)  # a decoder that tripped over a nonsense answer


def worth_logging(count: int) -> bool:
    """The first three of a run, then every 50th."""
    return count <= 3 or count % 50 == 0


class Poller:
    def __init__(self, ctx: ServiceContext[Any], adapter: Adapter, *, interval_s: float, offline_after: int,
                 max_backoff_s: float, identified: bool = False, push: bool = False,
                 push_backoff: bool = False) -> None:
        self.ctx, self.adapter, self.push, self.push_backoff = ctx, adapter, push, push_backoff
        self.interval_s, self.offline_after, self.max_backoff_s = interval_s, offline_after, max_backoff_s
        self.identified = identified  # the adapter has identified its device (metas are known)
        self.lock = asyncio.Lock()  # a poll and a command's write and read-back never interleave
        self.failures = 0
        self.last_error = ""
        self.has_read = False
        self._outcome = asyncio.Event()  # set by the first read's outcome, good or failed
        self.channels: dict[str, DeviceChannel] = {}
        self._announced: dict[str, m.DeviceMeta] = {}
        # Set by a Fleet whose replicas share devices (ownership.py): False once this replica is no
        # longer the device's owner, checked before a read and again before its readings go out.
        self.may_publish: Callable[[], bool] = lambda: True

    @property
    def device_id(self) -> str:
        """The adapter's main device (its first meta)."""
        return self.adapter.metas[0].device_id if self.adapter.metas else ""

    @property
    def online(self) -> bool:
        return self.has_read and self.failures < self.offline_after

    def delay_s(self) -> float:
        if self.failures == 0 or (self.push and not self.push_backoff):
            return 0.0 if self.push else self.interval_s
        return float(min(self.interval_s * 2 ** (self.failures - 1), self.max_backoff_s))

    async def run(self) -> None:
        try:
            if self.identified:
                self.announce()
            while True:
                delay = await self.poll_once()
                if not await self.ctx.sleep(delay):
                    return
        finally:
            await self.adapter.close()

    async def poll_once(self) -> float:
        """Identify if needed, read and publish; returns how long to wait before the next poll."""
        # A push adapter's read waits for the device: holding the lock there would hold up commands.
        async with contextlib.nullcontext() if self.push else self.lock:
            if not self.may_publish():
                self.ctx.counters.inc("polls_fenced")
                return self.delay_s()
            try:
                if not self.identified or self.failures >= self.offline_after:
                    await self.adapter.identify()
                    self.identified = True
                    self.announce()
                readings = await self.adapter.read()
            except self.adapter.errors as exc:
                self.failed(exc)
                return self.delay_s()
            except GARBAGE as exc:
                self.ctx.counters.inc("garbage")
                self.failed(exc)
                return self.delay_s()
            if not self.may_publish():  # ownership lost while the device answered (a pause, a take-over)
                self.ctx.counters.inc("polls_fenced")
                return self.delay_s()
            self.announce()
            silent: set[str] = set()
            for reading in readings:
                channel = self.channels.get(reading.device_id)
                if channel is None:  # the adapter has no meta for it: a bug to see, not a reason to stop
                    self.ctx.counters.inc("readings_unannounced")
                    self.ctx.log.error("reading for a device without meta", device=reading.device_id)
                    continue
                if getattr(reading, "online", None) is False:
                    # Its gateway reports it unreachable (an ECU's lost inverter): the reading says so,
                    # without values, and the device stays offline until it answers again.
                    silent.add(reading.device_id)
                    channel.set_online(False)
                    self.ctx.bus.publish(topics.device_reading(self.ctx.name, reading.device_id), reading)
                else:  # the reading first, `online` after it (succeeded): online means it has a state
                    self.ctx.bus.publish(topics.device_reading(self.ctx.name, reading.device_id), reading)
                self.ctx.counters.inc("readings_published")
            self.succeeded(silent)
        return self.delay_s()

    async def first_read(self, timeout_s: float) -> None:
        """Wait, at most timeout_s, until the device has been read once or its first read failed
        (a command at start-up: the moment the service is up is not the moment the device is)."""
        if self.has_read or self.failures:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outcome.wait(), timeout_s)

    def announce(self) -> None:
        """Publish the metas that are new or changed since the last announcement."""
        for meta in self.adapter.metas:
            if self._announced.get(meta.device_id) == meta:
                continue
            self._announced[meta.device_id] = meta
            checked, unknown = check_capabilities(meta, self.adapter.commands)
            if unknown:
                self.ctx.counters.inc("capability_errors")
                self.ctx.log.error("capabilities the adapter does not handle left out", device=meta.device_id,
                                   claimed=",".join(unknown), handled=",".join(tags(self.adapter.commands)))
            self.channels[meta.device_id] = self.ctx.device(checked)

    def forget(self) -> list[str]:
        """Another replica polls the device now: drop its channels (announced again if it comes
        back here) and return their device ids, which this service no longer speaks for."""
        gone = list(self.channels)
        self.channels.clear()
        self._announced.clear()
        self.has_read, self.failures = False, 0
        self._outcome = asyncio.Event()
        return gone

    def failed(self, error: Exception) -> None:
        self.failures += 1
        self._outcome.set()
        self.last_error = str(error) or type(error).__name__
        total = self.ctx.counters.inc("poll_failures")
        name = self.device_id or "?"
        if worth_logging(self.failures):
            self.ctx.log.warning("poll failed", device=name, error=self.last_error, failures=self.failures,
                                 total=total)
        main = self.channels.get(self.device_id)
        if main is not None:  # the why, in the service status (the web UI lists failing devices)
            main.set_error(self.last_error)
        if self.failures == self.offline_after:
            self.ctx.log.warning("device offline", device=name, after_failures=self.failures)
        if self.failures >= self.offline_after:
            for channel in self.channels.values():
                channel.set_online(False)

    def succeeded(self, silent: Collection[str] = ()) -> None:
        if self.failures:
            self.ctx.log.info("device answers again", device=self.device_id, after_failures=self.failures)
        self.failures = 0
        self.has_read = True
        self._outcome.set()
        self.ctx.counters.inc("polls")
        for channel in self.channels.values():
            if channel.device_id not in silent:
                channel.set_online(True)
                channel.clear_error()
