"""Is a device online, as every consumer should judge it: its own availability, its owner's lease.

A bridge publishes `device/<source>/<id>/availability` (retained) itself; MQTT has no per-device
last will, and no other account may write in the bridge's tree. So when the last replica of a
bridge dies uncleanly, that topic keeps saying `online`. What tells the truth is on the bus too:
the device's claim (`device/<source>/<id>/owner`: which replica polls it) and that replica's
lease (`service/<source>/<instance>/lease`, renewed every lease/3) and its last will
(`service/<source>/<instance>/availability`). The rule, for consumers in any language:

1. `availability` is `offline` -> offline (the bridge says it cannot read the device).
2. No claim (a bridge without replicas, `lease_s = 0`, or a service that does not claim): online
   as its availability says, unless every known instance of `<source>` is `offline` by its will.
3. A claim whose owner's lease has not run out (received + `lease_s`, a retained one until
   `lease_until`) and whose will has not fired since -> as its availability says; no availability
   yet -> not online yet (None): a bridge claims a device before its first read, and a device is
   online once it has a state (its `online` follows its first reading).
4. Otherwise the owner is gone (lease lapsed, released, or its will fired). If another replica of
   `<source>` was live then and still is, it takes the device over within one lease: still online
   for a grace of 1.5 x lease_s + 0.5 s from the moment the owner went, then offline (a replica
   started later brings the device back with its claim). With no live
   replica left: offline at once, "owner sunspec-bridge/a1 lease lapsed 3.1 s ago".

A sub-device (an inverter's battery) has no claim of its own: its parent's (meta `parent_id`)
counts. `Liveness` applies the rule on the consumer's own clock (a timer at the next lapse), and calls
`on_change` with the devices whose verdict or owner changed: the http-api's device list, web UI
and site verdict use it, and the integrations service publishes it for Home Assistant on
`service/integrations/<instance>/device/<source>/<id>/availability` (judged_topic).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from . import codec, topics
from . import messages as m
from .bridge.ownership import Claim, Lease
from .bus import Bus, Message

TIMER_SLACK_S = 0.01  # a lapse is judged just after the lease runs out, not just before
GRACE_LEASES = 1.5  # a survivor takes a gone owner's devices within one lease (+ a renewal)
GRACE_EXTRA_S = 0.5
T = TypeVar("T")
# a handler of one kind of topic, given (source, device id or instance); False: nothing to judge again
Handler = Callable[[tuple[str, str], Message[bytes]], bool | None]


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    online: bool | None  # None: nobody said yet (no availability, no claim)
    reason: str | None = None  # why offline, or why still online although the owner is gone
    owner: str | None = None  # "<source>/<instance>" of the claim that counts


def judged_topic(service: str, instance: str, source: str, device_id: str) -> str:
    """Where a consumer service republishes the verdict for clients that cannot apply the rule."""
    return (f"{topics.PREFIX}/service/{topics.segment(service, 'service')}/{topics.segment(instance, 'instance')}"
            f"/device/{topics.segment(source, 'source')}/{topics.segment(device_id, 'device id')}/availability")


@dataclass
class _Replica:
    until: float = 0.0  # monotonic: its lease runs out
    gone_at: float | None = None  # monotonic: released, lapsed (set when noticed) or its will fired
    why: str = ""
    lease_s: float = 0.0
    will_offline: bool = False
    live_since: float = 0.0  # monotonic: its lease has run without a gap since


class Liveness:
    def __init__(self, bus: Bus, on_change: Callable[[dict[str, Verdict]], None] = lambda _changed: None,
                 clock: Callable[[], float] = time.monotonic,
                 on_service: Callable[[Message[bytes]], None] | None = None) -> None:
        """on_service: also called with each service availability message, for a consumer that follows
        those too (it may as well subscribe the filter itself: the bus hands a message to every
        handler of a filter)."""
        self.bus, self.on_change, self.clock, self.on_service = bus, on_change, clock, on_service
        self.replicas: dict[tuple[str, str], _Replica] = {}  # (source, instance)
        self.claims: dict[tuple[str, str], Claim] = {}  # (source, device id)
        self.available: dict[tuple[str, str], bool] = {}
        self.parents: dict[tuple[str, str], str] = {}
        self.verdicts: dict[str, Verdict] = {}  # "source/device_id" -> the last one reported
        self._timer: asyncio.TimerHandle | None = None  # the next lease running out or grace ending
        self._due = False

    def start(self) -> None:
        # The consumer's own subscriptions often use these filters too: the bus shares one broker
        # subscription between the handlers of a filter (one copy of each message, not one per filter).
        handlers: tuple[tuple[str, Handler], ...] = (
            ("service/+/+/lease", self._on_lease), ("service/+/+/availability", self._on_will),
            ("device/+/+/owner", self._on_claim), ("device/+/+/availability", self._on_availability),
            ("device/+/+/meta", self._on_meta))
        for leaf, handler in handlers:
            self.bus.subscribe(f"{topics.PREFIX}/{leaf}", bytes, self._keyed(handler))

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ------------------------------------------------------------------ the rule

    def of(self, source: str, device_id: str) -> Verdict:
        key = (source, device_id)
        own = self.available.get(key)
        claim = self.claims.get(key)
        if claim is None and key in self.parents:
            claim = self.claims.get((source, self.parents[key]))
        if own is False:
            return Verdict(online=False, reason=f"{source} cannot read it",
                           owner=f"{source}/{claim.instance}" if claim else None)
        now = self.clock()
        if claim is None:
            wills = [r for (s, _i), r in self.replicas.items() if s == source]
            if wills and all(r.will_offline for r in wills) and own is not None:
                return Verdict(online=False, reason=f"{source} is not running (its last will)")
            return Verdict(online=own)
        owner = f"{source}/{claim.instance}"
        replica = self.replicas.get((source, claim.instance))
        if replica is None:
            return Verdict(online=False, reason=f"owner {owner} has no lease on the bus", owner=owner)
        self._judge(replica, now)
        if replica.gone_at is None:
            return Verdict(online=own, owner=owner)  # None: claimed, not read yet
        ago = f"owner {owner} {replica.why} {now - replica.gone_at:.1f} s ago"
        grace = GRACE_LEASES * max(claim.lease_s, replica.lease_s) + GRACE_EXTRA_S
        if self._others_live(source, claim.instance, replica.gone_at, now) and now - replica.gone_at < grace:
            return Verdict(online=own, reason=f"{ago}; another replica takes it over",
                           owner=owner)
        return Verdict(online=False, reason=ago, owner=owner)

    def _judge(self, replica: _Replica, now: float) -> None:
        if replica.gone_at is None and now >= replica.until:
            replica.gone_at, replica.why = replica.until, "lease lapsed"

    def _others_live(self, source: str, instance: str, gone_at: float, now: float) -> bool:
        """Another replica was live when the owner went and still is: it takes the device over. One
        that started later claims it when it has (no `online` before anybody polls it)."""
        for (s, i), replica in self.replicas.items():
            if s == source and i != instance:
                self._judge(replica, now)
                if replica.gone_at is None and replica.live_since <= gone_at:
                    return True
        return False

    def refs(self) -> set[tuple[str, str]]:
        return set(self.available) | set(self.claims) | set(self.parents)

    def check(self) -> dict[str, Verdict]:
        """Apply the rule to every known device; report (and return) the ones that changed."""
        changed: dict[str, Verdict] = {}
        for source, device_id in self.refs():
            verdict = self.of(source, device_id)
            ref = f"{source}/{device_id}"
            old = self.verdicts.get(ref)
            if old is None or (old.online, old.owner, old.reason is None) != (verdict.online, verdict.owner,
                                                                               verdict.reason is None):
                self.verdicts[ref] = changed[ref] = verdict
        self._arm(self._next_due(self.clock()))
        if changed:
            self.on_change(changed)
        return changed

    def _next_due(self, now: float) -> float:
        """When a verdict can change without a message: a lease running out, a grace ending."""
        due = float("inf")
        for replica in self.replicas.values():
            if replica.gone_at is None and replica.until > 0:
                due = min(due, replica.until)
            elif replica.gone_at is not None:
                end = replica.gone_at + GRACE_LEASES * replica.lease_s + GRACE_EXTRA_S
                if end > now:
                    due = min(due, end)
        return due

    def _soon(self) -> None:
        """Once per loop pass: the retained burst at start (a claim and an availability per device)
        is one check, not one per message."""
        if not self._due:
            self._due = True
            asyncio.get_running_loop().call_soon(self._checked)

    def _checked(self) -> None:
        self._due = False
        self.check()

    def _arm(self, due: float) -> None:
        """A timer, not a polling task: nothing runs while no lease is about to run out, and nothing
        is left behind when the service stops (run-many keeps the loop)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if due != float("inf"):
            delay = max(due - self.clock(), 0.0) + TIMER_SLACK_S
            self._timer = asyncio.get_running_loop().call_later(delay, self._checked)

    # ------------------------------------------------------------------ bus in

    def _on_lease(self, key: tuple[str, str], msg: Message[bytes]) -> bool:
        """False for a renewal of a live lease (1000 devices are judged in ~5 ms: not per renewal)."""
        replica = self.replicas.setdefault(key, _Replica())
        if not msg.payload:  # the retained lease was deleted: nothing holds it any more
            replica.until, replica.gone_at, replica.why = 0.0, replica.gone_at or self.clock(), "has no lease"
            return True
        lease = self._decode(msg, Lease)
        if lease is None:
            return False
        now = self.clock()
        was_live = replica.gone_at is None and replica.until > now
        replica.lease_s = lease.lease_s
        if lease.released:
            replica.until, replica.gone_at, replica.why = 0.0, replica.gone_at or now, "stopped (released its lease)"
        else:
            left = lease.lease_s if not msg.retained else min(lease.lease_s, lease.lease_until - time.time())
            if replica.gone_at is not None or replica.until <= now:
                replica.live_since = now
            replica.until = now + left
            replica.gone_at = None if left > 0 else now + left  # a retained lease that ran out before we came
            replica.why = "" if left > 0 else "lease lapsed"
            replica.will_offline = False  # a renewal after the will: it is back
        return not (was_live and replica.gone_at is None)

    def _on_will(self, key: tuple[str, str], msg: Message[bytes]) -> None:
        if self.on_service is not None:
            self.on_service(msg)
        replica = self.replicas.setdefault(key, _Replica())
        replica.will_offline = bytes(msg.payload).strip() == m.OFFLINE.encode()
        if replica.will_offline and replica.gone_at is None and replica.until > 0:
            replica.gone_at, replica.why = self.clock(), "disconnected (its last will)"

    def _on_claim(self, key: tuple[str, str], msg: Message[bytes]) -> None:
        if not msg.payload:
            self.claims.pop(key, None)
        elif (claim := self._decode(msg, Claim)) is not None:
            self.claims[key] = claim

    def _on_availability(self, key: tuple[str, str], msg: Message[bytes]) -> None:
        text = bytes(msg.payload).strip()
        if text in (m.ONLINE.encode(), m.OFFLINE.encode()):
            self.available[key] = text == m.ONLINE.encode()
        else:  # deleted (empty) or not the contract's word: nothing said
            self.available.pop(key, None)

    def _on_meta(self, key: tuple[str, str], msg: Message[bytes]) -> None:
        meta = self._decode(msg, m.DeviceMeta) if msg.payload else None
        if meta is not None and meta.parent_id:
            self.parents[key] = meta.parent_id
        else:
            self.parents.pop(key, None)

    def _keyed(self, handler: Handler) -> Callable[[Message[bytes]], None]:
        """The handler called with (source, device id or instance) from the topic."""

        def on_message(msg: Message[bytes]) -> None:
            try:
                parsed = topics.parse(msg.topic)
            except topics.TopicError:
                return
            if handler((parsed.source or "", parsed.ident or ""), msg) is not False:
                self._soon()

        return on_message

    def _decode(self, msg: Message[bytes], payload_type: type[T]) -> T | None:
        try:
            return codec.decode(bytes(msg.payload), payload_type)
        except codec.PayloadError as exc:
            self.bus.counters.inc("liveness_rejected")
            self.bus.log.warning("not usable for device liveness", topic=msg.topic, error=str(exc))
            return None
