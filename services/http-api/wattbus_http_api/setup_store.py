"""What the setup page needs from the bus: discovered devices, the bridge per protocol, and
`reload_config` requests to the services whose sections it changed."""

from __future__ import annotations

import asyncio
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Bus, Message
from wattbus.counters import Counters
from wattbus.log import Logger

BRIDGES_FILE = Path(__file__).parent / "data" / "bridges.toml"
SERVICE_RESULTS = f"{topics.PREFIX}/service/+/+/result"
SERVICE_AVAILABILITY = f"{topics.PREFIX}/service/+/+/availability"


@dataclass(frozen=True, slots=True)
class BridgeSpec:
    """One row of data/bridges.toml: the bridge that owns a protocol and its device list."""

    protocol: str
    bridge: str
    list_key: str
    entry: dict[str, Any]
    port: int | None = None
    serial: bool = False
    deny: bool = False
    probe_wait_s: float = 10.0  # how long the bridge may take to read the device once

    def new_entry(self, values: dict[str, Any]) -> dict[str, Any]:
        """The bridge's config item for a device added by hand ("{port}" stays a number)."""

        def fill(value: Any) -> Any:
            if isinstance(value, list):
                return [fill(v) for v in value]
            if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value.count("{") == 1:
                return values[value[1:-1]]
            if isinstance(value, str):
                return value.format(**values)
            return value

        return {key: fill(value) for key, value in self.entry.items()}


def load_bridges(path: Path = BRIDGES_FILE) -> dict[str, BridgeSpec]:
    data = tomllib.loads(path.read_text())
    return {protocol: BridgeSpec(protocol, row["bridge"], row["list"], row["entry"], row.get("port"),
                                 row.get("serial", False), row.get("deny", False), row.get("probe_wait_s", 10.0))
            for protocol, row in data.items()}


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
        try:
            ann: m.DeviceAnnouncement = codec.decode(msg.payload, m.DeviceAnnouncement)
        except codec.PayloadError as exc:
            self.counters.inc("announcements_rejected")
            self.log.warning("discovery announcement rejected", topic=msg.topic, error=str(exc))
            return
        self.devices[ann.device_id] = ann


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
    bridges: dict[str, BridgeSpec] = field(default_factory=load_bridges)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one writer of the file at a time

    def subscribe(self, bus: Bus) -> None:
        self.discovered.subscribe(bus)
        self.commands.subscribe()
