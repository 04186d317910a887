"""Which discovery replica sweeps (`--scale`, or a stand-by on another host): one at a time.

The replicas share the bridges' leases (wattbus.bridge.ownership): each publishes its lease on
`service/discovery/<instance>/lease` and the sweep is one owned "device", `sweep`, whose owner is
the live replica rendezvous hashing gives it. No claim is published (nothing is handed over: the
registry is rebuilt from the retained announcements), so the ACL's `service/discovery/#` is all
it writes. The sweeper alone sweeps, answers `rescan` and publishes announcements; a stand-by
keeps its registry from the sweeper's announcements and browses mDNS, so a take-over starts from
what is known. A dead sweeper's role moves when its lease runs out (≤ lease_s after its last
renewal); a replica that takes the role from a live one waits one renewal period first, so the
other has seen its lease and stopped. A sweeper paused past its lease wakes without the role
(its own lease is no longer held) and publishes nothing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from wattbus.bridge.ownership import Ownership
from wattbus.runner import ServiceContext

ROLE = "sweep"


class Sweeper:
    def __init__(self, ctx: ServiceContext[Any], lease_s: float) -> None:
        self.ctx = ctx
        self.changed = asyncio.Event()  # set on every lease seen or run out: time to look again
        self.ownership = Ownership(ctx, lease_s, self.changed.set) if lease_s > 0 else None
        self._assigned_at: float | None = None
        self._was_active = False
        ctx.counters.set("sweeper", 0)

    def start(self) -> None:
        if self.ownership is not None:
            self.ownership.start()

    async def stop(self) -> None:
        """A clean stop: the lease is released, a stand-by takes the role at once."""
        if self.ownership is not None:
            await self.ownership.stop()
            self.ownership.release()

    def active(self) -> bool:
        """This replica is the sweeper now (checked before every sweep and every publish)."""
        own = self.ownership
        if own is None:  # lease_s = 0: no replicas, this process sweeps
            return True
        now = time.monotonic()
        if not own.assigned(ROLE):
            self._assigned_at = None
            active = False
        else:
            if self._assigned_at is None:
                self._assigned_at = now
                if own.others_live():  # taken from a live replica: let it see my lease and stop
                    asyncio.get_running_loop().call_later(own.renew_s + 0.01, self.changed.set)
            # Kept while assigned; taken from a live replica only after a renewal period.
            active = self._was_active or not own.others_live() or now - self._assigned_at >= own.renew_s
        if active != self._was_active:
            self._was_active = active
            self.ctx.counters.set("sweeper", int(active))
            if active:
                self.ctx.counters.inc("sweeper_takeovers")
            self.ctx.log.info("sweeper" if active else "stand-by", replicas=",".join(sorted(own.live())))
        return active
