"""The ECUs the bridge polls: configured ones plus those the discovery service announces.

Configured ECUs win: their address and ECU id are pinned, so an announcement of the same ECU
(at any address) is ignored. An announced ECU gets a poller with the `[ecu-bridge.adopted]`
settings; announced again at another address (DHCP), its poller moves there. Only one poller per
ECU ever runs: the ECU serves one client at a time.
"""

from __future__ import annotations

import asyncio

import msgspec
from wattbus import apsystems
from wattbus.adoption import Adoption, Decision
from wattbus.runner import ServiceContext

from .config import Config, EcuConfig
from .poller import EcuPoller


class Fleet:
    def __init__(self, ctx: ServiceContext[Config]) -> None:
        self.ctx = ctx
        self.pollers: list[EcuPoller] = []
        self.tasks: dict[EcuPoller, asyncio.Task[None]] = {}
        self.adopted: dict[str, EcuPoller] = {}  # announced device id -> its poller
        self.adoption = Adoption(["aps-ecu"], enabled=ctx.config.adopt, deny=ctx.config.deny,
                                 counters=ctx.counters, log=ctx.log.child("adoption"))
        for cfg in ctx.config.ecus:
            self.adoption.pin(f"{cfg.host}:{cfg.port}")
            self.start(cfg)

    def start(self, cfg: EcuConfig) -> EcuPoller:
        poller = EcuPoller(self.ctx, cfg, on_identified=self._identified)
        self.pollers.append(poller)
        self.tasks[poller] = asyncio.create_task(poller.run(), name=f"ecu-{cfg.host}:{cfg.port}")
        return poller

    def stop(self, poller: EcuPoller) -> None:
        self.pollers.remove(poller)
        task = self.tasks.pop(poller, None)
        if task is not None:
            task.cancel()

    def _identified(self, poller: EcuPoller, ecu_id: str) -> None:
        """A configured ECU told its id: pin it, and drop an adopted poller of the same ECU."""
        if poller in self.adopted.values():
            return
        device_id = apsystems.ecu_device_id(ecu_id)
        self.adoption.pin(ecu_id, device_id)
        duplicate = self.adopted.pop(device_id, None)
        if duplicate is not None:
            self.ctx.log.info("announced ECU is configured: config wins", device=device_id)
            self.stop(duplicate)
            self.adoption.forget(device_id)

    def adopt(self, decision: Decision) -> None:
        ann, target = decision.announcement, decision.target
        old = self.adopted.pop(ann.device_id, None)
        if old is not None:
            self.stop(old)  # moved (DHCP): one poller per ECU
        cfg = EcuConfig(host=target.host, port=target.port or 8899, name=ann.model,
                        **msgspec.structs.asdict(self.ctx.config.adopted))
        self.adopted[ann.device_id] = self.start(cfg)

    async def wait(self) -> None:
        """Until stopping; then let every poller finish its current exchange."""
        await self.ctx.stopping.wait()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
