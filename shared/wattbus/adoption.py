"""Adoption of discovered devices: the part of the contract every bridge implements the same way.

The discovery service announces devices, retained, on `wattbus/v1/discovery/<device_id>`
(services/discovery/README.md, "Adoption contract"). A bridge keeps one `Adoption` that filters
those announcements (its protocols, its deny list, the devices its config pins) and remembers
where it polls each adopted device, so it can tell a new device from a repeat (every sweep
re-announces everything) and from a move to a new address (DHCP). The bridge itself only starts,
moves or leaves pollers as `Adoption.judge` tells it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from . import codec, topics
from . import messages as m
from .bus import Bus, Message
from .counters import Counters
from .log import Logger

Action = Literal["start", "move", "same", "foreign", "denied", "pinned", "absent", "disabled"]


@dataclass(frozen=True, slots=True)
class Target:
    """Where an adopted device is polled."""

    host: str
    port: int | None
    unit_id: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    announcement: m.DeviceAnnouncement
    target: Target
    previous: Target | None = None  # where it was polled before a move


def target_of(announcement: m.DeviceAnnouncement) -> Target:
    """`address` may be `host` or `host:port`; an explicit `port` field wins."""
    host, port = announcement.address, announcement.port
    if port is None and host.count(":") == 1:  # host:port (an IPv6 address has more colons)
        name, _, text = host.partition(":")
        if text.isdigit():
            host, port = name, int(text)
    return Target(host, port, announcement.unit_id)


def _key(value: str) -> str:
    return value.strip().lower()


class Adoption:
    """The filter and bookkeeping behind one bridge's adoption of announced devices."""

    def __init__(self, protocols: Iterable[str], *, enabled: bool = True, deny: Iterable[str] = (),
                 counters: Counters | None = None, log: Logger | None = None) -> None:
        self.protocols = frozenset(protocols)
        self.enabled = enabled
        self.deny = frozenset(_key(d) for d in deny if d.strip())
        self.counters = counters or Counters()
        self.log = log
        self.pinned: set[str] = set()
        self.adopted: dict[str, Target] = {}  # device id -> where it is polled now

    # ------------------------------------------------------------------ config

    def pin(self, *keys: str | None) -> None:
        """Mark serials, device ids or addresses (`host` / `host:port`) as configured: config wins."""
        self.pinned.update(_key(k) for k in keys if k)

    def is_pinned(self, key: str) -> bool:
        return _key(key) in self.pinned

    def _keys(self, ann: m.DeviceAnnouncement, target: Target) -> set[str]:
        keys = {_key(ann.device_id), _key(target.host)}
        if ann.serial:
            keys.add(_key(ann.serial))
        if target.port is not None:
            keys.add(_key(f"{target.host}:{target.port}"))
        return keys

    # ------------------------------------------------------------------ decoding

    def parse(self, topic: str, payload: bytes) -> m.DeviceAnnouncement | None:
        """The announcement in a raw message, or None for the command topic, a cleared retained
        message or a payload that does not decode (counted and logged)."""
        if topic == topics.DISCOVERY_COMMAND or not payload:
            return None
        try:
            ann: m.DeviceAnnouncement = codec.decode(payload, m.DeviceAnnouncement)
            target = target_of(ann)
            topics.segment(ann.device_id, "device id")
        except (codec.PayloadError, topics.TopicError) as exc:
            self.counters.inc("announcements_rejected")
            if self.log:
                self.log.warning("discovery announcement rejected", topic=topic, error=str(exc))
            return None
        if not target.host:
            self.counters.inc("announcements_rejected")
            if self.log:
                self.log.warning("discovery announcement rejected", topic=topic, error="empty `$.address`")
            return None
        return ann

    # ------------------------------------------------------------------ decisions

    def judge(self, ann: m.DeviceAnnouncement) -> Decision:
        """What the bridge should do with this announcement; records starts and moves."""
        target = target_of(ann)
        previous = self.adopted.get(ann.device_id)
        if ann.protocol not in self.protocols:
            return Decision("foreign", ann, target)
        if not self.enabled:
            return Decision("disabled", ann, target)
        keys = self._keys(ann, target)
        if keys & self.deny:
            return Decision("denied", ann, target, previous)
        if keys & self.pinned:
            return Decision("pinned", ann, target)
        if not ann.present:
            return Decision("absent", ann, target, previous)
        if previous == target:
            return Decision("same", ann, target, previous)
        self.adopted[ann.device_id] = target
        return Decision("start" if previous is None else "move", ann, target, previous)

    def forget(self, device_id: str) -> None:
        """The bridge stopped polling this device (e.g. it could not start a poller there)."""
        self.adopted.pop(device_id, None)

    def subscribe(self, bus: Bus, handler: Callable[[Decision], Awaitable[bool | None] | bool | None]) -> None:
        """One raw subscription to every announcement; the handler sees start/move decisions (and
        returns False to decline one), denied and pinned ones are counted."""

        async def on_message(msg: Message[bytes]) -> None:
            ann = self.parse(msg.topic, msg.payload)
            if ann is None:
                return
            decision = self.judge(ann)
            if decision.action in ("start", "move"):
                result: Any = handler(decision)
                if inspect.isawaitable(result):
                    result = await result
                if result is False:  # the bridge declined (e.g. a password is missing): ask again next time
                    self.forget(ann.device_id)
                    return
                self.counters.inc(f"adopt_{decision.action}")
                if self.log:
                    self.log.info(f"adopting discovered device ({decision.action})", device=ann.device_id,
                                  address=_show(decision.target), before=_show(decision.previous))
            elif decision.action in ("denied", "pinned"):
                self.counters.inc(f"adopt_{decision.action}")

        bus.subscribe(topics.ALL_DISCOVERY, bytes, on_message)


def _show(target: Target | None) -> str | None:
    if target is None:
        return None
    text = target.host if target.port is None else f"{target.host}:{target.port}"
    return text if target.unit_id is None else f"{text}/{target.unit_id}"
