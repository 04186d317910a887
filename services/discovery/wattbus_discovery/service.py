"""The discovery service: sweeps on start, periodically and on a `rescan` command; browses mDNS
all the time; keeps one retained DeviceAnnouncement per device on `wattbus/v1/discovery/<id>`.
Of several replicas one sweeps and publishes, the others stand by (sweeper.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import msgspec
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Message
from wattbus.runner import ServiceContext

from .config import Config, Scope
from .found import Found
from .mdns import MdnsWatcher
from .registry import Entry, Registry
from .sweep import sweep
from .sweeper import Sweeper


class Discovery:
    def __init__(self, ctx: ServiceContext[Config], scope: Scope) -> None:
        self.ctx, self.scope = ctx, scope
        self.registry = Registry(ctx.config.gone_after_misses)
        self.rescan = asyncio.Event()
        self.waiting: list[Message[Any]] = []  # rescan requests answered when the next sweep ends
        self.mdns: MdnsWatcher | None = None
        self.polled: set[str] = set()  # device ids a bridge reports online (it is polling them)
        self.sweeper = Sweeper(ctx, ctx.config.lease_s)

    def publish(self, announcement: m.DeviceAnnouncement) -> None:
        if not self.sweeper.active():  # a stand-by, or a sweeper that lost the role mid-sweep
            self.ctx.counters.inc("unpublished_standby")
            return
        self.ctx.bus.publish(topics.discovery(announcement.device_id), announcement, retain=True)

    def found(self, found: Found) -> None:
        if not self.scope.allows(found.address):
            self.ctx.counters.inc("outside_networks")  # defence in depth: never announce what we may not contact
            return
        before = self.registry.entries.get(found.device_id)
        announcement, moved = self.registry.seen(found)
        if before is None or not before.announcement.present:
            self.ctx.counters.inc("devices_found")
            self.ctx.log.info("device found", device_id=announcement.device_id, protocol=announcement.protocol,
                              address=f"{announcement.address}:{announcement.port}", unit=announcement.unit_id,
                              serial=announcement.serial, via=announcement.via)
        elif moved:
            self.ctx.counters.inc("devices_moved")
            self.ctx.log.info("device moved", device_id=announcement.device_id, old=moved,
                              new=f"{announcement.address}:{announcement.port}")
        self.publish(announcement)
        self.ctx.counters.set("devices_present", len(self.registry.present()))

    def removed(self, device_id: str) -> None:
        announcement = self.registry.removed(device_id)
        if announcement is not None:
            self.ctx.counters.inc("devices_gone")
            self.ctx.log.info("device gone (mDNS goodbye)", device_id=device_id)
            self.publish(announcement)
            self.ctx.counters.set("devices_present", len(self.registry.present()))

    def on_message(self, msg: Message[bytes]) -> None:
        """One subscription for both: `discovery/+` also matches `discovery/command`, and a second,
        overlapping subscription would make the broker deliver every command twice."""
        if msg.topic == topics.DISCOVERY_COMMAND:
            try:
                command: m.Command = codec.decode(bytes(msg.payload), m.Command)
            except codec.PayloadError as exc:
                self.ctx.counters.inc("rejected")
                self.ctx.log.warning("rejected malformed command", topic=msg.topic, error=str(exc))
                return
            self.on_command(Message(msg.topic, command, msg.retained, msg.response_topic, msg.correlation_data))
            return
        if not msg.payload or (not msg.retained and self.sweeper.active()):
            return  # a live one is the sweeper's own, known already
        try:
            announcement: m.DeviceAnnouncement = codec.decode(bytes(msg.payload), m.DeviceAnnouncement)
        except codec.PayloadError as exc:
            self.ctx.counters.inc("rejected_announcements")
            self.ctx.log.warning("announcement rejected", topic=msg.topic, retained=msg.retained, error=str(exc))
            return
        if not msg.retained:  # a stand-by follows the sweeper: a take-over starts from what it knew
            self.registry.entries[announcement.device_id] = Entry(announcement)
            self.ctx.counters.inc("followed")
        elif self.registry.restore(announcement):
            self.ctx.counters.inc("restored")

    def on_availability(self, msg: Message[bytes]) -> None:
        try:
            device_id = topics.parse(msg.topic).ident
        except topics.TopicError:
            return
        if device_id is None:
            return
        if bytes(msg.payload) == m.ONLINE.encode():
            self.polled.add(device_id)
        else:
            self.polled.discard(device_id)

    def busy_single_client(self) -> dict[tuple[str, int], m.DeviceAnnouncement]:
        """ECUs serve one client at a time: while a bridge polls one, a probe would cut the bridge
        off, so such a device counts as seen (its bridge reads it) and is not connected to."""
        return {(a.address, a.port or 0): a for a in self.registry.present()
                if a.protocol == "aps-ecu" and a.device_id in self.polled}

    def on_command(self, msg: Message[m.Command]) -> None:
        if not self.sweeper.active():
            self.ctx.counters.inc("commands_left_to_sweeper")  # every replica hears it: one answers
            return
        fallback = topics.reply(self.ctx.name, self.ctx.instance, "rescan")
        if isinstance(msg.payload, m.Rescan):
            self.ctx.counters.inc("rescans_requested")
            self.waiting.append(msg)
            self.rescan.set()
            return
        tag = msg.payload.__struct_config__.tag
        self.ctx.counters.inc("commands_refused")
        self.ctx.bus.respond(msg, m.CommandResult(
            status="refused", command=tag if isinstance(tag, str) else None, target="discovery",
            request_id=msg.payload.request_id, message=f"discovery only accepts rescan, not {tag}"), fallback)

    async def sweep_once(self) -> None:
        answered, self.waiting = self.waiting, []
        self.rescan.clear()
        busy = self.busy_single_client()
        result = await sweep(self.ctx.config, self.scope, self.ctx.counters, self.ctx.log.child("sweep"),
                             frozenset(busy))
        for found in result.found:
            self.found(found)
        now = datetime.now(UTC)
        for announcement in busy.values():
            self.ctx.counters.inc("skipped_polled")
            fresh = msgspec.structs.replace(announcement, last_seen=now)
            self.registry.entries[fresh.device_id].announcement = fresh
            self.publish(fresh)
        seen = ({f.device_id for f in result.found} | {a.device_id for a in busy.values()}
                | (self.mdns.present_ids() if self.mdns else set()))
        for announcement in self.registry.end_sweep(seen):
            self.ctx.counters.inc("devices_gone")
            self.ctx.log.info("device gone (missing in sweeps)", device_id=announcement.device_id,
                              misses=self.ctx.config.gone_after_misses)
            self.publish(announcement)
        present = len(self.registry.present())
        self.ctx.counters.set("devices_present", present)
        self.ctx.log.info("sweep done", candidates=result.candidates, open_ports=result.open_ports,
                          found=len(result.found), present=present, duration_s=round(result.duration_s, 3))
        fallback = topics.reply(self.ctx.name, self.ctx.instance, "rescan")
        for msg in answered:
            self.ctx.bus.respond(msg, m.CommandResult(
                status="ok", command="rescan", target="discovery", request_id=msg.payload.request_id,
                message=f"swept {result.candidates} candidates in {result.duration_s:.2f} s",
                applied={"found": len(result.found), "present": present, "open_ports": result.open_ports,
                         "duration_s": round(result.duration_s, 3)}), fallback)
        self.ctx.publish_status()


async def run(ctx: ServiceContext[Config]) -> None:
    scope = Scope.from_config(ctx.config)
    if not scope.networks:
        ctx.log.warning("no private IPv4 network found on this host and none configured: only mDNS runs")
    ctx.log.info("discovery scope", networks=[str(n) for n in scope.networks], deny=[str(n) for n in scope.deny])
    disc = Discovery(ctx, scope)
    ctx.bus.subscribe(topics.ALL_DISCOVERY, bytes, disc.on_message)
    ctx.bus.subscribe(topics.ALL_DEVICE_AVAILABILITY, bytes, disc.on_availability)
    if ctx.config.mdns:
        disc.mdns = MdnsWatcher(scope, ctx.config.mdns_interfaces, ctx.config.http_timeout_s, ctx.counters,
                                ctx.log.child("mdns"), disc.found, disc.removed)
        await disc.mdns.start()
    disc.sweeper.start()
    try:
        await ctx.bus.wait_connected(10)  # retained announcements from an earlier run arrive first
        await sweep_while_sweeper(ctx, disc, scope)
    finally:
        await disc.sweeper.stop()
        if disc.mdns is not None:
            await disc.mdns.stop()


async def sweep_while_sweeper(ctx: ServiceContext[Config], disc: Discovery, scope: Scope) -> None:
    """Sweep on start (or on taking the role over), every sweep_interval_s and on `rescan`, while
    this replica is the sweeper; a stand-by waits for the role."""
    loop = asyncio.get_running_loop()
    active = False
    next_sweep = loop.time() + ctx.config.sweep_interval_s
    while not ctx.stopping.is_set():
        disc.sweeper.changed.clear()
        was_active, active = active, disc.sweeper.active()
        taken = active and not was_active and ctx.config.sweep_on_start  # a take-over sweeps as a start does
        due = active and (taken or loop.time() >= next_sweep or disc.rescan.is_set())
        if due:
            next_sweep = loop.time() + ctx.config.sweep_interval_s
        if due and scope.networks:
            await disc.sweep_once()
            next_sweep = loop.time() + ctx.config.sweep_interval_s
        elif disc.rescan.is_set():
            disc.waiting.clear()
            disc.rescan.clear()
        # A stand-by waits for the role: the leases wake it (every renewal and when one runs out).
        timeout = max(0.0, next_sweep - loop.time()) if active else None
        waiters = [asyncio.ensure_future(e.wait()) for e in (disc.rescan, ctx.stopping, disc.sweeper.changed)]
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
