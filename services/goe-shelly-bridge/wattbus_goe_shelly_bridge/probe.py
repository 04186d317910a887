"""`probe_device`: read a go-e Charger or Shelly once at a URL (the setup page's "add by hand" check)
with the adapter the poll loop uses, without adopting it."""

from __future__ import annotations

from wattbus import messages as m
from wattbus.bridge import form
from wattbus.bridge import probe as toolkit
from wattbus.config import ConfigError
from wattbus.runner import ServiceContext

from .adapter import HttpAdapter
from .config import Config, DeviceConfig
from .transport import DeviceError

FORMS = form.Forms(forms=tuple(form.add_form(
    protocol, title, "devices", {"url": "http://{host}:{port}"}, [form.host_field(), form.port_field(80)],
    protocol=protocol) for protocol, title in (("goe", "go-e Charger (wallbox)"), ("shelly", "Shelly relay or meter"))))


async def probe(ctx: ServiceContext[Config], command: m.CommandBase) -> m.CommandResult:
    assert isinstance(command, m.ProbeDevice)
    cfg = toolkit.entry(ctx, dict(command.entry), DeviceConfig)
    if isinstance(cfg, m.CommandResult):
        return cfg
    try:
        adapter = HttpAdapter(ctx, cfg, cfg.resolved_password())
    except ConfigError as exc:
        return toolkit.invalid(ctx, str(exc))
    try:
        devices, readings = await toolkit.sample(adapter)
    except DeviceError as exc:
        ctx.counters.inc("probes_failed")
        return m.CommandResult(status="failed", message=str(exc))  # it names the URL
    assert adapter.device is not None
    return m.CommandResult(status="ok", message=f"{cfg.url}: {adapter.device.kind} ({adapter.device.generation}) "
                           "answered", devices=devices, readings=readings)  # type: ignore[arg-type]
