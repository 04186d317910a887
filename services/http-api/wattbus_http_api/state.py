"""The site as the bus shows it: device metas, availability, latest readings, loadpoints, runAll.

Everything here is built from bus messages only (retained meta/availability/state plus the live
readings), so the service can restart at any time and rebuild its picture from the broker.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.bus import Bus, Message
from wattbus.counters import Counters
from wattbus.liveness import Liveness, Verdict
from wattbus.log import Logger


@dataclass
class DeviceRecord:
    source: str
    device_id: str
    meta: m.DeviceMeta | None = None
    online: bool | None = None  # wattbus.liveness: its own availability and its owner's lease
    owner: str | None = None  # the bridge replica that polls it ("source/instance"), when it claims it
    reading: m.ReadingBase | None = None
    reading_at: float | None = None  # monotonic arrival time (staleness is judged on our clock)
    interval_s: float | None = None  # how often its readings usually come (a smoothed mean)

    @property
    def ref(self) -> str:
        return f"{self.source}/{self.device_id}"

    def age_s(self, now: float) -> float | None:
        return None if self.reading_at is None else now - self.reading_at


def smoothed(previous: float | None, sample: float) -> float:
    """The usual gap between messages: a slow mean, so one late message does not look usual."""
    return sample if previous is None else previous + (sample - previous) / 8


def silent(at: float | None, interval_s: float | None, now: float, floor_s: float = 5.0) -> float | None:
    """Seconds without the message that usually comes every interval_s, once that is clearly overdue
    (three gaps, at least floor_s); None while it is not."""
    if at is None or interval_s is None:
        return None
    age = now - at
    return age if age > max(floor_s, 3 * interval_s) else None


@dataclass
class ServiceSeen:
    """One service instance as its retained availability and status heartbeats show it."""

    online: bool | None = None
    status: m.ServiceStatus | None = None
    status_at: float | None = None
    interval_s: float | None = None  # its usual heartbeat gap


@dataclass
class External:
    """A value a client POSTed (MeterHub publish); it expires after its key's timeout."""

    value: m.ExtraValue
    expires_at: float


@dataclass
class SiteState:
    counters: Counters
    log: Logger
    devices: dict[str, DeviceRecord] = field(default_factory=dict)  # by "source/device_id"
    loadpoints: dict[str, tuple[m.LoadpointState, float]] = field(default_factory=dict)
    services: dict[str, ServiceSeen] = field(default_factory=dict)  # by "service/instance"
    run_all: dict[str, tuple[dict[str, Any], float]] = field(default_factory=dict)  # giv device id -> doc
    externals: dict[str, External] = field(default_factory=dict)
    version: int = 0
    listeners: list[Any] = field(default_factory=list)  # callables(now) run on every change (energy)
    liveness: Liveness | None = None

    def subscribe(self, bus: Bus) -> None:
        bus.subscribe(topics.ALL_META, m.DeviceMeta, self.on_meta)
        # A device's availability as every consumer judges it (its owner's lease counts too): the
        # bridge's own topic stays `online` when its last replica is killed.
        self.liveness = Liveness(bus, self.on_liveness, on_service=self.on_service_availability)
        self.liveness.start()
        # QoS 0: this is a latest-value view (the next reading replaces a lost one within a poll),
        # and skipping a PUBACK per reading is a sixth of the stack's CPU on a small device.
        bus.subscribe(topics.ALL_READINGS, m.Reading, self.on_reading, qos=0)
        bus.subscribe(topics.ALL_LOADPOINT_STATE, m.LoadpointState, self.on_loadpoint)
        bus.subscribe(f"{topics.PREFIX}/device/giv-bridge/+/native/runAll", bytes, self.on_run_all)
        bus.subscribe(topics.ALL_SERVICE_STATUS, m.ServiceStatus, self.on_service_status)

    def record(self, topic: str) -> DeviceRecord:
        parsed = topics.parse(topic)
        source, device_id = parsed.source or "", parsed.ident or ""
        key = f"{source}/{device_id}"
        rec = self.devices.get(key)
        if rec is None:
            rec = self.devices[key] = DeviceRecord(source, device_id)
        return rec

    def touch(self) -> None:
        self.version += 1
        now = time.monotonic()
        for listener in self.listeners:
            listener(now)

    # ------------------------------------------------------------------ bus handlers

    def on_meta(self, msg: Message[m.DeviceMeta]) -> None:
        rec = self.record(msg.topic)
        if msg.payload.device_id != rec.device_id:
            self._reject(msg.topic, f"meta names device {msg.payload.device_id!r}, the topic {rec.device_id!r}")
            return
        rec.meta = msg.payload
        self.touch()

    def on_liveness(self, changed: dict[str, Verdict]) -> None:
        for ref, verdict in changed.items():
            source, _, device_id = ref.partition("/")
            rec = self.devices.get(ref) or self.devices.setdefault(ref, DeviceRecord(source, device_id))
            rec.online, rec.owner = verdict.online, verdict.owner
        self.touch()

    def offline_reason(self, rec: DeviceRecord) -> str | None:
        """Why the device is offline, judged now ("owner sunspec-bridge/a1 lease lapsed 3.1 s ago")."""
        if rec.online is not False or self.liveness is None:
            return None
        return self.liveness.of(rec.source, rec.device_id).reason

    def on_reading(self, msg: Message[m.Reading]) -> None:
        rec = self.record(msg.topic)
        if msg.payload.device_id != rec.device_id:
            self._reject(msg.topic, f"reading names device {msg.payload.device_id!r}, the topic {rec.device_id!r}")
            return
        now = time.monotonic()
        if rec.reading_at is not None and not msg.retained:
            rec.interval_s = smoothed(rec.interval_s, now - rec.reading_at)
        rec.reading, rec.reading_at = msg.payload, now
        self.counters.inc("readings_seen")
        self.touch()

    def on_loadpoint(self, msg: Message[m.LoadpointState]) -> None:
        lp_id = topics.parse(msg.topic).ident or ""
        if msg.payload.loadpoint_id != lp_id:
            self._reject(msg.topic, f"state names loadpoint {msg.payload.loadpoint_id!r}, the topic {lp_id!r}")
            return
        self.loadpoints[lp_id] = (msg.payload, time.monotonic())
        self.touch()

    def on_service_status(self, msg: Message[m.ServiceStatus]) -> None:
        parsed = topics.parse(msg.topic)
        seen = self.services.setdefault(f"{parsed.source}/{parsed.ident}", ServiceSeen())
        now = time.monotonic()
        if seen.status_at is not None and not msg.retained:
            seen.interval_s = smoothed(seen.interval_s, now - seen.status_at)
        seen.status, seen.status_at = msg.payload, now
        self.touch()

    def on_service_availability(self, msg: Message[bytes]) -> None:
        """Each service's availability, handed on by the liveness view: the setup page's store
        subscribes the same filter, and the broker keeps one subscription per filter and client."""
        parsed = topics.parse(msg.topic)
        text = bytes(msg.payload).decode(errors="replace").strip()
        if text not in (m.ONLINE, m.OFFLINE):
            self._reject(msg.topic, f"availability {text[:40]!r} is neither online nor offline")
            return
        self.services.setdefault(f"{parsed.source}/{parsed.ident}", ServiceSeen()).online = text == m.ONLINE
        self.touch()

    def on_run_all(self, msg: Message[bytes]) -> None:
        device_id = topics.parse(msg.topic).ident or ""
        try:
            doc = json.loads(bytes(msg.payload))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._reject(msg.topic, f"runAll is not JSON: {exc}")
            return
        if not isinstance(doc, dict):
            self._reject(msg.topic, f"runAll is a JSON {type(doc).__name__}, not an object")
            return
        self.run_all[device_id] = (doc, time.monotonic())
        self.touch()

    def _reject(self, topic: str, why: str) -> None:
        count = self.counters.inc("bus_messages_rejected")
        if count <= 20 or count % 100 == 0:
            self.log.warning("bus message not usable", topic=topic, problem=why, rejected_total=count)

    # ------------------------------------------------------------------ queries

    def service_online(self, service: str) -> bool | None:
        """Whether any instance of the service is online; None when the bus never said (a simulator)."""
        states = [seen.online for key, seen in self.services.items()
                  if key.split("/", 1)[0] == service and seen.online is not None]
        return any(states) if states else None

    def service_silent(self, service: str, now: float) -> float | None:
        """Seconds since the service's last heartbeat once every instance of it is overdue, else None."""
        quiet = [silent(seen.status_at, seen.interval_s, now, floor_s=10.0)
                 for key, seen in self.services.items() if key.split("/", 1)[0] == service]
        known = [q for q in quiet if q is not None]
        return min(known) if quiet and len(known) == len(quiet) else None

    def device_errors(self) -> dict[str, m.DeviceError]:
        """What the services report failing, by device ref ("source/device_id") or "source/@address"."""
        out: dict[str, m.DeviceError] = {}
        for key, seen in self.services.items():
            if seen.status is None or seen.online is False:
                continue
            service = key.split("/", 1)[0]
            for error in seen.status.device_errors:
                out[f"{service}/{error.device_id}" if error.device_id else f"{service}/@{error.address}"] = error
        return out

    def fresh(self, rec: DeviceRecord, now: float, stale_after_s: float) -> m.ReadingBase | None:
        """The device's reading if it is recent and the device is not offline, else None."""
        if rec.reading is None or rec.online is False:
            return None
        age = rec.age_s(now)
        return rec.reading if age is not None and age <= stale_after_s else None

    def of_kind(self, kind: str, parentless: bool = True) -> list[DeviceRecord]:
        return sorted((r for r in self.devices.values() if r.meta is not None and r.meta.kind == kind
                       and not (parentless and r.meta.parent_id)), key=lambda r: r.ref)

    def find_device(self, target: str) -> DeviceRecord | None:
        """By "source/device_id" or by a device id that only one source uses."""
        if "/" in target:
            return self.devices.get(target)
        found = [r for r in self.devices.values() if r.device_id == target]
        return found[0] if len(found) == 1 else None

    def external_values(self, now: float) -> dict[str, m.ExtraValue]:
        for key in [k for k, e in self.externals.items() if e.expires_at <= now]:
            del self.externals[key]
        return {k: e.value for k, e in self.externals.items()}
