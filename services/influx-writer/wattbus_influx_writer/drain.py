"""Leaving a share group without stranding readings (`docker compose up --scale influx-writer=N-1`).

A stopped writer keeps its persistent session, and Mosquitto keeps routing a share of the group's
readings into it: right for a restart (they wait for its return), a loss for a replica that never
comes back (they wait until the session expires, then vanish). So when other writers are online,
a stopping writer drains: it unsubscribes (the others take every new reading), stores what the
broker had already queued for it, and disconnects with session expiry 0. Alone, it keeps the
session: nobody else would take the readings while it restarts.
"""

from __future__ import annotations

import asyncio
import time

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus, Message
from wattbus.log import Logger

from .pipeline import Pipeline
from .subscriber import Subscriber


class Peers:
    """Which other writer instances are online, from their retained availability."""

    def __init__(self, bus: Bus, service: str, own_instance: str) -> None:
        self.own = own_instance
        self.online: set[str] = set()
        own = topics.service_availability(service, own_instance)
        bus.subscribe(own.replace(f"/{own_instance}/", "/+/"), bytes, self._seen)  # every instance

    def _seen(self, msg: Message[bytes]) -> None:
        instance = msg.topic.split("/")[-2]
        if instance == self.own:
            return
        if msg.payload.decode(errors="replace") == m.ONLINE:
            self.online.add(instance)
        else:
            self.online.discard(instance)


async def drain(ingest: Subscriber, pipeline: Pipeline, log: Logger, quiet_s: float = 1.0,
                deadline_s: float = 60.0) -> bool:
    """Unsubscribe, then store and acknowledge until nothing arrived for quiet_s (every PUBACK frees
    a slot for the next queued reading). True when the broker holds nothing more for us."""
    if not await ingest.unsubscribe():
        log.warning("could not leave the share group; keeping the session for the next start")
        return False
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        await pipeline.flush()
        if time.monotonic() - max(ingest.last_publish, started) >= quiet_s and pipeline.idle():
            log.info("drained: left the share group, the other writers take its readings",
                     seconds=round(time.monotonic() - started, 1), spool_points=pipeline.spool.points)
            if pipeline.spool:
                log.warning("spool not empty after the drain: it is replayed when this instance starts again",
                            spool=str(pipeline.spool.dir), points=pipeline.spool.points)
            return True
        await asyncio.sleep(0.2)
    log.warning("drain did not finish in time; keeping the session for the next start", deadline_s=deadline_s)
    return False
