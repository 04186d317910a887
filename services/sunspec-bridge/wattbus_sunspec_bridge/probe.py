"""`probe_device`: read a Modbus endpoint once (the setup page's "add by hand" check) with the same
link, SunSpec scan, register profiles and mapping the poll loop uses, for every unit id the entry
lists. Nothing is announced: the answer carries the identities and readings it would publish."""

from __future__ import annotations

from wattbus import messages as m
from wattbus import topics
from wattbus.config import ConfigError, convert
from wattbus.runner import ServiceContext

from . import mapping
from .bridge import endpoint_of
from .config import Config, DeviceConfig
from .link import Link, LinkError
from .profile import ProfileError, load_profile, meter_reading, read_profile, read_serial
from .scan import NotSunSpec, read_models, scan


async def _unit(ctx: ServiceContext[Config], cfg: DeviceConfig, link: Link,
                unit: int) -> tuple[list[m.DeviceMeta], list[m.Reading]]:
    """One unit's identity and readings, as SunSpecDevice/ProfileDevice would announce and publish them."""
    address = f"{link.endpoint}/{unit}"
    now = m.utc_now()
    if cfg.protocol != "sunspec":
        profile = load_profile(cfg.protocol, ctx.config.profiles_dir)
        serial = cfg.serial or await read_serial(link, unit, profile) or f"{link.endpoint}-{unit}"
        device_id = topics.slug(profile.manufacturer, profile.model, serial)
        meta = m.DeviceMeta(device_id=device_id, kind="meter", source=ctx.name, protocol="modbus",
                            manufacturer=profile.manufacturer, model=profile.model, serial=serial, address=address)
        return [meta], [meter_reading(device_id, now, await read_profile(link, unit, profile))]
    dmap = await scan(link, unit, tuple(cfg.base_addresses), cfg.probe_timeout_s)
    decoded, _problems = await read_models(link, dmap, set(cfg.models) or None, cfg.timeout_s)
    common = next((d.values for d in decoded if d.model_id == 1), {})
    device_id = mapping.device_id(common, f"{link.endpoint.host}-{link.endpoint.port}-{unit}")
    meta = m.DeviceMeta(device_id=device_id, kind=mapping.device_kind([b.model_id for b in dmap.blocks]),
                        source=ctx.name, protocol="sunspec", manufacturer=common.get("Mn"), model=common.get("Md"),
                        serial=common.get("SN"), firmware=common.get("Vr"), address=address)
    out = mapping.readings(device_id, now, decoded)
    found: list[m.Reading] = [r for r in (out.main, *out.strings, out.battery) if r is not None]  # type: ignore[misc]
    return [meta], found


async def probe(ctx: ServiceContext[Config], command: m.CommandBase) -> m.CommandResult:
    assert isinstance(command, m.ProbeDevice)
    try:
        cfg = convert(f"{ctx.name}.devices", dict(command.entry), DeviceConfig, dict.fromkeys(command.entry, "probe"))
        if not cfg.host and not cfg.serial_port:
            raise ConfigError(f"config [{ctx.name}.devices] host: give a host (Modbus TCP) or a serial_port (RTU)")
    except ConfigError as exc:
        ctx.counters.inc("probes_invalid")
        return m.CommandResult(status="invalid", message=str(exc))
    link = Link(endpoint_of(cfg), cfg.timeout_s)
    devices: list[m.DeviceMeta] = []
    readings: list[m.Reading] = []
    reasons: list[str] = []
    try:
        for unit in cfg.unit_ids if cfg.protocol == "sunspec" else cfg.unit_ids[:1]:
            try:
                metas, values = await _unit(ctx, cfg, link, unit)
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
    if not devices:
        ctx.counters.inc("probes_failed")
        why = "; ".join(reasons or ["no unit answered"])
        return m.CommandResult(status="failed", message=f"{link.endpoint}: {why}")
    note = f" (not answering: {'; '.join(reasons)})" if reasons else ""
    return m.CommandResult(status="ok", devices=devices, readings=readings,
                           message=f"{link.endpoint}: {len(devices)} device(s) answered{note}")
