"""Home Assistant at run time: publish, refresh and remove discovery configs; map controls to commands."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Bus, Message
from wattbus.counters import Counters
from wattbus.liveness import Liveness, Verdict, judged_topic
from wattbus.log import Logger

from . import hass_discovery, model
from .catalog import ControlSpec, arg_info, controls_for, range_sources
from .hass_discovery import HassDiscoverySettings


def clock_time(text: str) -> str | None:
    """A text entity's time (HHMM or HH:MM) as the contract's HHMM; empty clears it (None)."""
    if not text:
        return None
    digits = text.replace(":", "", 1) if len(text) == 5 and text[2] == ":" else text
    if len(digits) != 4 or not digits.isdigit():
        raise ValueError(f"time {text[:40]!r}: expected HHMM or HH:MM")
    return digits  # the contract checks the hours and minutes


@dataclass
class Tracked:
    """One Home Assistant device: a bus device, or a loadpoint (meta None)."""

    obj: str
    meta: m.DeviceMeta | None = None
    kind: str | None = None
    present: set[str] = field(default_factory=set)
    last: dict[str, Any] = field(default_factory=dict)  # the newest reading's model (relay channel)
    loadpoint: m.LoadpointState | None = None
    published: dict[str, bytes] = field(default_factory=dict)  # retained config topic -> payload
    label: str = ""  # the device name Home Assistant got
    offline_since: float | None = None


class HomeAssistant:
    def __init__(self, bus: Bus, settings: HassDiscoverySettings, counters: Counters, log: Logger, *,
                 republish_delay_max_s: float, command_timeout_s: float) -> None:
        self.bus = bus
        self.settings = settings
        self.counters = counters
        self.log = log
        self.republish_delay_max_s = republish_delay_max_s
        self.command_timeout_s = command_timeout_s
        self.devices: dict[str, Tracked] = {}
        self.foreign: dict[str, set[str]] = {}  # retained config topics of ours seen, maybe stale
        self.previous: dict[str, set[str]] = {}  # component keys of those configs
        # Sub-devices are named after their parent, so they wait for its meta until the start-up
        # grace has passed (then a parent that never came is named by its id).
        self.parents_awaited = True
        self._tasks: set[asyncio.Task[None]] = set()
        self.liveness: Liveness | None = None

    # ------------------------------------------------------------------ subscriptions

    def subscribe_rest(self) -> None:
        """Everything but metas and readings, which the service shares with the templates."""
        prefix = self.settings.prefix
        self.bus.subscribe(topics.ALL_LOADPOINT_STATE, bytes, self.on_loadpoint)
        if self.settings.judged_by is not None:
            self.liveness = Liveness(self.bus, self.on_liveness)
            self.liveness.start()
        else:
            self.bus.subscribe(topics.ALL_DEVICE_AVAILABILITY, bytes, self.on_availability)
        self.bus.subscribe(f"{prefix}/status", bytes, self.on_ha_status)
        self.bus.subscribe(f"{prefix}/device/+/config", bytes, self.on_config_seen)
        self.bus.subscribe(f"{prefix}/+/+/+/config", bytes, self.on_config_seen)  # per-entity configs
        self.bus.subscribe(hass_discovery.command_filter(self.settings), bytes, self.on_command)

    # ------------------------------------------------------------------ bus state in

    def on_meta(self, msg: Message[bytes]) -> None:
        device_id = topics.parse(msg.topic).ident or ""
        obj = hass_discovery.object_id(device_id)
        if not msg.payload:  # the bridge deleted the device: so does Home Assistant
            self.remove(obj, "device meta deleted")
            return
        try:
            meta: m.DeviceMeta = codec.decode(msg.payload, m.DeviceMeta)
        except codec.PayloadError as exc:
            self.reject("meta_rejected", msg.topic, str(exc))
            return
        tracked = self.devices.get(obj)
        if tracked is None:
            tracked = self.devices[obj] = Tracked(obj, present=set(self.previous.get(obj, ())))
        tracked.meta = meta
        tracked.kind = tracked.kind or meta.kind
        self.publish(tracked)
        for child in list(self.devices.values()):  # their names carry this device's
            if child.meta is not None and child.meta.parent_id == meta.device_id:
                self.publish(child)

    def meta_of(self, device_id: str) -> m.DeviceMeta | None:
        tracked = self.devices.get(hass_discovery.object_id(device_id))
        return tracked.meta if tracked is not None else None

    def on_reading(self, reading: m.ReadingBase) -> None:
        tracked = self.devices.get(hass_discovery.object_id(reading.device_id))
        if tracked is None or tracked.meta is None:
            return  # no meta yet: nothing to name the device by
        values = model.values_of(reading)
        limits_moved = any(values.get(k) != tracked.last.get(k) for k in range_sources())
        tracked.last = {**values, "channel": getattr(reading, "channel", None)}
        tracked.kind = model.kind_of(reading)
        tracked.offline_since = None
        new = {k for k, v in values.items() if v is not None} - tracked.present
        tracked.present |= new
        if new or limits_moved:  # a new value gets its entity; new limits a new control range
            self.publish(tracked)

    def on_availability(self, msg: Message[bytes]) -> None:
        tracked = self.devices.get(hass_discovery.object_id(topics.parse(msg.topic).ident or ""))
        if tracked is not None:
            offline = msg.payload == m.OFFLINE.encode()
            tracked.offline_since = (tracked.offline_since or time.monotonic()) if offline else None

    def on_liveness(self, changed: dict[str, Verdict]) -> None:
        """Publish the judged availability Home Assistant's entities follow (retained, our own tree:
        no account may write the bridge's availability, and a killed bridge cannot)."""
        assert self.settings.judged_by is not None  # only then is there a Liveness
        for ref, verdict in changed.items():
            if verdict.online is None:
                continue  # nobody said anything yet: neither word would be true
            source, _, device_id = ref.partition("/")
            self.bus.publish(judged_topic(*self.settings.judged_by, source, device_id),
                             m.ONLINE if verdict.online else m.OFFLINE, retain=True)
            self.counters.inc("hass_availability_published")
            if not verdict.online:
                self.log.info("device offline", device=ref, reason=verdict.reason)
            tracked = self.devices.get(hass_discovery.object_id(device_id))
            if tracked is not None:
                tracked.offline_since = None if verdict.online else (tracked.offline_since or time.monotonic())

    def on_loadpoint(self, msg: Message[bytes]) -> None:
        loadpoint_id = topics.parse(msg.topic).ident or ""
        obj = hass_discovery.loadpoint_object_id(loadpoint_id)
        if not msg.payload:
            self.remove(obj, "loadpoint state deleted")
            return
        try:
            state: m.LoadpointState = codec.decode(msg.payload, m.LoadpointState)
        except codec.PayloadError as exc:
            self.reject("loadpoint_rejected", msg.topic, str(exc))
            return
        tracked = self.devices.setdefault(obj, Tracked(obj, kind="loadpoint"))
        tracked.loadpoint = state
        self.publish(tracked)

    # ------------------------------------------------------------------ configs out

    def config_of(self, tracked: Tracked) -> dict[str, Any] | None:
        if tracked.loadpoint is not None:
            return hass_discovery.loadpoint_config(self.settings, tracked.loadpoint)
        if tracked.meta is None or tracked.kind is None or not tracked.present:
            return None  # no value read yet: wait rather than announce an empty device
        parent = tracked.meta.parent_id
        if parent is not None and self.parents_awaited and self.meta_of(parent) is None:
            return None
        config = hass_discovery.device_config(self.settings, tracked.meta, tracked.kind, tracked.present,
                                              lookup=self.meta_of, values=tracked.last)
        return config if config["cmps"] else None

    def publish(self, tracked: Tracked, force: bool = False) -> None:
        config = self.config_of(tracked)
        if config is None:
            return
        docs = hass_discovery.messages(self.settings, tracked.obj, config)
        payloads = {t: codec.encode(doc) for t, doc in docs.items()}
        if payloads == tracked.published and not force:
            return
        for topic, payload in payloads.items():
            if force or tracked.published.get(topic) != payload:
                self.bus.publish(topic, payload, retain=True)
        # Configs of the other discovery form (the setting changed) would make twins in HA.
        for topic in self.foreign.pop(tracked.obj, set()) - set(payloads):
            self.bus.publish(topic, b"", retain=True)
        tracked.published = payloads
        self.counters.inc("hass_configs_published")
        label = str(config["dev"].get("name", ""))
        if label != tracked.label:
            tracked.label = label
            twins = sorted(t.obj for t in self.devices.values() if t.label == label and t is not tracked)
            if twins:  # configured names only: derived ones carry serials and parents
                self.log.warning("two devices share one name: Home Assistant gives the second one's entity ids "
                                 "a _2 suffix; configure distinct names", name=label, device=tracked.obj, also=twins)

    def remove(self, obj: str, why: str) -> None:
        tracked = self.devices.pop(obj, None)
        if tracked is not None and tracked.meta is not None and self.settings.judged_by is not None:
            self.bus.publish(judged_topic(*self.settings.judged_by, tracked.meta.source, tracked.meta.device_id),
                             b"", retain=True)  # nothing left to judge: no retained word stays behind
        stale = self.foreign.pop(obj, set()) | set(tracked.published if tracked is not None else ())
        if not stale:
            return
        # An empty retained payload deletes the device (or the entity) in Home Assistant.
        for topic in sorted(stale):
            self.bus.publish(topic, b"", retain=True)
        self.counters.inc("hass_configs_removed")
        self.log.info("home assistant device removed", device=obj, reason=why)

    def republish_all(self) -> None:
        for tracked in list(self.devices.values()):
            self.publish(tracked, force=True)
        self.counters.inc("hass_republished")

    def on_ha_status(self, msg: Message[bytes]) -> None:
        if msg.payload.strip().lower() != b"online" or msg.retained:
            return  # a retained `online` is an old birth; the configs are retained anyway
        # Home Assistant (re)started: send everything again, after a random pause so that many
        # publishers do not answer the same birth message at the same instant.
        delay = random.uniform(0, self.republish_delay_max_s)
        self._spawn(self._later(delay, self.republish_all))

    async def _later(self, delay: float, action: Any) -> None:
        await asyncio.sleep(delay)
        action()

    def on_config_seen(self, msg: Message[bytes]) -> None:
        # <prefix>/device/<obj>/config, or per entity <prefix>/<platform>/<obj>/<key>/config
        parts = msg.topic[len(self.settings.prefix) + 1:].split("/")
        obj = parts[1] if len(parts) in (3, 4) else ""
        if not msg.retained or not obj.startswith("wattbus-") or not msg.payload:
            return
        try:
            doc: Any = codec.decode(msg.payload, Any)
        except codec.PayloadError:
            return  # not ours to judge: another publisher's config
        origin = doc.get("o") if isinstance(doc, dict) else None
        if not isinstance(origin, dict) or origin.get("name") != self.settings.origin_name:
            return
        # Our config from before a restart: keep its sensors, so the first update after the
        # restart does not drop entities whose values have not been read again yet.
        cmps = doc.get("cmps")
        keys = {k for k in cmps if isinstance(k, str)} if isinstance(cmps, dict) else set()
        if len(parts) == 4:
            keys = {parts[2]}
        self.previous[obj] = self.previous.get(obj, set()) | keys
        tracked = self.devices.get(obj)
        if tracked is not None:
            tracked.present |= keys
        if tracked is None or msg.topic not in tracked.published:
            self.foreign.setdefault(obj, set()).add(msg.topic)

    async def housekeeping(self, grace_s: float, remove_offline_after_s: float, stopping: asyncio.Event) -> None:
        """After the retained state has arrived, delete configs of devices that are gone."""
        if grace_s > 0:
            await asyncio.sleep(grace_s)
            for obj in sorted(set(self.foreign) - set(self.devices)):
                self.remove(obj, "no device on the bus any more")
        self.parents_awaited = False
        for tracked in list(self.devices.values()):
            if not tracked.published:
                self.publish(tracked)  # sub-devices whose parent never announced itself
        while remove_offline_after_s > 0 and not stopping.is_set():
            now = time.monotonic()
            for tracked in list(self.devices.values()):
                if tracked.offline_since is not None and now - tracked.offline_since >= remove_offline_after_s:
                    self.remove(tracked.obj, f"offline for {remove_offline_after_s:g} s")
            await asyncio.sleep(min(60.0, remove_offline_after_s / 4))

    # ------------------------------------------------------------------ controls in

    def on_command(self, msg: Message[bytes]) -> None:
        parts = msg.topic.split("/")
        obj, key = parts[-3], parts[-2]
        tracked = self.devices.get(obj)
        text = msg.payload.decode("utf-8", errors="replace").strip()
        if tracked is None:
            return self.reject("hass_commands_rejected", msg.topic, f"unknown device {obj!r}")
        kind = tracked.kind or ""
        caps = tracked.meta.capabilities if tracked.meta else []
        control = next((c for c in controls_for(kind, caps) if c.key == key), None)
        if control is None:
            return self.reject("hass_commands_rejected", msg.topic, f"{obj} has no control {key!r}")
        try:
            command = self.command_for(control, text, tracked)
        except ValueError as exc:
            return self.reject("hass_commands_rejected", msg.topic, str(exc))
        if tracked.loadpoint is not None:
            target = topics.loadpoint_command(tracked.loadpoint.loadpoint_id)
        else:
            assert tracked.meta is not None
            target = topics.device_command(tracked.meta.source, tracked.meta.device_id)
        self.counters.inc("hass_commands_sent")
        self._spawn(self._send(target, command, msg.topic))

    def command_for(self, control: ControlSpec, text: str, tracked: Tracked) -> m.CommandBase:
        """The bus command for what Home Assistant sent; ValueError names the problem."""
        info = arg_info(control.capability, control.arg)
        value: Any
        if control.platform == "switch":
            if text.upper() not in ("ON", "OFF"):
                raise ValueError(f"switch payload {text[:40]!r}: expected ON or OFF")
            value = text.upper() == "ON"
        elif control.platform == "number":
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"number payload {text[:40]!r} is not a number") from None
        elif control.platform == "text":
            value = clock_time(text)
        else:
            if text not in info.options:
                raise ValueError(f"select payload {text[:40]!r}: expected one of {', '.join(info.options)}")
            value = text
        doc: dict[str, Any] = {"command": control.capability, control.arg: value}
        for name in control.fixed:
            if tracked.last.get(name) is not None:
                doc[name] = tracked.last[name]
        for name, state_field in control.keep.items():
            if tracked.loadpoint is not None and getattr(tracked.loadpoint, state_field, None) is not None:
                doc[name] = getattr(tracked.loadpoint, state_field)
        try:
            command: m.CommandBase = msgspec.convert(doc, m.Command, strict=False)  # type: ignore[arg-type]
        except msgspec.ValidationError as exc:
            raise ValueError(f"{control.capability}: {exc}") from None
        return command

    async def _send(self, target: str, command: m.CommandBase, origin: str) -> None:
        result = await self.bus.request(target, command, timeout=self.command_timeout_s)
        if result.status == "ok":
            self.counters.inc("hass_commands_ok")
            self.log.info("command from home assistant applied", topic=target, command=result.command,
                          applied=result.applied)
        else:
            self.counters.inc("hass_commands_failed")
            self.log.warning("command from home assistant not applied", topic=target, origin=origin,
                             status=result.status, reason=result.message)

    # ------------------------------------------------------------------ helpers

    def reject(self, counter: str, topic: str, why: str) -> None:
        count = self.counters.inc(counter)
        if count <= 20 or count % 100 == 0:
            self.log.warning("rejected", topic=topic, reason=why, total=count)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
