"""What RoleTags learns from: the retained device metas on the bus and `[site]` in the file.

The metas come on the service's ordinary bus client (every client may read device topics). They
are retained, so the broker sends them all right after the subscription; the writer waits for that
burst to end before it starts taking readings, so the backlog a persistent session kept is tagged
with the parents already known. The site roles are read through the shared loader (wattbus.site)
and the file is watched: the setup wizard changes `[site]` and tells only http-api.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from wattbus import codec, topics
from wattbus import messages as m
from wattbus.bus import Bus, Message
from wattbus.config import ConfigError, LoadedConfig, load
from wattbus.log import Logger
from wattbus.site import SiteConfig, load_site, site_config

from .roles import RoleTags

CONNECT_WAIT_S = 5.0  # a broker that is not there yet: start anyway, parents arrive with the metas
META_QUIET_S = 0.3  # the retained burst has ended when no meta came for this long
META_WAIT_MAX_S = 3.0
FILE_POLL_S = 5.0


def meta_filters(subscriptions: list[str]) -> list[str]:
    """The meta filter for each place the readings come from: the site's bus or `sites/<id>/`."""
    out: list[str] = []
    for sub in subscriptions:
        if sub.startswith(f"{topics.SITE_PREFIX}/"):
            found = topics.in_site(sub.split("/", 2)[1], topics.ALL_META)
        else:
            found = topics.ALL_META
        if found not in out:
            out.append(found)
    return out


def initial_roles(loaded: LoadedConfig, log: Logger) -> RoleTags:
    """Roles from the file; a bad `[site]` must not stop the storing: roles by kind then."""
    try:
        found = load_site(loaded)
    except ConfigError as exc:
        log.warning("site roles unusable, tagging by kind until the file is fixed", error=str(exc))
        return RoleTags(SiteConfig())
    for warning in found.warnings:
        log.warning("old config layout", problem=warning)
    return RoleTags(found.site)


class RoleFeed:
    def __init__(self, roles: RoleTags, bus: Bus, loaded: LoadedConfig, log: Logger) -> None:
        self.roles = roles
        self.bus = bus
        self.loaded = loaded
        self.log = log
        self.metas = 0
        self._last_meta = 0.0

    def subscribe(self, filters: list[str]) -> None:
        for topic_filter in filters:
            self.bus.subscribe(topic_filter, bytes, self._on_meta)  # bytes: an empty payload clears a meta

    def _on_meta(self, msg: Message[bytes]) -> None:
        self._last_meta = time.monotonic()
        try:
            site, contract_topic = topics.strip_site(msg.topic)
            parsed = topics.parse(contract_topic)
        except topics.TopicError as exc:
            self.log.warning("meta on an unexpected topic, ignored", topic=msg.topic, error=str(exc))
            return
        if parsed.source is None or parsed.ident is None:
            return
        meta: m.DeviceMeta | None = None
        if msg.payload:
            try:
                meta = codec.decode(bytes(msg.payload), m.DeviceMeta)
            except codec.PayloadError as exc:
                self.log.warning("device meta not understood, its role tags stay as they were",
                                 topic=msg.topic, error=str(exc))
                return
        self.metas += 1
        if self.roles.on_meta(site, parsed.source, parsed.ident, meta):
            self.log.debug("device meta changed the role tags", topic=msg.topic)

    async def settle(self) -> None:
        """Wait (a few seconds at most) for the retained metas, so the first points have their parents."""
        started = time.monotonic()
        while not self.bus.connected and time.monotonic() - started < CONNECT_WAIT_S:
            await asyncio.sleep(0.05)
        connected = time.monotonic()
        while time.monotonic() - connected < META_WAIT_MAX_S:
            if time.monotonic() - max(self._last_meta, connected) >= META_QUIET_S:
                break
            await asyncio.sleep(0.05)
        self.log.info("site roles", grid=self.roles.site.grid, pv=self.roles.site.pv,
                      battery=self.roles.site.battery, chargers=self.roles.site.charger_refs(), metas=self.metas)

    async def watch_file(self) -> None:
        """Re-read `[site]` when the config file changes; a bad edit keeps the roles in use."""
        path = self.loaded.path
        if path is None:
            return
        seen = _mtime(path)
        while True:
            await asyncio.sleep(FILE_POLL_S)
            now = _mtime(path)
            if now == seen:
                continue
            seen = now
            try:
                site = site_config(load(path, self.loaded.environ))
            except ConfigError as exc:
                self.log.warning("config file changed but its site roles are unusable; keeping the roles in use",
                                 error=str(exc))
                continue
            if self.roles.set_site(site):
                self.log.info("site roles changed: new points carry the new role tags", grid=site.grid,
                              pv=site.pv, battery=site.battery, chargers=site.charger_refs())


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
