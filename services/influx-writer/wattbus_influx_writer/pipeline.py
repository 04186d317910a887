"""Bus messages -> line protocol -> batches -> the database, with spool and dead letters.

Readings arrive from the subscriber (subscriber.py) in the event loop; each is decoded and
encoded at once and its line protocol joins the batch, together with the PUBACKs of its socket
read (AckTokens). One asyncio task flushes batches (by size or age), writes them, and replays the
spool oldest first; while the spool holds anything, new batches join its tail so points reach the
server in arrival order. A batch's PUBACKs go out only when the whole batch was written or
spooled: until then the broker still holds every reading in it. Cancelled while a batch is being
written, the task first finishes that batch (written, or spooled), so its readings are never in
limbo when the writer drains and ends its session.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import msgspec
from wattbus import messages as m
from wattbus import topics
from wattbus.counters import Counters
from wattbus.log import Logger

from . import lineproto
from .config import Config
from .roles import RoleTags
from .sink import Outcome, Sink
from .spool import DeadLetters, Spool
from .subscriber import AckToken


class Pipeline:
    def __init__(self, config: Config, sink: Sink, spool: Spool, dead: DeadLetters, counters: Counters,
                 log: Logger, roles: RoleTags | None = None) -> None:
        self.config = config
        self.sink = sink
        self.spool = spool
        self.dead = dead
        self.counters = counters
        self.log = log
        # Called with the AckTokens of readings that are now safe (written or spooled).
        self.acknowledge: Callable[[list[AckToken]], None] = lambda _tokens: None
        self._decoder = msgspec.json.Decoder(m.Reading)
        self._encoder = lineproto.LineEncoder(roles=roles)  # roles: the role/parent tags (roles.py)
        # topic -> (source, device id, site id or None), parsed once per device: the topics repeat
        # with every reading. The site comes from a central broker's `sites/<site_id>/` prefix.
        self._topics: dict[str, tuple[str, str, str | None]] = {}
        # Per-message tallies as plain ints; `sync_counters` copies them into the service
        # counters once per cycle (a locked counter per message costs more than the rest).
        self._received = 0
        self._points = 0
        self._mismatched = 0
        self._batch: list[str] = []
        self._acks: list[AckToken] = []
        self._batch_since = 0.0  # monotonic arrival of the batch's first line (lag; immune to clock steps)
        self._closed = False
        self._wake = asyncio.Event()
        self._wake_pending = False
        self._retry_at = 0.0
        self._backoff = config.retry_min_s
        self._down_since: float | None = None
        self._database_ready = config.api != "v1" or not config.create_database

    # ------------------------------------------------------------------ intake

    def on_message(self, topic: str, payload: bytes) -> None:
        """One reading from the bus. Never raises: bad input is dead-lettered with the reason.

        Runs once per reading on the writer's hot path, hence the caches and plain-int tallies."""
        self._received += 1
        try:
            origin = self._topics.get(topic)
            if origin is None:
                origin = self._origin(topic)
            reading = self._decoder.decode(payload)
            lines = self._encoder.encode(reading, origin[0], origin[1], origin[2])
        except (topics.TopicError, msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError,
                lineproto.EncodeError) as exc:
            self.dead.add(f"payload: {exc}", topic=topic, payload=payload,
                          counter="payload_rejected")
            return
        if reading.device_id != origin[1]:
            self._mismatched += 1  # stored under the topic's id, which the ACL vouches for
        self._points += len(lines)
        if self._closed:  # arrived while shutting down: straight to disk
            self.spool.append(lines)
            return
        batch = self._batch
        if not batch:
            self._batch_since = time.monotonic()
        batch.extend(lines)
        if len(batch) >= self.config.batch_size and not self._wake_pending:
            self._wake_pending = True
            self._wake.set()

    def on_acks(self, token: AckToken) -> None:
        """The PUBACKs for the readings just taken: they leave with the batch that holds them."""
        self._acks.append(token)

    def _origin(self, topic: str) -> tuple[str, str, str | None]:
        site, contract_topic = topics.strip_site(topic)
        parsed = topics.parse(contract_topic)
        if parsed.leaf != "reading" or parsed.source is None or parsed.ident is None:
            raise topics.TopicError(f"not a reading topic: {topic!r}")
        if len(self._topics) >= 65536:  # bounded: a flood of made-up device ids must not grow it forever
            self._topics.clear()
        origin = self._topics[topic] = (parsed.source, parsed.ident, site)
        return origin

    def sync_counters(self) -> None:
        """Copy the per-message tallies into the service counters."""
        self.counters.set("received", self._received)
        self.counters.set("points", self._points)
        if self._mismatched:
            self.counters.set("device_id_mismatch", self._mismatched)

    def _take(self) -> tuple[list[str], float, list[AckToken]]:
        batch, since, acks = self._batch, self._batch_since, self._acks
        self._batch, self._acks = [], []
        self._wake_pending = False
        return batch, since, acks

    # ------------------------------------------------------------------ output (event loop)

    async def run(self) -> None:
        """Flush, write, spool and replay until cancelled; `close()` then saves what is left."""
        if not self._database_ready:
            await self._ensure_database()
        if self.spool:
            self.log.info("spool from a previous run, replaying first", points=self.spool.points)
        idle_s = self.config.idle_flush_s
        step = min(idle_s or 1.0, self.config.flush_interval_s, 1.0)  # at least once a second: counters
        next_cycle = time.monotonic() + self.config.flush_interval_s
        seen, seen_since = 0, time.monotonic()
        while True:
            woken = False
            with contextlib.suppress(TimeoutError):  # a check interval passed
                await asyncio.wait_for(self._wake.wait(), step)
                woken = True
            self._wake.clear()
            self.sync_counters()
            # A full batch, the flush interval, or a pause in the stream (nothing new for idle_s):
            # the tail of a burst is written at once instead of waiting out the flush interval.
            now = time.monotonic()
            pending = len(self._batch) + len(self._acks)  # acks alone: readings that were dead-lettered
            if pending != seen:
                seen, seen_since = pending, now
            paused = pending > 0 and idle_s > 0 and now - seen_since >= idle_s - 1e-3
            if woken or paused or now >= next_cycle:
                cycle = asyncio.ensure_future(self._cycle())
                try:
                    await asyncio.shield(cycle)
                except asyncio.CancelledError:
                    self.sink.stop_retrying()  # a database that does not answer must not hold the stop up
                    await cycle  # the batch taken is stored or spooled, and acknowledged, before we stop
                    raise
                seen, seen_since = 0, time.monotonic()
                next_cycle = time.monotonic() + self.config.flush_interval_s

    async def flush(self) -> None:
        """Store and acknowledge what is in memory now, and replay the spool if it is due."""
        await self._cycle()

    def idle(self) -> bool:
        """Nothing in memory waiting to be stored or acknowledged."""
        return not self._batch and not self._acks

    async def _cycle(self) -> None:
        batch, since, acks = self._take()
        self.sync_counters()  # after the take, so `received` covers every line about to be written
        await self._store(batch, since)
        self.acknowledge(acks)  # every line of the batch is in the database or on disk now
        if self.spool and time.monotonic() >= self._retry_at:
            await self._replay()

    async def _store(self, batch: list[str], since: float) -> None:
        """Write batch in chunks; what the server cannot take now goes to the spool."""
        chunks = [batch[i:i + self.config.batch_size] for i in range(0, len(batch), self.config.batch_size)]
        if self.spool or time.monotonic() < self._retry_at:
            for chunk in chunks:
                self.spool.append(chunk)
            return
        for i, chunk in enumerate(chunks):
            remaining = await self.send(chunk)
            if remaining:
                for rest in [remaining, *chunks[i + 1:]]:
                    self.spool.append(rest)
                return
            self.counters.set("lag_ms", int((time.monotonic() - since) * 1000))

    async def _replay(self) -> None:
        """Write spooled segments oldest first, taking new batches into the spool in between."""
        if not self._database_ready and not await self._ensure_database():
            return
        while (segment := self.spool.oldest()) is not None:
            remaining = await self.send(segment.lines)
            self.spool.done(segment, remaining)
            if remaining:
                return
            self.counters.inc("replayed", len(segment.lines) - len(remaining))
            self.counters.set("lag_ms", int((time.time() - segment.created) * 1000))
            batch, _since, acks = self._take()
            if batch:
                self.spool.append(batch)
            self.acknowledge(acks)
        if self._down_since is not None:
            self.log.info("database back, spool replayed", target=self.sink.target,
                          outage_s=round(time.monotonic() - self._down_since, 1))
            self._down_since = None

    async def send(self, lines: list[str], retry: bool = True) -> list[str]:
        """Write lines; returns those the server could not take now (to spool). Malformed lines are
        found by halving the batch (rewriting a point is idempotent) and dead-lettered one by one.
        retry=False: one attempt, no influxdb-client retries (shutdown)."""
        if not lines:
            return []
        result = await self.sink.write("".join(lines).encode(), retry)
        if result.outcome is Outcome.OK:
            self.counters.inc("written", len(lines))
            self._backoff = self.config.retry_min_s
            self._retry_at = 0.0
            return []
        if result.outcome is Outcome.UNAVAILABLE:
            self._unavailable(result.status, result.message)
            return lines
        if len(lines) == 1:
            self.dead.add(f"HTTP {result.status}: {result.message}", line=lines[0])
            return []
        mid = len(lines) // 2
        left = await self.send(lines[:mid], retry)
        if left:
            return left + lines[mid:]
        return await self.send(lines[mid:], retry)

    def _unavailable(self, status: int | None, message: str) -> None:
        self.counters.inc("write_failures")
        self._retry_at = time.monotonic() + self._backoff
        if self._down_since is None:
            self._down_since = time.monotonic()
            self.log.warning("database unavailable, spooling to disk", target=self.sink.target, status=status,
                             error=message, retry_in_s=self._backoff)
        self._backoff = min(self._backoff * 2, self.config.retry_max_s)

    async def _ensure_database(self) -> bool:
        result = await self.sink.create_database()
        if result.outcome is Outcome.OK:
            self._database_ready = True
            self.log.info("database ready", database=self.config.database)
            return True
        self._unavailable(result.status, f"CREATE DATABASE: {result.message}")
        return False

    async def close(self) -> None:
        """Stop batching: write what is in memory once (or spool it), then acknowledge it; later
        arrivals go to the spool (the subscriber is paused first, so there should be none)."""
        self._closed = True
        batch, _since, acks = self._take()
        self.sync_counters()
        if self.spool or time.monotonic() < self._retry_at or not self._database_ready:
            self.spool.append(batch)
        else:
            for i in range(0, len(batch), self.config.batch_size):
                chunk = batch[i:i + self.config.batch_size]
                # After one failed attempt the rest goes to disk at once: shutdown must stay quick.
                self.spool.append(chunk if time.monotonic() < self._retry_at else await self.send(chunk, retry=False))
        self.acknowledge(acks)
