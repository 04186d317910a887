"""`probe_device`: ask an APsystems ECU once for its info and real-time data (the setup page's "add
by hand" check), with the same client, frame checks and decoding the poll loop uses. An ECU takes
seconds per answer (answer_delay_s), so the setup page waits long enough for two commands."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wattbus import apsystems
from wattbus import messages as m
from wattbus.apsystems import decode_info
from wattbus.config import ConfigError, convert
from wattbus.runner import ServiceContext

from . import model
from .client import EcuClient, EcuConnectionError, Timing
from .config import Config, EcuConfig
from .decode import decode_realtime


def _stamp(local: datetime | None, zone_name: str | None) -> datetime:
    """The ECU's naive local timestamp in UTC (its own zone when it names a known one)."""
    if local is None:
        return datetime.now(UTC)
    try:
        zone = ZoneInfo(zone_name) if zone_name else None
    except (ZoneInfoNotFoundError, ValueError):
        zone = None
    return local.replace(tzinfo=zone or datetime.now().astimezone().tzinfo).astimezone(UTC)


async def probe(ctx: ServiceContext[Config], command: m.CommandBase) -> m.CommandResult:
    assert isinstance(command, m.ProbeDevice)
    try:
        cfg = convert(f"{ctx.name}.ecus", dict(command.entry), EcuConfig, dict.fromkeys(command.entry, "probe"))
    except ConfigError as exc:
        ctx.counters.inc("probes_invalid")
        return m.CommandResult(status="invalid", message=str(exc))
    client = EcuClient(cfg.host, cfg.port, Timing(cfg.answer_delay_s, cfg.pause_between_commands_s, cfg.timeout_s))
    try:
        info = decode_info(await client.ask(apsystems.info_query(), apsystems.CMD_INFO))
        rt = decode_realtime(await client.ask(apsystems.realtime_query(info.ecu_id), apsystems.CMD_REALTIME))
    except (apsystems.EcuFrameError, EcuConnectionError) as exc:
        ctx.counters.inc("probes_failed")
        return m.CommandResult(status="failed", message=str(exc))
    stamp = _stamp(rt.timestamp, info.timezone)
    gid = apsystems.ecu_device_id(info.ecu_id)
    name, _ = apsystems.ecu_model(info.ecu_id)
    devices = [m.DeviceMeta(device_id=gid, kind="gateway", source=ctx.name, protocol="aps-ecu",
                            manufacturer="APsystems", model=name, serial=info.ecu_id, firmware=info.firmware,
                            address=f"tcp://{cfg.host}:{cfg.port}")]
    readings: list[m.Reading] = [model.gateway_reading(gid, info, stamp)]
    for inv in rt.inverters:
        iid = model.inverter_device_id(inv.uid)
        devices.append(m.DeviceMeta(device_id=iid, kind="inverter", source=ctx.name, protocol="aps-ecu",
                                    manufacturer="APsystems", model=inv.model, serial=inv.uid, parent_id=gid))
        readings.append(model.inverter_reading(iid, inv, None, stamp))
    problems = "; ".join(rt.problems)
    return m.CommandResult(status="ok", devices=devices, readings=readings,
                           message=f"{cfg.host}:{cfg.port}: {name} {info.ecu_id} answered with {rt.count} inverters"
                           + (f" ({problems})" if problems else ""))
