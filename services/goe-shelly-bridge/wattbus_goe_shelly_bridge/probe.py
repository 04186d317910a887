"""`probe_device`: read a go-e Charger or Shelly once at a URL (the setup page's "add by hand" check),
with the same detection and adapters the poll loop uses, without adopting it."""

from __future__ import annotations

from wattbus import messages as m
from wattbus.config import ConfigError, convert
from wattbus.runner import ServiceContext

from .config import Config, DeviceConfig
from .detect import detect
from .shelly import ShellyDevice
from .transport import DeviceError, HttpDevice


async def probe(ctx: ServiceContext[Config], command: m.CommandBase) -> m.CommandResult:
    assert isinstance(command, m.ProbeDevice)
    try:
        cfg = convert(f"{ctx.name}.devices", dict(command.entry), DeviceConfig, dict.fromkeys(command.entry, "probe"))
        password = cfg.resolved_password()
    except ConfigError as exc:
        ctx.counters.inc("probes_invalid")
        return m.CommandResult(status="invalid", message=str(exc))
    http = HttpDevice(cfg.url, timeout_s=ctx.config.timeout_s, username=cfg.username, password=password)
    try:
        adapter = await detect(http)
        readings = await adapter.read()
    except DeviceError as exc:
        ctx.counters.inc("probes_failed")
        return m.CommandResult(status="failed", message=str(exc))
    finally:
        await http.close()
    metas = adapter.metas(ctx.name, readings) if isinstance(adapter, ShellyDevice) else adapter.metas(ctx.name)
    return m.CommandResult(status="ok", message=f"{cfg.url}: {adapter.kind} ({adapter.generation}) answered",
                           devices=metas, readings=readings)  # type: ignore[arg-type]
