"""`probe_device`: read a GivEnergy inverter once through its dongle (the setup page's "add by hand"
check), with the same dongle client, register maps and decoding the poll loop uses. The probing
dongle connection is closed again: the bridge only polls what its config or adoption gives it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from wattbus import messages as m
from wattbus.config import ConfigError, convert
from wattbus.runner import ServiceContext

from .dongle import Dongle, DongleError
from .plant import InverterConfig, Plant, readings

if TYPE_CHECKING:
    from .__main__ import Config


async def probe(ctx: ServiceContext[Config], command: m.CommandBase) -> m.CommandResult:
    assert isinstance(command, m.ProbeDevice)
    try:
        cfg = convert(f"{ctx.name}.inverters", dict(command.entry), InverterConfig,
                      dict.fromkeys(command.entry, "probe"))
    except ConfigError as exc:
        ctx.counters.inc("probes_invalid")
        return m.CommandResult(status="invalid", message=str(exc))
    where = f"{cfg.host}:{cfg.port}"
    # One retry at most: a person is waiting for the answer next to the form.
    dongle = Dongle(cfg.host, cfg.port, ctx.counters, ctx.log.child(f"probe {where}"),
                    timeout_s=ctx.config.timeout_s, retries=min(ctx.config.retries, 1))
    plant = Plant(cfg, dongle)
    try:
        problems = await plant.poll()
    except DongleError as exc:
        ctx.counters.inc("probes_failed")
        return m.CommandResult(status="failed", message=f"{where}: {exc}")
    finally:
        await dongle.close()
    if plant.serial is None:
        ctx.counters.inc("probes_failed")
        return m.CommandResult(status="failed", message=f"{where}: answered, but reported no inverter serial")
    note = "; ".join(problems)
    return m.CommandResult(
        status="ok", message=f"{where}: GivEnergy inverter {plant.serial} answered" + (f" ({note})" if note else ""),
        devices=plant.metas(ctx.name), readings=readings(plant, plant.last_poll or datetime.now(UTC)),  # type: ignore[arg-type]
    )
