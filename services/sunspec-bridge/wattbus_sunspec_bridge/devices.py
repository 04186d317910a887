"""The devices the bridge polls: a SunSpec unit (many models) or a register-profile meter.

Each device keeps its own failure count and backoff; availability goes offline after repeated
failures and online again with the next good poll.
"""

from __future__ import annotations

import time
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.runner import DeviceChannel, ServiceContext

from . import mapping
from .config import Config, DeviceConfig
from .decode import DecodedModel
from .link import Link, LinkError
from .profile import Profile, meter_reading, read_profile
from .scan import DeviceMap, NotSunSpec, read_models, scan
from .stats import DailyStats

CONTROL_CAPABILITIES = ["set_power_limit", "set_connected"]


class Polled:
    """Failure bookkeeping shared by both device types."""

    def __init__(self, ctx: ServiceContext[Config], cfg: DeviceConfig, link: Link, unit: int) -> None:
        self.ctx, self.cfg, self.link, self.unit = ctx, cfg, link, unit
        self.failures = 0
        self.channels: list[DeviceChannel] = []
        self.device_id = ""

    @property
    def interval_s(self) -> float:
        return self.cfg.poll_interval_s or self.ctx.config.poll_interval_s

    def next_delay_s(self) -> float:
        if self.failures == 0:
            return self.interval_s
        return float(min(self.interval_s * 2 ** (self.failures - 1), self.ctx.config.max_backoff_s))

    def failed(self, error: Exception) -> None:
        self.failures += 1
        self.ctx.counters.inc("poll_failures")
        if self.failures <= 3 or self.failures % 50 == 0:
            self.ctx.log.warning("poll failed", device=self.device_id, error=str(error), failures=self.failures)
        if self.failures == self.ctx.config.offline_after_failures:
            self.ctx.log.warning("device offline", device=self.device_id)
            for channel in self.channels:
                channel.set_online(False)

    def succeeded(self) -> None:
        if self.failures >= self.ctx.config.offline_after_failures:
            self.ctx.log.info("device back online", device=self.device_id)
        self.failures = 0
        self.ctx.counters.inc("polls")


class SunSpecDevice(Polled):
    def __init__(self, ctx: ServiceContext[Config], cfg: DeviceConfig, link: Link, dmap: DeviceMap) -> None:
        super().__init__(ctx, cfg, link, dmap.unit)
        self.map = dmap
        self.common: dict[str, Any] = {}
        self.stats = DailyStats()
        self.stats_due = 0.0
        self.native_due = 0.0
        self.string_channels: dict[int, DeviceChannel] = {}
        self.battery_channel: DeviceChannel | None = None
        self.main: DeviceChannel | None = None
        self.last: dict[int, DecodedModel] = {}

    @property
    def address(self) -> str:
        return f"{self.link.endpoint}/{self.unit}"

    @property
    def model_ids(self) -> list[int]:
        return [b.model_id for b in self.map.blocks]

    def _announce(self, common: dict[str, Any]) -> None:
        self.common = common
        self.device_id = mapping.device_id(common, f"{self.link.endpoint.host}-{self.link.endpoint.port}-{self.unit}")
        kind = mapping.device_kind(self.model_ids)
        caps = CONTROL_CAPABILITIES if self.cfg.controls and 123 in self.model_ids else []
        meta = m.DeviceMeta(device_id=self.device_id, kind=kind, source=self.ctx.name, protocol="sunspec",
                            manufacturer=common.get("Mn"), model=common.get("Md"), serial=common.get("SN"),
                            firmware=common.get("Vr"), address=self.address, name=self.cfg.name,
                            capabilities=caps)
        self.main = self.ctx.device(meta)
        self.channels = [self.main]

    def _child(self, suffix: str, kind: m.DeviceKind, name: str | None) -> DeviceChannel:
        meta = m.DeviceMeta(device_id=f"{self.device_id}-{suffix}", kind=kind, source=self.ctx.name,
                            protocol="sunspec", manufacturer=self.common.get("Mn"), model=self.common.get("Md"),
                            serial=self.common.get("SN"), address=self.address, name=name, parent_id=self.device_id)
        channel = self.ctx.device(meta)
        self.channels.append(channel)
        return channel

    async def poll(self) -> None:
        only = set(self.cfg.models) if self.cfg.models else None
        decoded, problems = await read_models(self.link, self.map, only, self.cfg.timeout_s)
        for problem in problems:
            count = self.ctx.counters.inc("decode_problems")
            if count <= 20 or count % 500 == 0:
                self.ctx.log.warning("decode problem", address=self.address, problem=problem)
        common = next((d.values for d in decoded if d.model_id == 1), {})
        if self.main is None or common.get("SN") != self.common.get("SN"):
            self._announce(common)
        ts = m.utc_now()
        self.last = {d.model_id: d for d in decoded}
        out = mapping.readings(self.device_id, ts, decoded)
        assert self.main is not None
        if out.main is not None:
            self.main.publish_reading(out.main)
        for reading in out.strings:
            channel = self.string_channels.get(reading.index)
            if channel is None:
                label = reading.extra.get("label")
                channel = self.string_channels[reading.index] = self._child(
                    f"mppt{reading.index}", "string", label if isinstance(label, str) else None)
            channel.publish_reading(reading)
        if out.battery is not None:
            if out.main is None:
                self.main.publish_reading(out.battery)
            else:
                if self.battery_channel is None:
                    self.battery_channel = self._child("battery", "battery", None)
                self.battery_channel.publish_reading(out.battery)
        if self.ctx.config.native and time.monotonic() >= self.native_due:
            self.native_due = time.monotonic() + self.ctx.config.native_interval_s
            self._publish_native(decoded, ts.isoformat())
        self.stats.update(ts, decoded)
        if time.monotonic() >= self.stats_due:
            self.stats_due = time.monotonic() + self.ctx.config.stats_interval_s
            for model in decoded:
                if model.model_id != 1:
                    self.ctx.bus.publish(topics.device_native(self.ctx.name, self.device_id, f"stats_{model.model_id}"),
                                         self.stats.document(model.model_id), qos=0)
        self.main.set_online(True)

    def _publish_native(self, decoded: list[DecodedModel], ts: str) -> None:
        for model in decoded:
            doc = {"model": model.model_id, "name": model.name, "address": model.address, "timestamp": ts,
                   "values": model.values}
            self.ctx.bus.publish(topics.device_native(self.ctx.name, self.device_id, f"model_{model.model_id}"),
                                 doc, qos=0)

    async def rescan(self) -> None:
        self.map = await scan(self.link, self.unit, tuple(self.cfg.base_addresses), self.cfg.timeout_s)


class ProfileDevice(Polled):
    def __init__(self, ctx: ServiceContext[Config], cfg: DeviceConfig, link: Link, unit: int, profile: Profile,
                 serial: str) -> None:
        super().__init__(ctx, cfg, link, unit)
        self.profile = profile
        self.device_id = topics.slug(profile.manufacturer, profile.model, serial)
        meta = m.DeviceMeta(device_id=self.device_id, kind="meter", source=ctx.name, protocol="modbus",
                            manufacturer=profile.manufacturer, model=profile.model, serial=serial,
                            address=f"{link.endpoint}/{unit}", name=cfg.name)
        self.main = ctx.device(meta)
        self.channels = [self.main]

    async def poll(self) -> None:
        values = await read_profile(self.link, self.unit, self.profile)
        self.main.publish_reading(meter_reading(self.device_id, m.utc_now(), values))

    async def rescan(self) -> None:
        """A profile meter has no map to re-read."""


Device = SunSpecDevice | ProfileDevice


async def poll_forever(device: Device) -> None:
    """One device's loop: its own schedule and backoff, so a dead one never delays the others."""
    ctx = device.ctx
    while True:
        try:
            if device.failures >= ctx.config.offline_after_failures:
                await device.rescan()  # it may have rebooted with another model layout
            await device.poll()
            device.succeeded()
        except (LinkError, NotSunSpec) as exc:
            device.failed(exc)
        except (ValueError, KeyError, IndexError) as exc:
            # A decode that tripped over garbage: count it and carry on like a failed poll.
            ctx.counters.inc("garbage")
            device.failed(exc)
        if not await ctx.sleep(device.next_delay_s()):
            return
