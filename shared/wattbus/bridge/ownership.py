"""Which replica of a bridge polls which device: leases on the broker, rendezvous hashing, fencing.

`docker compose up --scale <bridge>=N` starts N replicas with the same config. Each replica
publishes a *lease* on `service/<bridge>/<instance>/lease` (retained, every lease/3) and reads
everybody's; the live replicas are those whose lease has not run out. Every replica computes the
same owner for a device, the live instance with the highest hash of (instance, device id)
(rendezvous hashing): no central server, and a replica coming or going moves only its share.

Fencing: a replica holds its own lease until `sent + SAFETY * lease_s`, `sent` being when it sent
the last renewal the broker echoed back. The others keep it alive until they received a renewal
plus `lease_s`, later than that; so a replica paused (SIGSTOP) past its lease finds, on waking,
that it no longer holds anything and stops before it publishes, while the others have not taken
its devices yet or have taken them after it stopped; it decides again once its own renewal comes
back, with the claims that arrived meanwhile. A dead replica's devices are taken over when its
lease runs out, `lease_s` after its last renewal arrived (a crash: ≤ `lease_s` after it); a
replica that stops cleanly releases its lease and its devices are taken over at once. A replica
starting waits one renewal before taking a device another live replica claims, so that one has
seen the newcomer's lease and let go.

The lease is not the last will: after SIGSTOP the will fires only at the keep-alive, and a will
cannot be told from a pause that ends. A lease is 1 message per replica per lease/3, whatever the
number of devices; a claim is sent when a device changes hands, never renewed.

A replica taking a device publishes a *claim* on `device/<bridge>/<id>/owner` (retained):
instance, epoch (one more than the claim it replaces) and the device's last executed command
requests (`record`: before executing, awaited until the broker echoes it, and after), so the next
owner answers a request re-sent during a take-over with its result instead of executing it again.
A claim of the same device by another replica with a higher epoch makes a holder let go at once
(two views of the live set that briefly differ).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Any

import msgspec

from .. import messages as m
from .. import topics
from ..bus import Message
from ..runner import ServiceContext

DEFAULT_LEASE_S = 6.0
SAFETY = 0.8  # a replica stops owning at this fraction of its lease: the others wait the whole lease
JOURNAL_SIZE = 16  # executed requests kept per device: re-sends come within seconds
PENDING = "pending"  # a request recorded before execution: a new owner never knows if it ran


class Lease(msgspec.Struct, frozen=True, kw_only=True):
    instance: str
    incarnation: int  # one per process start: two processes with one instance name are told apart
    seq: int
    lease_s: float
    lease_until: float  # wall clock (s): lets a newcomer judge a retained lease it did not see sent
    released: bool = False


class Executed(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    status: str  # PENDING or the result's status
    result: m.CommandResult | None = None


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    instance: str
    epoch: int
    rev: int = 0  # bumped by each journal update within one epoch
    lease_s: float
    since: float
    requests: list[Executed] = []


def lease_topic(source: str, instance: str) -> str:
    return f"{topics.PREFIX}/service/{topics.segment(source, 'source')}/{topics.segment(instance, 'instance')}/lease"


def owner_topic(source: str, device_id: str) -> str:
    return f"{topics.PREFIX}/device/{topics.segment(source, 'source')}/{topics.segment(device_id, 'device id')}/owner"


def score(instance: str, device_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{instance}\0{device_id}".encode(), digest_size=8).digest())


def owner_of(device_id: str, live: set[str] | list[str]) -> str | None:
    """The live instance a device belongs to (the same answer on every replica that sees `live`)."""
    return max(live, key=lambda instance: score(instance, device_id), default=None)


class Ownership:
    """One replica's view: the live replicas, its own lease, the devices it holds."""

    def __init__(self, ctx: ServiceContext[Any], lease_s: float,
                 on_change: Callable[[], None] = lambda: None) -> None:
        if lease_s <= 0:
            raise ValueError(f"{ctx.name}: lease_s must be > 0, got {lease_s}")
        self.ctx, self.lease_s, self.on_change = ctx, lease_s, on_change
        self.source, self.instance = ctx.name, ctx.instance
        self.incarnation = time.time_ns()
        self.renew_s = lease_s / 3
        self.peers: dict[str, float] = {}  # other instance -> monotonic time its lease runs out
        self.claims: dict[str, Claim] = {}  # device id -> the newest claim seen
        self.valid_until = 0.0  # monotonic: my own lease, as far as I know the others see it
        self._seq = 0
        self._sent: dict[int, float] = {}
        self._echo: dict[tuple[str, int, int], asyncio.Future[None]] = {}
        self._task: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- membership

    def start(self) -> None:
        bus = self.ctx.bus
        bus.subscribe(f"{topics.PREFIX}/service/{self.source}/+/lease", Lease, self._on_lease)
        bus.subscribe(f"{topics.PREFIX}/device/{self.source}/+/owner", Claim, self._on_claim)
        self._task = asyncio.create_task(self._renew(), name=f"lease-{self.instance}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def release(self) -> None:
        """A clean stop: the others take this replica's devices at once (its pollers have stopped)."""
        self.valid_until = 0.0
        self._publish_lease(released=True)

    @property
    def valid(self) -> bool:
        return time.monotonic() < self.valid_until

    def live(self) -> set[str]:
        now = time.monotonic()
        alive = {instance for instance, until in self.peers.items() if until > now}
        return alive | {self.instance} if self.valid else alive

    def others_live(self) -> bool:
        return bool(self.live() - {self.instance})

    def assigned(self, device_id: str) -> bool:
        """Rendezvous says this device is mine (also for ids no replica knows: who refuses them)."""
        return self.valid and owner_of(device_id, self.live()) == self.instance

    def held_elsewhere(self, device_id: str) -> bool:
        """Another live replica's claim is the newest: it may still poll until it sees my lease."""
        claim = self.claims.get(device_id)
        return claim is not None and claim.instance != self.instance and claim.instance in self.live()

    async def _renew(self) -> None:
        unconfirmed = 0
        while True:
            self._publish_lease()
            self.on_change()
            await asyncio.sleep(self.renew_s)
            unconfirmed = 0 if self.valid else unconfirmed + 1
            if unconfirmed == 6:  # two leases without our own renewal coming back: nothing is polled
                self.ctx.counters.inc("lease_unconfirmed")
                self.ctx.log.error("the broker does not echo this replica's lease: no device is polled; "
                                   "check the connection and that the ACL lets it write and read "
                                   f"{lease_topic(self.source, self.instance)}")

    def _publish_lease(self, released: bool = False) -> None:
        self._seq += 1
        self._sent[self._seq] = time.monotonic()
        for old in [s for s in self._sent if s < self._seq - 16]:
            del self._sent[old]
        lease = Lease(instance=self.instance, incarnation=self.incarnation, seq=self._seq, lease_s=self.lease_s,
                      lease_until=0.0 if released else time.time() + self.lease_s, released=released)
        self.ctx.bus.publish(lease_topic(self.source, self.instance), lease, retain=True)
        self.ctx.counters.inc("lease_renewals")

    def _on_lease(self, msg: Message[Lease]) -> None:
        lease, now = msg.payload, time.monotonic()
        if lease.instance == self.instance:
            if lease.incarnation == self.incarnation:
                sent = self._sent.get(lease.seq)
                if sent is not None and not lease.released:
                    self.valid_until = max(self.valid_until, sent + SAFETY * self.lease_s)
                    self.on_change()
            elif not msg.retained:
                self.ctx.counters.inc("instance_conflicts")
                self.ctx.log.error("another replica uses this instance name: set instance = \"auto\"",
                                   instance=self.instance)
            return
        if lease.released:
            self.peers.pop(lease.instance, None)
        else:
            left = lease.lease_s
            if msg.retained:  # sent before we subscribed: only what is left of it counts
                left = min(left, lease.lease_until - time.time())
            if left <= 0:
                return
            self.peers[lease.instance] = now + left
            # Its devices move the moment the lease runs out, not at the next message after that.
            asyncio.get_running_loop().call_later(left + 0.01, self.on_change)
        self.on_change()

    # ---------------------------------------------------------------- claims and the journal

    def claim(self, device_id: str) -> None:
        """Announce that this replica polls the device now (one epoch more than the last claim)."""
        old = self.claims.get(device_id)
        epoch = old.epoch + 1 if old is not None else 1
        self._publish_claim(device_id, Claim(instance=self.instance, epoch=epoch, lease_s=self.lease_s,
                                             since=time.time(), requests=old.requests if old else []))

    def superseded(self, device_id: str) -> bool:
        claim = self.claims.get(device_id)
        return claim is not None and claim.instance != self.instance

    def recorded(self, device_id: str, key: str) -> Executed | None:
        """The journal entry for request `key` on a device, if an owner recorded it."""
        claim = self.claims.get(device_id)
        return next((e for e in claim.requests if e.key == key), None) if claim else None

    async def record(self, device_id: str, entry: Executed, timeout: float = 3.0) -> bool:
        """Put a request in the device's journal and wait until the broker has it (True)."""
        old = self.claims.get(device_id)
        if old is None or old.instance != self.instance:
            return False
        kept = [e for e in old.requests if e.key != entry.key][-(JOURNAL_SIZE - 1):]
        claim = msgspec.structs.replace(old, rev=old.rev + 1, requests=[*kept, entry])
        echo: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._echo[(device_id, claim.epoch, claim.rev)] = echo
        self._publish_claim(device_id, claim)
        try:
            await asyncio.wait_for(echo, timeout)
        except TimeoutError:
            return False
        finally:
            self._echo.pop((device_id, claim.epoch, claim.rev), None)
        return True

    def _publish_claim(self, device_id: str, claim: Claim) -> None:
        self.claims[device_id] = claim
        self.ctx.bus.publish(owner_topic(self.source, device_id), claim, retain=True)

    def _on_claim(self, msg: Message[Claim]) -> None:
        device_id = msg.topic.split("/")[4]  # wattbus/v1/device/<source>/<id>/owner (our subscription)
        claim, mine = msg.payload, self.claims.get(device_id)
        if claim.instance == self.instance:
            echo = self._echo.get((device_id, claim.epoch, claim.rev))
            if echo is not None and not echo.done():
                echo.set_result(None)
            if mine is None:  # my own retained claim from before a restart: its journal still counts
                self.claims[device_id] = claim
            return
        # A newer epoch, or the same owner's journal update (rev): the newest claim wins.
        if mine is None or (claim.epoch, claim.instance, claim.rev) > (mine.epoch, mine.instance, mine.rev):
            taken = mine is None or (claim.epoch, claim.instance) != (mine.epoch, mine.instance)
            self.claims[device_id] = claim
            if taken:
                self.on_change()
