"""The devices one bridge polls, configured and adopted, in one place.

Configured devices win: a device the config names is pinned in the bridge's `Adoption`, so an
announcement of it is ignored, and an adopted poller of the same device stops when the configured
one starts. An announcement (discovery service) starts a *finder*, the bridge's coroutine that
identifies what is at that address and starts a poller per device it finds; a move (DHCP) or a
denial stops the finder and every poller it started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from ..adoption import Adoption, Decision
from ..runner import ServiceContext
from .poller import Poller

Finder = Callable[[Decision], Coroutine[Any, Any, None]]


class Fleet:
    def __init__(self, ctx: ServiceContext[Any], adoption: Adoption | None = None) -> None:
        self.ctx = ctx
        self.adoption = adoption
        self.pollers: dict[str, Poller] = {}  # main device id -> its poller
        self.tasks: set[asyncio.Task[None]] = set()
        self._polling: dict[str, asyncio.Task[None]] = {}
        self._finders: dict[str, asyncio.Task[None]] = {}  # announced id -> the task finding its devices
        self._found: dict[str, set[str]] = {}  # announced id -> device ids its finder started

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

    def pin(self, *keys: str | None) -> None:
        """Serials, device ids or addresses the config names: announcements of them are not adopted."""
        if self.adoption is not None:
            self.adoption.pin(*keys)

    def start(self, poller: Poller, adopted_as: str | None = None) -> bool:
        """Poll a device: a configured one (adopted_as None) or one a finder found for an announcement.
        Returns False when an adopted device turns out to be configured (config wins)."""
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
        self._polling[device_id] = self.spawn(poller.run(), f"poll-{device_id}")
        return True

    def adopt(self, finder: Finder) -> None:
        """Follow the discovery service's announcements: a finder per new or moved device."""
        if self.adoption is None:
            raise ValueError("Fleet.adopt needs an Adoption")

        def on_decision(decision: Decision) -> None:
            announced = decision.announcement.device_id
            self._stop_adopted(announced, forget=False)  # a move: the old address is let go first
            self._finders[announced] = self.spawn(finder(decision), f"adopted-{announced}")

        self.adoption.subscribe(self.ctx.bus, on_decision)

    async def run(self) -> None:
        """Until the service stops; then every poller and finder ends (adapters closed)."""
        try:
            await self.ctx.stopping.wait()
        finally:
            tasks = list(self.tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _stop_polling(self, device_id: str) -> None:
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
