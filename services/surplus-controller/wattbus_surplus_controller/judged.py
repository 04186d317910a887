"""The devices the controller depends on, judged online or offline as every consumer judges them.

A device's own retained availability keeps saying `online` when the bridge replica that polled it
dies uncleanly (no per-device last will); `wattbus.liveness` adds the owner's claim and lease
(docs/fleet.md, "Replicas of a bridge"). Here that verdict counts for the grid meter (judged
offline: the safe state of a stale meter, the alert says why), the battery (judged offline: its
last reading is not used) and the chargers and relays (judged offline: their loadpoint's alert
says so; back online or taken over by another replica: their setting is sent again, since the
new owner may never have seen it).
"""

from __future__ import annotations

from collections.abc import Callable

from wattbus.liveness import Liveness, Verdict
from wattbus.runner import ServiceContext

from .config import Config


class Judged:
    def __init__(self, ctx: ServiceContext[Config], on_update: Callable[[list[str]], None]) -> None:
        """on_update: called when the verdict of one of our devices changed, with those that came
        back online or changed owner."""
        cfg = ctx.config
        # device ref ("source/id") -> what it is to us, for the log and the alerts
        self.roles = {**{r.device: f"relay {r.id}'s device" for r in cfg.relays},
                      **{lp.charger: f"loadpoint {lp.id}'s charger" for lp in cfg.loadpoints},
                      **({cfg.battery: "battery"} if cfg.battery else {}),
                      **({cfg.grid_meter: "grid meter"} if cfg.grid_meter else {})}
        self.ctx, self.on_update = ctx, on_update
        self.offline: set[str] = set()  # refs judged offline
        self._owners: dict[str, str | None] = {}
        self.liveness = Liveness(ctx.bus, self._on_change)

    def start(self) -> None:
        self.liveness.start()

    def stop(self) -> None:
        self.liveness.stop()

    def reason(self, ref: str | None) -> str | None:
        """Why ref is judged offline now (None: online, or nobody has said anything about it yet);
        asked afresh, so "lease lapsed 40.2 s ago" counts on."""
        if ref is None or ref not in self.offline:
            return None
        source, device_id = ref.split("/", 1)
        return self.liveness.of(source, device_id).reason or "its bridge says so"

    def problem(self, ref: str | None) -> str | None:
        why = self.reason(ref)
        return None if why is None else f"{self.roles.get(ref or '', 'device')} {ref} judged offline: {why}"

    def _on_change(self, changed: dict[str, Verdict]) -> None:
        back: list[str] = []
        for ref, verdict in changed.items():
            if ref not in self.roles:
                continue
            was_offline = ref in self.offline
            owner_before = self._owners.get(ref)
            self._owners[ref] = verdict.owner
            if verdict.online is False:
                self.offline.add(ref)
                if not was_offline:
                    self.ctx.counters.inc("devices_judged_offline")
                    self.ctx.log.warning("device judged offline", role=self.roles[ref], device=ref,
                                         reason=verdict.reason or "its bridge says so")
                continue
            self.offline.discard(ref)
            taken_over = owner_before is not None and verdict.owner is not None and owner_before != verdict.owner
            if was_offline or taken_over:
                self.ctx.log.info("device back online" if was_offline else "device taken over by another replica",
                                  role=self.roles[ref], device=ref, owner=verdict.owner)
                back.append(ref)
        if changed.keys() & self.roles.keys():
            self.on_update(back)
