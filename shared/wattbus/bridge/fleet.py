"""The devices one bridge polls, configured and adopted, in one place.

Configured devices win: a device the config names is pinned in the bridge's `Adoption`, so an
announcement of it is ignored, and an adopted poller of the same device stops when the configured
one starts. An announcement (discovery service) starts a *finder*, the bridge's coroutine that
identifies what is at that address and starts a poller per device it finds; a move (DHCP) or a
denial stops the finder and every poller it started.

Replicas (`--scale`): every replica knows every device (same config, same announcements) but
polls only those it owns (ownership.py); the fleet starts and stops pollers as ownership moves.
`lease_s` (the bridge's config key, default 6 s; 0 = no ownership, every device polled here).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec

from .. import messages as m
from ..adoption import Adoption, Decision
from ..runner import ServiceContext
from .ownership import DEFAULT_LEASE_S, Ownership, owner_of
from .poller import Poller

Finder = Callable[[Decision], Coroutine[Any, Any, None]]


def probe_key(command: m.ProbeDevice) -> str:
    """What a probe is hashed by: its entry, keys sorted (the same entry, the same replica)."""
    return "probe\0" + msgspec.json.encode(command.entry, order="sorted").decode()


class Fleet:
    def __init__(self, ctx: ServiceContext[Any], adoption: Adoption | None = None,
                 lease_s: float | None = None) -> None:
        self.ctx = ctx
        self.adoption = adoption
        self.pollers: dict[str, Poller] = {}  # main device id -> its poller (polling here or not)
        self.tasks: set[asyncio.Task[None]] = set()
        self._polling: dict[str, asyncio.Task[None]] = {}
        self._finders: dict[str, asyncio.Task[None]] = {}  # announced id -> the task finding its devices
        self._found: dict[str, set[str]] = {}  # announced id -> device ids its finder started
        self._ready_at: dict[str, float] = {}  # device -> when its previous holder has let go
        self._local: set[str] = set()  # devices only this replica reaches (start(local=True))
        self._recheck: asyncio.TimerHandle | None = None
        lease = getattr(ctx.config, "lease_s", DEFAULT_LEASE_S) if lease_s is None else lease_s
        self._rebalance_due = False
        self.ownership = Ownership(ctx, lease, self._rebalance_soon) if lease > 0 else None
        if self.ownership is not None:
            self.ownership.start()
            ctx.answers_probe = self.answers_probe

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def get(self, device_id: str) -> Poller | None:
        """The poller of a device, or of the device a child (an inverter's battery) belongs to."""
        poller = self.pollers.get(device_id)
        if poller is None:
            poller = next((p for p in self.pollers.values()
                           if any(meta.device_id == device_id for meta in p.adapter.metas)), None)
        return poller

    def holds(self, device_id: str) -> bool:
        """This replica polls the device (or its parent) and still owns it: checked before every
        publish and command (fencing)."""
        poller = self.get(device_id)
        if poller is None or self.ownership is None:
            return poller is not None
        main = poller.device_id
        if main in self._local:  # nobody else can reach it: no one to be fenced against
            return main in self._polling
        return main in self._polling and self.ownership.assigned(main) and not self.ownership.superseded(main)

    def assigned(self, device_id: str) -> bool:
        """This replica is (or is about to be) the one that answers for the device: a known device's
        owner, or for an id nobody knows the replica it hashes to."""
        poller = self.get(device_id)
        if self.ownership is None or (poller is not None and poller.device_id in self._local):
            return True
        if poller is None and self.ownership.held_elsewhere(device_id):
            return False  # a device only another live replica knows (its serial port): it answers
        return self.ownership.assigned(poller.device_id if poller is not None else device_id)

    def answers_probe(self, command: m.ProbeDevice) -> bool:
        """A `probe_device` sent to every replica (service/<name>/all/command): the live replica the
        probed entry hashes to reads the device, the others stay silent. Not a shared subscription:
        the broker would hand it to a paused replica as readily as to a live one, and the same
        entry always goes to the same replica, so a person retrying a probe is not answered by two."""
        own = self.ownership
        if own is None:
            return True
        if not own.valid:  # our lease is not confirmed: answer only if nobody else is there to
            return not own.others_live()
        return owner_of(probe_key(command), own.live()) == own.instance

    def pin(self, *keys: str | None) -> None:
        """Serials, device ids or addresses the config names: announcements of them are not adopted."""
        if self.adoption is not None:
            self.adoption.pin(*keys)

    def start(self, poller: Poller, adopted_as: str | None = None, local: bool = False) -> bool:
        """Poll a device: a configured one (adopted_as None) or one a finder found for an announcement.
        Returns False when an adopted device turns out to be configured (config wins).
        `local`: only this replica can reach it (a serial port): polled here whatever the other
        replicas do, and claimed so that they leave its commands to this one."""
        device_id = poller.device_id
        if adopted_as is None:
            self.pin(device_id)
            for announced, found in list(self._found.items()):
                if device_id in found or announced == device_id:
                    self._stop_adopted(announced)
        else:
            if self.adoption is not None and self.adoption.is_pinned(device_id):
                self.ctx.log.info("announced device is configured: config wins", device=device_id)
                self._finders.pop(adopted_as, None)  # its finder ends by itself: nothing left to find
                self.adoption.forget(adopted_as)
                return False
            if device_id != adopted_as:
                self.ctx.log.warning("announced device reports another id", announced=adopted_as, device=device_id)
            self._found.setdefault(adopted_as, set()).add(device_id)
        self._stop_polling(device_id)
        self.pollers[device_id] = poller
        poller.may_publish = lambda: self.holds(device_id)
        if local:
            self._local.add(device_id)
        if self.ownership is None or local:
            if self.ownership is not None:
                self.ownership.claim(device_id)
            self._polling[device_id] = self.spawn(poller.run(), f"poll-{device_id}")
        else:
            self._rebalance_soon()
        return True

    def _rebalance_soon(self) -> None:
        """Once per loop pass: a burst of claims (a take-over of 1000 devices) is one pass, not 1000."""
        if not self._rebalance_due:
            self._rebalance_due = True
            asyncio.get_running_loop().call_soon(self.rebalance)

    def rebalance(self) -> None:
        """Poll the devices this replica owns now, let go of the others (ownership changed)."""
        self._rebalance_due = False
        own = self.ownership
        if own is None or not own.valid:
            # Our lease is not confirmed (not yet, or it lapsed: a stall, a pause, the broker away):
            # every publish is fenced meanwhile (holds); who owns what is decided once it is back,
            # with the claims that arrived meanwhile, so a short lapse costs skipped polls only.
            return
        now = time.monotonic()
        live = own.live()
        taken: list[str] = []
        let_go: list[str] = []
        for device_id, poller in list(self.pollers.items()):
            if device_id in self._local:
                continue
            wanted = owner_of(device_id, live) == own.instance
            if device_id in self._polling:
                if not wanted or own.superseded(device_id):
                    self._let_go(device_id, poller)
                    let_go.append(device_id)
                continue
            if not wanted:
                self._ready_at.pop(device_id, None)
                continue
            if own.held_elsewhere(device_id):
                # Its holder lets go when it sees my lease: give that a renewal period.
                ready = self._ready_at.setdefault(device_id, now + own.renew_s)
                if now < ready:
                    self._recheck_at(ready - now)
                    continue
            self._ready_at.pop(device_id, None)
            own.claim(device_id)
            taken.append(device_id)
            self._polling[device_id] = self.spawn(poller.run(), f"poll-{device_id}")
        if taken or let_go:  # one line per change, not one per device (a take-over moves hundreds)
            self.ctx.counters.inc("devices_taken", len(taken))
            self.ctx.counters.inc("devices_let_go", len(let_go))
            self.ctx.log.info("devices moved", taken=len(taken), let_go=len(let_go), polling=len(self._polling),
                              replicas=",".join(sorted(live)), first=",".join((taken or let_go)[:3]))

    def _recheck_at(self, delay: float) -> None:
        if self._recheck is None or self._recheck.when() > asyncio.get_running_loop().time() + delay:
            if self._recheck is not None:
                self._recheck.cancel()
            self._recheck = asyncio.get_running_loop().call_later(delay + 0.01, self._rechecked)

    def _rechecked(self) -> None:
        self._recheck = None
        self.rebalance()

    def _let_go(self, device_id: str, poller: Poller) -> None:
        task = self._polling.pop(device_id, None)
        if task is not None:
            task.cancel()
        for gone in poller.forget():  # its new owner speaks for it now: no `offline` from here at exit
            self.ctx.devices.pop(gone, None)

    def adopt(self, finder: Finder, accept: Callable[[Decision], bool] = lambda _decision: True) -> None:
        """Follow the discovery service's announcements: a finder per new or moved device. `accept`
        False declines one (e.g. its password is not configured): not counted, asked again next time."""
        if self.adoption is None:
            raise ValueError("Fleet.adopt needs an Adoption")

        def on_decision(decision: Decision) -> bool:
            if not accept(decision):
                return False
            announced = decision.announcement.device_id
            self._stop_adopted(announced, forget=False)  # a move: the old address is let go first
            self._finders[announced] = self.spawn(finder(decision), f"adopted-{announced}")
            return True

        self.adoption.subscribe(self.ctx.bus, on_decision)

    async def run(self) -> None:
        """Until the service stops; then every poller and finder ends (adapters closed)."""
        try:
            await self.ctx.stopping.wait()
        finally:
            if self._recheck is not None:
                self._recheck.cancel()
            tasks = list(self.tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.ownership is not None:
                await self.ownership.stop()
                if self.ownership.others_live():  # they take the devices at once: no `offline` from us
                    for device_id in [d for d in self._polling if d not in self._local]:
                        for gone in self.pollers[device_id].forget():
                            self.ctx.devices.pop(gone, None)
                self.ownership.release()

    def _stop_polling(self, device_id: str) -> None:
        self._ready_at.pop(device_id, None)
        self._local.discard(device_id)
        self.pollers.pop(device_id, None)
        task = self._polling.pop(device_id, None)
        if task is not None:
            task.cancel()

    def _stop_adopted(self, announced: str, forget: bool = True) -> None:
        finder = self._finders.pop(announced, None)
        if finder is not None:
            finder.cancel()
        for device_id in self._found.pop(announced, set()):
            self._stop_polling(device_id)
        if forget and finder is not None and self.adoption is not None:
            self.adoption.forget(announced)
