"""What the setup page needs from the bus: discovered devices, the bridges' manual-add forms (and so
the bridge per protocol), and `reload_config` requests to the services whose sections it changed."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Bus, Message
from wattbus.counters import Counters
from wattbus.log import Logger

SERVICE_RESULTS = f"{topics.PREFIX}/service/+/+/result"
SERVICE_AVAILABILITY = f"{topics.PREFIX}/service/+/+/availability"
FORMS_VERSION = 1  # the BridgeForms version this page understands
# An instance offline for this long (its last status is older) is gone, not restarting: an `instance =
# "auto"` replica killed before it could clear its forms, replaced by one with another hostname.
FORMS_OFFLINE_S = 3600.0
T = TypeVar("T")


def decoded(msg: Message[bytes], into: type[T], counters: Counters, log: Logger, counter: str) -> T | None:
    """A retained payload as its contract type; None (counted and logged) when it does not decode."""
    try:
        return codec.decode(msg.payload, into)
    except codec.PayloadError as exc:
        counters.inc(counter)
        log.warning("payload rejected", topic=msg.topic, error=str(exc))
        return None


@dataclass
class Discovered:
    """Retained announcements from the discovery service, by device id."""

    counters: Counters
    log: Logger
    devices: dict[str, m.DeviceAnnouncement] = field(default_factory=dict)

    def subscribe(self, bus: Bus) -> None:
        bus.subscribe(topics.ALL_DISCOVERY, bytes, self.on_announcement)

    def on_announcement(self, msg: Message[bytes]) -> None:
        if msg.topic == topics.DISCOVERY_COMMAND:
            return
        device_id = msg.topic.rsplit("/", 1)[1]
        if not msg.payload:  # a cleared retained announcement
            self.devices.pop(device_id, None)
            return
        ann = decoded(msg, m.DeviceAnnouncement, self.counters, self.log, "announcements_rejected")
        if ann is not None:
            self.devices[ann.device_id] = ann


@dataclass
class Announced:
    """The bridges' manual-add forms (`BridgeForms`, retained on service/<bridge>/<instance>/forms). A
    bridge that ran once on this broker stays known (its protocols: adopt/ignore); its forms are offered
    while one of its instances is online (the availability the commands below follow). Of an instance
    offline for over FORMS_OFFLINE_S (by its last status) the forms are dropped, unless they are the
    newest its bridge left: a bridge keeps one announcement, its gone replicas none."""

    counters: Counters
    log: Logger
    online: dict[str, set[str]]  # service -> instances online now (ServiceCommands.online)
    by_instance: dict[tuple[str, str], m.BridgeForms] = field(default_factory=dict)
    last_status: dict[tuple[str, str], datetime] = field(default_factory=dict)  # (service, instance) -> its time

    def subscribe(self, bus: Bus) -> None:
        bus.subscribe(topics.ALL_SERVICE_FORMS, bytes, self.on_forms)
        bus.subscribe(topics.ALL_SERVICE_STATUS, bytes, self.on_status)

    def on_status(self, msg: Message[bytes]) -> None:
        """The time of each instance's last status (its final one, when it stopped)."""
        if not msg.payload:
            return
        parsed = topics.parse(msg.topic)
        status = decoded(msg, m.ServiceStatus, self.counters, self.log, "statuses_rejected")
        if status is not None:
            self.last_status[(str(parsed.source), str(parsed.ident))] = status.timestamp

    def gone(self, key: tuple[str, str], now: datetime) -> bool:
        """Offline (not announced online) and silent for over FORMS_OFFLINE_S."""
        service, instance = key
        if instance in self.online.get(service, set()):
            return False
        seen = self.last_status.get(key, self.by_instance[key].timestamp)
        return (now - seen).total_seconds() > FORMS_OFFLINE_S

    def on_forms(self, msg: Message[bytes]) -> None:
        parsed = topics.parse(msg.topic)
        key = (str(parsed.source), str(parsed.ident))
        if not msg.payload:  # a cleared retained announcement
            self.by_instance.pop(key, None)
            return
        forms = decoded(msg, m.BridgeForms, self.counters, self.log, "forms_rejected")
        if forms is None:
            return
        if forms.version != FORMS_VERSION or (forms.service, forms.instance) != key:
            self.counters.inc("forms_rejected")
            self.log.warning("bridge forms skipped", topic=msg.topic, version=forms.version, service=forms.service)
            return
        self.by_instance[key] = forms

    def running(self, service: str) -> bool:
        return bool(self.online.get(service))

    def bridges(self) -> dict[str, m.BridgeForms]:
        """One announcement per bridge: an online instance's, else the newest; gone instances dropped."""
        services = {service for service, _ in self.by_instance}
        chosen = {service: max((f for (s, _), f in self.by_instance.items() if s == service),
                               key=lambda f: (f.instance in self.online.get(service, set()), f.timestamp))
                  for service in services}
        now = datetime.now(UTC)
        for key in [k for k in self.by_instance if self.by_instance[k] is not chosen[k[0]] and self.gone(k, now)]:
            del self.by_instance[key]
            self.counters.inc("forms_dropped_offline")
        return chosen

    def owner(self, protocol: str) -> m.BridgeForms | None:
        """The bridge whose discovered devices of this protocol it adopts (running or not)."""
        return next((f for f in self.bridges().values() if protocol in f.protocols), None)

    def form(self, name: str) -> tuple[m.BridgeForms, m.AddForm] | None:
        for bridge in self.bridges().values():
            for found in bridge.forms:
                if found.name == name:
                    return bridge, found
        return None

    def page(self) -> dict[str, Any]:
        """For the setup page: the forms of running bridges, and the bridges known but not running."""
        bridges = sorted(self.bridges().values(), key=lambda f: f.service)
        offered = [{**msgspec.to_builtins(form), "bridge": b.service} for b in bridges if self.running(b.service)
                   for form in b.forms]
        return {"forms": offered, "not_running": [b.service for b in bridges if not self.running(b.service)]}


@dataclass
class ServiceCommands:
    """`reload_config` to service/<name>/<instance>/command, answered on .../result by request_id
    (the answering service writes its own topic space, which the broker ACL gives every service)."""

    bus: Bus
    counters: Counters
    pending: dict[str, asyncio.Future[m.CommandResult]] = field(default_factory=dict)
    online: dict[str, set[str]] = field(default_factory=dict)  # service -> instances online now (retained)
    gathering: dict[str, list[m.CommandResult]] = field(default_factory=dict)  # broadcast request -> answers

    def subscribe(self) -> None:
        self.bus.subscribe(SERVICE_RESULTS, m.CommandResult, self.on_result)
        self.bus.subscribe(SERVICE_AVAILABILITY, bytes, self.on_availability)

    def on_availability(self, msg: Message[bytes]) -> None:
        parts = msg.topic.split("/")  # wattbus/v1/service/<service>/<instance>/availability
        instances = self.online.setdefault(parts[3], set())
        if msg.payload == m.ONLINE.encode():
            instances.add(parts[4])
        else:
            instances.discard(parts[4])

    def on_result(self, msg: Message[m.CommandResult]) -> None:
        request_id = msg.payload.request_id or ""
        answers = self.gathering.get(request_id)
        if answers is not None:
            answers.append(msg.payload)
        future = self.pending.get(request_id)
        if future is not None and not future.done():
            future.set_result(msg.payload)

    async def reload_all(self, service: str, timeout_s: float) -> m.CommandResult:
        """`instance = "auto"` replicas: reload_config on service/<name>/all/command; every replica online
        answers on its own result topic, and the answer sums them up."""
        request_id = uuid.uuid4().hex
        expected = set(self.online.get(service, set()))
        answers = self.gathering[request_id] = []
        self.counters.inc("config_reloads_sent")
        try:
            self.bus.publish(topics.service_broadcast(service), m.ReloadConfig(request_id=request_id))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            # Wait for every replica known online (at least one answer when none is known yet).
            while loop.time() < deadline and (len(answers) < max(1, len(expected))):
                await asyncio.sleep(0.05)
        finally:
            self.gathering.pop(request_id, None)
        target = f"{service}/{topics.ALL_INSTANCES}"
        if not answers:
            self.counters.inc("config_reloads_unanswered")
            return m.CommandResult(status="timeout", command="reload_config", target=target, request_id=request_id,
                                   message=f"saved, but no {service} replica answered within {timeout_s:g} s: "
                                           "they apply the change when they next start")
        worst: m.CommandStatus = next((a.status for a in answers if a.status != "ok"), "ok")
        missing = len(expected) - len(answers)
        text = " · ".join(f"{a.target}: {a.status}: {a.message}" for a in answers)
        if missing > 0:
            text += f" · {missing} replica(s) did not answer within {timeout_s:g} s"
        return m.CommandResult(status=worst, command="reload_config", target=target, request_id=request_id,
                               message=text)

    async def reload(self, service: str, instance: str, timeout_s: float) -> m.CommandResult:
        if instance == "auto":
            return await self.reload_all(service, timeout_s)
        request_id = uuid.uuid4().hex
        future: asyncio.Future[m.CommandResult] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        self.counters.inc("config_reloads_sent")
        try:
            self.bus.publish(topics.service_command(service, instance), m.ReloadConfig(request_id=request_id))
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            self.counters.inc("config_reloads_unanswered")
            return m.CommandResult(
                status="timeout", command="reload_config", target=f"{service}/{instance}", request_id=request_id,
                message=f"saved, but {service}/{instance} did not answer within {timeout_s:g} s: it applies the "
                        "change when it next starts (is it running here?)")
        finally:
            self.pending.pop(request_id, None)


@dataclass
class SetupState:
    """The setup page's pieces inside the http-api: where it writes, what it knows, whom it tells."""

    config_file: Path | None
    discovered: Discovered
    commands: ServiceCommands
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one writer of the file at a time
    forms: Announced = field(init=False)

    def __post_init__(self) -> None:
        self.forms = Announced(self.discovered.counters, self.discovered.log, self.commands.online)

    def subscribe(self, bus: Bus) -> None:
        self.discovered.subscribe(bus)
        self.commands.subscribe()
        self.forms.subscribe(bus)
