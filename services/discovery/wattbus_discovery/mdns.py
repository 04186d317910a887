"""Continuous mDNS/DNS-SD browsing for go-e chargers and Shelly devices.

zeroconf keeps re-querying on its own schedule and reports goodbyes and expired records, so a
device that leaves the network is seen as removed without a sweep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from wattbus.counters import Counters
from wattbus.http_session import HttpError
from wattbus.log import Logger
from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from .config import Scope
from .found import Found
from .http_ident import family_of, identify

SERVICE_TYPES = ["_http._tcp.local.", "_shelly._tcp.local."]


class MdnsWatcher:
    def __init__(self, scope: Scope, interfaces: list[str], http_timeout_s: float, counters: Counters, log: Logger,
                 on_found: Callable[[Found], None], on_removed: Callable[[str], None]) -> None:
        self.scope, self.interfaces, self.counters, self.log = scope, interfaces, counters, log
        self.http_timeout_s = http_timeout_s
        self.on_found, self.on_removed = on_found, on_removed
        self.present: dict[str, str] = {}  # mDNS service name -> device id
        self._tasks: set[asyncio.Task[None]] = set()
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None

    async def start(self) -> None:
        interfaces: list[str] | InterfaceChoice = self.interfaces or InterfaceChoice.All
        self._zc = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
        self._browser = AsyncServiceBrowser(self._zc.zeroconf, SERVICE_TYPES, handlers=[self._changed])

    async def stop(self) -> None:
        if self._browser is not None:
            await self._browser.async_cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._zc is not None:
            await self._zc.async_close()

    def present_ids(self) -> set[str]:
        return set(self.present.values())

    def _changed(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Removed:
            device_id = self.present.pop(name, None)
            if device_id is not None and device_id not in self.present.values():
                self.on_removed(device_id)
            return
        task = asyncio.ensure_future(self._resolve(service_type, name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, service_type: str, name: str) -> None:
        assert self._zc is not None
        instance = name[: -len(service_type) - 1] if name.endswith("." + service_type) else name
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(self._zc.zeroconf, 3000):
            self.counters.inc("mdns_unresolved")
            return
        family = family_of(instance) or family_of(info.server or "")
        if family is None:
            self.counters.inc("mdns_ignored")  # some other _http._tcp device (printer, NAS, ...)
            return
        addresses = [a for a in info.parsed_addresses(IPVersion.V4Only) if self.scope.allows(a)]
        if not addresses or info.port is None:
            self.counters.inc("mdns_outside_networks")
            self.log.info("mDNS device outside the configured networks ignored", name=name,
                          addresses=info.parsed_addresses(IPVersion.V4Only))
            return
        for address in addresses:
            try:
                found = await identify(address, info.port, family, self.http_timeout_s)
            except HttpError as exc:  # refused, timeout, or an answer that is not HTTP
                self.counters.inc("http_probe_failed")
                self.log.info("mDNS device did not answer over HTTP", name=name, address=address, error=repr(exc))
                continue
            if found is None:
                self.counters.inc("mdns_not_confirmed")
                self.log.info("mDNS name looks like a known device but the HTTP API does not", name=name,
                              address=address, port=info.port, family=family)
                continue
            found = Found(found.protocol, found.address, found.port, found.serial, found.manufacturer, found.model,
                          found.kind, found.unit_id, found.firmware, "mdns", {**found.extra, "mdns_name": instance})
            self.present[name] = found.device_id
            self.on_found(found)
            return
