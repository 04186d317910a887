"""Inverters the discovery service announces (protocol `givenergy`) become plants of the bridge.

Configured inverters win: their address and, once read, their serial are pinned, and an adopted
plant of the same inverter is dropped. An announced inverter moving to a new address (DHCP) keeps
its device id; its plant is replaced by one at the new address, so only one client talks to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wattbus.adoption import Adoption, Decision

from .plant import InverterConfig, Plant

if TYPE_CHECKING:
    from .__main__ import Bridge


class Adopter:
    def __init__(self, bridge: Bridge) -> None:
        ctx = bridge.ctx
        self.bridge = bridge
        self.adoption = Adoption(["givenergy"], enabled=ctx.config.adopt, deny=ctx.config.deny,
                                 counters=ctx.counters, log=ctx.log.child("adoption"))
        self.adopted: dict[str, Plant] = {}  # announced device id -> its plant
        bridge.identified = self.identified

    def configured(self, plant: Plant) -> None:
        self.adoption.pin(f"{plant.config.host}:{plant.config.port}")

    def identified(self, plant: Plant) -> None:
        """A plant read its serial for the first time; a configured one pins it."""
        if plant in self.adopted.values():
            return
        self.adoption.pin(plant.serial, plant.device_id)
        duplicate = self.adopted.pop(plant.device_id, None)
        if duplicate is not None:
            self.bridge.ctx.log.info("announced inverter is configured: config wins", device=plant.device_id)
            self.bridge.remove(duplicate)
            self.adoption.forget(plant.device_id)

    def adopt(self, decision: Decision) -> None:
        ann, target = decision.announcement, decision.target
        old = self.adopted.pop(ann.device_id, None)
        if old is not None:
            self.bridge.remove(old)  # moved (DHCP): one client per dongle
        cfg = InverterConfig(host=target.host, port=target.port or 8899,
                             batteries=self.bridge.ctx.config.adopted_batteries, name=ann.model)
        self.adopted[ann.device_id] = self.bridge.add(cfg)
