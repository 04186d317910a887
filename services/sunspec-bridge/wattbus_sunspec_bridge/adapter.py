"""The bridge's adapters (wattbus.bridge.Adapter): a SunSpec unit and a register-profile meter.

A SunSpec unit is identified by its model chain and common model (the id from manufacturer and
serial, the kind from its models), read in as few requests as the map allows and mapped onto the
contract: the inverter or meter, its strings (model 160) and its battery as child devices. Model
123 (immediate controls) takes `set_power_limit` and `set_connected`, opt-in per device
(`controls = true`): each is validated, written, read back and answered with what the device reports.
"""

from __future__ import annotations

import time
from typing import Any

from wattbus import messages as m
from wattbus import topics
from wattbus.bridge import answer
from wattbus.runner import ServiceContext
from wattbus.sunspec import DeviceMap, NotSunSpec

from . import mapping
from .config import Config, DeviceConfig
from .decode import DecodedModel, decode_model, point_offsets
from .link import Link, LinkError
from .models import model_def
from .profile import Profile, load_profile, meter_reading, read_profile, read_serial
from .scan import read_models, scan
from .stats import DailyStats

CONTROLS = 123
CONTROL_COMMANDS: tuple[type[m.CommandBase], ...] = (m.SetPowerLimit, m.SetConnected)


class Refused(Exception):
    def __init__(self, status: m.CommandStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class SunSpecUnit:
    commands = CONTROL_COMMANDS
    errors: tuple[type[Exception], ...] = (LinkError, NotSunSpec)

    def __init__(self, ctx: ServiceContext[Config], cfg: DeviceConfig, link: Link, unit: int,
                 publish_native: bool = True) -> None:
        self.ctx, self.cfg, self.link, self.unit = ctx, cfg, link, unit
        self.publish_native = publish_native  # off for a probe: it announces and publishes nothing
        self.map: DeviceMap | None = None
        self.common: dict[str, Any] = {}
        self.metas: list[m.DeviceMeta] = []
        self.stats = DailyStats()
        self.stats_due = 0.0
        self.native_due = 0.0

    @property
    def address(self) -> str:
        return f"{self.link.endpoint}/{self.unit}"

    @property
    def device_id(self) -> str:
        return self.metas[0].device_id if self.metas else ""

    async def identify(self) -> list[m.DeviceMeta]:
        """Scan the map (again after the unit was lost: it may have rebooted with another layout)
        and read the common model."""
        timeout = self.cfg.probe_timeout_s if self.map is None else self.cfg.timeout_s
        self.map = await scan(self.link, self.unit, tuple(self.cfg.base_addresses), timeout)
        decoded, _problems = await read_models(self.link, self.map, {1}, self.cfg.timeout_s)
        self._identity(next((d.values for d in decoded if d.model_id == 1), {}))
        return self.metas

    def _identity(self, common: dict[str, Any]) -> None:
        assert self.map is not None
        self.common = common
        device_id = mapping.device_id(common, f"{self.link.endpoint.host}-{self.link.endpoint.port}-{self.unit}")
        models = self.map.model_ids
        caps = [t for t in ("set_power_limit", "set_connected") if self.cfg.controls and CONTROLS in models]
        self.metas = [m.DeviceMeta(device_id=device_id, kind=mapping.device_kind(models), source=self.ctx.name,
                                   protocol="sunspec", manufacturer=common.get("Mn"), model=common.get("Md"),
                                   serial=common.get("SN"), firmware=common.get("Vr"), address=self.address,
                                   name=self.cfg.name, capabilities=caps)]

    def _child(self, device_id: str, kind: m.DeviceKind, name: str | None) -> None:
        if any(meta.device_id == device_id for meta in self.metas):
            return
        self.metas.append(m.DeviceMeta(
            device_id=device_id, kind=kind, source=self.ctx.name, protocol="sunspec",
            manufacturer=self.common.get("Mn"), model=self.common.get("Md"), serial=self.common.get("SN"),
            address=self.address, name=name, parent_id=self.device_id))

    async def read(self) -> list[m.ReadingBase]:
        if self.map is None:
            await self.identify()
        assert self.map is not None
        only = set(self.cfg.models) if self.cfg.models else None
        decoded, problems = await read_models(self.link, self.map, only, self.cfg.timeout_s)
        for problem in problems:
            count = self.ctx.counters.inc("decode_problems")
            if count <= 20 or count % 500 == 0:
                self.ctx.log.warning("decode problem", address=self.address, problem=problem)
        common = next((d.values for d in decoded if d.model_id == 1), {})
        if common.get("SN") != self.common.get("SN"):
            self._identity(common)  # another device answers at this address now
        ts = m.utc_now()
        out = mapping.readings(self.device_id, ts, decoded)
        readings: list[m.ReadingBase] = [out.main] if out.main is not None else []
        for string in out.strings:
            label = string.extra.get("label")
            self._child(string.device_id, "string", label if isinstance(label, str) else None)
            readings.append(string)
        if out.battery is not None:
            if out.main is not None:  # else the unit is the battery and the reading is its own
                self._child(out.battery.device_id, "battery", None)
            readings.append(out.battery)
        if self.publish_native:
            self._native(decoded, ts)
        return readings

    def _native(self, decoded: list[DecodedModel], ts: Any) -> None:
        """iotic's `live` (every decoded point per model) and the day's min/max, on native topics."""
        now = time.monotonic()
        if self.ctx.config.native and now >= self.native_due:
            self.native_due = now + self.ctx.config.native_interval_s
            for model in decoded:
                doc = {"model": model.model_id, "name": model.name, "address": model.address,
                       "timestamp": ts.isoformat(), "values": model.values}
                self.ctx.bus.publish(topics.device_native(self.ctx.name, self.device_id, f"model_{model.model_id}"),
                                     doc, qos=0)
        self.stats.update(ts, decoded)
        if now >= self.stats_due:
            self.stats_due = now + self.ctx.config.stats_interval_s
            for model in decoded:
                if model.model_id != 1:
                    self.ctx.bus.publish(topics.device_native(self.ctx.name, self.device_id, f"stats_{model.model_id}"),
                                         self.stats.document(model.model_id), qos=0)

    # ------------------------------------------------------------------ model 123

    async def execute(self, command: m.CommandBase) -> m.CommandResult:
        try:
            if not self.cfg.controls:
                raise Refused("refused", f"controls are off for {self.device_id}: set controls = true "
                                         "in its [[sunspec-bridge.devices]] entry to allow writes")
            address, current = await self._controls()
            offsets = point_offsets(model_def(CONTROLS))
            writes: list[tuple[int, int]] = []
            if isinstance(command, m.SetPowerLimit):
                if command.limit_pct is None:
                    writes.append((offsets["WMaxLim_Ena"][0], 0))
                else:
                    raw = _to_raw(command.limit_pct, current.values.get("WMaxLimPct_SF"), "WMaxLimPct")
                    writes += [(offsets["WMaxLimPct"][0], raw), (offsets["WMaxLim_Ena"][0], 1)]
            elif isinstance(command, m.SetConnected):
                writes.append((offsets["Conn"][0], 1 if command.connected else 0))
            for offset, value in writes:
                await self.link.write(self.unit, address + offset, [value])
            _, after = await self._controls()
        except Refused as exc:
            return answer(command, self.device_id, exc.status, str(exc))
        applied = {k: after.values.get(k) for k in ("WMaxLimPct", "WMaxLim_Ena", "Conn")}
        if _confirmed(command, after.values):
            return answer(command, self.device_id, "ok", applied=applied)
        return answer(command, self.device_id, "failed", "the inverter did not take the new value", applied)

    async def _controls(self) -> tuple[int, DecodedModel]:
        block = self.map.first(CONTROLS) if self.map is not None else None
        if block is None:
            raise Refused("refused", f"{self.device_id} has no SunSpec model 123 (immediate controls)")
        regs = await self.link.read(self.unit, block.address, block.length + 2, timeout_s=self.cfg.timeout_s)
        return block.address, decode_model(model_def(CONTROLS), block.address, regs)

    async def close(self) -> None:
        """The link is the endpoint's, shared by its units: nothing of this unit's own to release."""


def _to_raw(value: float, sf: Any, what: str) -> int:
    if not isinstance(sf, int):
        raise Refused("failed", f"{what}: the inverter does not implement its scale factor")
    scaled: float = value / 10 ** sf
    return round(scaled) & 0xFFFF


def _confirmed(command: m.CommandBase, values: dict[str, Any]) -> bool:
    if isinstance(command, m.SetPowerLimit):
        if command.limit_pct is None:
            return bool(values.get("WMaxLim_Ena") == "DISABLED")
        read = values.get("WMaxLimPct")
        return (values.get("WMaxLim_Ena") == "ENABLED" and isinstance(read, (int, float))
                and abs(read - command.limit_pct) < 0.51)
    return isinstance(command, m.SetConnected) and values.get("Conn") == ("CONNECT" if command.connected
                                                                          else "DISCONNECT")


class ProfileMeter:
    """A non-SunSpec meter read by its register profile (profiles/*.toml); it takes no commands."""

    commands: tuple[type[m.CommandBase], ...] = ()
    errors: tuple[type[Exception], ...] = (LinkError,)

    def __init__(self, ctx: ServiceContext[Config], cfg: DeviceConfig, link: Link, unit: int,
                 profile: Profile) -> None:
        self.ctx, self.cfg, self.link, self.unit, self.profile = ctx, cfg, link, unit, profile
        self.metas: list[m.DeviceMeta] = []

    async def identify(self) -> list[m.DeviceMeta]:
        if self.metas:  # the serial was read once; a meter keeps it
            return self.metas
        serial = self.cfg.serial or await read_serial(self.link, self.unit, self.profile) \
            or f"{self.link.endpoint}-{self.unit}"
        self.metas = [m.DeviceMeta(device_id=topics.slug(self.profile.manufacturer, self.profile.model, serial),
                                   kind="meter", source=self.ctx.name, protocol="modbus",
                                   manufacturer=self.profile.manufacturer, model=self.profile.model, serial=serial,
                                   address=f"{self.link.endpoint}/{self.unit}", name=self.cfg.name)]
        return self.metas

    async def read(self) -> list[m.ReadingBase]:
        values = await read_profile(self.link, self.unit, self.profile)
        return [meter_reading(self.metas[0].device_id, m.utc_now(), values)]

    async def execute(self, command: m.CommandBase) -> m.CommandResult:
        return answer(command, self.metas[0].device_id, "refused", "a meter takes no commands")

    async def close(self) -> None:
        """The link is the endpoint's."""


Unit = SunSpecUnit | ProfileMeter


async def open_unit(ctx: ServiceContext[Config], cfg: DeviceConfig, link: Link, unit: int,
                    publish_native: bool = True) -> Unit:
    """The adapter for one unit id behind an endpoint, identified (raises NotSunSpec, LinkError,
    ProfileError)."""
    adapter: Unit
    if cfg.protocol == "sunspec":
        adapter = SunSpecUnit(ctx, cfg, link, unit, publish_native)
    else:
        adapter = ProfileMeter(ctx, cfg, link, unit, load_profile(cfg.protocol, ctx.config.profiles_dir))
    await adapter.identify()
    return adapter
