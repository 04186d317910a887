"""`probe_device`: read a Modbus endpoint once (the setup page's "add by hand" check) through the
same adapters the poll loop uses, for every unit id the entry lists. Nothing is announced: the
answer carries the identities and readings it would publish."""

from __future__ import annotations

from wattbus import messages as m
from wattbus.bridge import form
from wattbus.bridge import probe as toolkit
from wattbus.runner import ServiceContext
from wattbus.sunspec import NotSunSpec

from .adapter import open_unit
from .config import Config, DeviceConfig
from .link import Link, LinkError
from .profile import ProfileError
from .service import endpoint_of, units_of

# The setup page's "add by hand" form (wattbus.bridge.form); discovered plain Modbus devices are ours too.
FORMS = form.Forms(forms=(form.add_form(
    "sunspec", "SunSpec inverter, meter or battery (Modbus TCP)", "devices",
    {"host": "{host}", "port": "{port}", "unit_ids": ["{unit_id}"]},
    [form.host_field(), form.port_field(502),
     form.field(DeviceConfig, "unit_ids", name="unit_id", default=1, help="Modbus unit id (slave address)")],
    protocol="sunspec"),), protocols=("modbus",))


async def probe(ctx: ServiceContext[Config], command: m.CommandBase) -> m.CommandResult:
    assert isinstance(command, m.ProbeDevice)
    cfg = toolkit.entry(ctx, dict(command.entry), DeviceConfig)
    if isinstance(cfg, m.CommandResult):
        return cfg
    if not cfg.host and not cfg.serial_port:
        return toolkit.invalid(ctx, f"config [{ctx.name}.devices] host: give a host (Modbus TCP) or a serial_port "
                                    "(RTU)")
    link = Link(endpoint_of(cfg), cfg.timeout_s)
    devices: list[m.DeviceMeta] = []
    readings: list[m.ReadingBase] = []
    reasons: list[str] = []
    try:
        for unit in units_of(cfg):
            try:
                metas, values = await toolkit.sample(await open_unit(ctx, cfg, link, unit, publish_native=False))
            except (NotSunSpec, ProfileError) as exc:
                reasons.append(f"unit {unit}: {exc}")
                continue
            except LinkError as exc:
                reasons.append(f"unit {unit}: {exc}")
                if exc.exception_code is None:
                    break  # nothing answers on this endpoint: do not time out once per unit
                continue
            except (ValueError, KeyError, IndexError) as exc:  # garbage the decoders tripped over
                reasons.append(f"unit {unit}: unusable answer ({exc})")
                continue
            devices += metas
            readings += values
    finally:
        link.close()
    return toolkit.result(ctx, str(link.endpoint), devices, readings, reasons)
