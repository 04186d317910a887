"""`probe_device`: read a described device once through its adapter, before it is saved (the setup
page's "add by hand"). `entry` is a device entry; its variables come as `vars.<name>` keys, since a
probe entry holds no nested tables."""

from __future__ import annotations

from typing import Any

from wattbus import messages as m
from wattbus.bridge import probe as toolkit
from wattbus.config import ConfigError
from wattbus.runner import ServiceContext

from . import families
from .adapter import device_meta
from .cli import read_once
from .config import Config, DeviceConfig, family_entry, resolve
from .fetch import FetchError
from .modbus import ModbusError
from .spec import MqttSource


def entry_of(raw: dict[str, Any]) -> dict[str, Any]:
    entry = {k: v for k, v in raw.items() if not k.startswith("vars.")}
    variables = {k[5:]: str(v) for k, v in raw.items() if k.startswith("vars.")}
    return {**entry, "vars": variables} if variables else entry


async def probe(ctx: ServiceContext[Config], command: m.CommandBase) -> m.CommandResult:
    assert isinstance(command, m.ProbeDevice)
    dev = toolkit.entry(ctx, entry_of(dict(command.entry)), DeviceConfig)
    if isinstance(dev, m.CommandResult):
        return dev
    if dev.template in families.FAMILIES:
        return await probe_family(ctx, dev)
    try:
        desc = resolve(dev, 0)
    except ConfigError as exc:
        return toolkit.invalid(ctx, str(exc))
    if isinstance(desc.source, MqttSource):
        return toolkit.invalid(ctx, f"{dev.id} listens on {desc.source.topic}: an MQTT device is not read on "
                                    "demand; save it and watch its first reading")
    try:
        reading, misses = await read_once(ctx.name, dev, desc)
    except (FetchError, ModbusError) as exc:
        ctx.counters.inc("probes_failed")
        return m.CommandResult(status="failed", message=str(exc))
    status: m.CommandStatus = "failed" if misses and len(misses) == len(desc.values) else "ok"
    message = f"{dev.id}: answered" + (f"; not matched: {'; '.join(misses)}" if misses else "")
    return m.CommandResult(status=status, message=message, devices=[device_meta(ctx.name, dev, desc)],
                           readings=[reading])  # type: ignore[list-item]  # a ReadingBase is one of them


async def probe_family(ctx: ServiceContext[Config], dev: DeviceConfig) -> m.CommandResult:
    """A device family's entry (families/): every device behind the address, read once."""
    try:
        family_entry(dev, 0)
        metas, readings = await toolkit.sample(families.adapter(str(dev.template), ctx.name, dev))
    except ConfigError as exc:
        return toolkit.invalid(ctx, str(exc))
    except FetchError as exc:
        return toolkit.result(ctx, dev.id, [], [], [str(exc)])
    return toolkit.result(ctx, dev.id, metas, readings, [])
