"""The devices the bridge polls: configured ones plus go-e chargers and Shellies announced by discovery.

Configured devices win: their address and, once detected, their id and serial are pinned. An
announced device gets a worker with the default limits; announced at a new address (DHCP), its
worker moves there. A Shelly announced with authentication on needs `shelly_password`.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from wattbus.adoption import Adoption, Decision
from wattbus.config import ConfigError
from wattbus.runner import ServiceContext

from .config import Config, DeviceConfig
from .worker import DeviceWorker


class Fleet:
    def __init__(self, ctx: ServiceContext[Config]) -> None:
        self.ctx = ctx
        self.workers: list[DeviceWorker] = []
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.adopted: dict[str, DeviceWorker] = {}  # announced device id -> its worker
        self.adoption = Adoption(["goe", "shelly"], enabled=ctx.config.adopt, deny=ctx.config.deny,
                                 counters=ctx.counters, log=ctx.log.child("adoption"))
        for cfg in ctx.config.devices:
            url = urlsplit(cfg.url)
            self.adoption.pin(f"{url.hostname}:{url.port or 80}")
            self.start(cfg)

    def start(self, cfg: DeviceConfig) -> DeviceWorker:
        worker = DeviceWorker(self.ctx, cfg)
        worker.on_detected = self._detected
        self.workers.append(worker)
        self.tasks[id(worker)] = asyncio.create_task(worker.run(), name=f"device-{cfg.url}")
        return worker

    def stop(self, worker: DeviceWorker) -> None:
        self.workers.remove(worker)
        task = self.tasks.pop(id(worker), None)
        if task is not None:
            task.cancel()

    def _detected(self, worker: DeviceWorker) -> None:
        """A configured device told its id: pin it and drop an adopted worker of the same device."""
        if worker in self.adopted.values() or worker.adapter is None:
            return
        device_id = worker.adapter.device_id
        self.adoption.pin(device_id)
        duplicate = self.adopted.pop(device_id, None)
        if duplicate is not None:
            self.ctx.log.info("announced device is configured: config wins", device=device_id)
            self.stop(duplicate)
            self.adoption.forget(device_id)

    def adopt(self, decision: Decision) -> bool:
        """Start (or move) a worker; False when a Shelly needs a password that is not configured."""
        ann, target = decision.announcement, decision.target
        password: str | None = None
        if ann.protocol == "shelly" and ann.extra.get("auth") is True:
            try:
                password = DeviceConfig(url="http://x", password=self.ctx.config.shelly_password,
                                        password_file=self.ctx.config.shelly_password_file).resolved_password()
            except ConfigError as exc:
                self.ctx.log.error("announced Shelly skipped", device=ann.device_id, error=str(exc))
            if password is None:
                self.ctx.counters.inc("adopt_skipped_auth")
                self.ctx.log.warning("announced Shelly has authentication on: set shelly_password to adopt it",
                                     device=ann.device_id, address=target.host)
                return False
        old = self.adopted.pop(ann.device_id, None)
        if old is not None:
            self.stop(old)  # moved (DHCP)
        host = f"[{target.host}]" if ":" in target.host else target.host
        cfg = DeviceConfig(url=f"http://{host}:{target.port or 80}", password=password)
        self.adopted[ann.device_id] = self.start(cfg)
        return True

    async def wait(self) -> None:
        await self.ctx.stopping.wait()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
