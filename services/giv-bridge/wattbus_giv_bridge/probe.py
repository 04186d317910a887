"""`probe_device`: read a GivEnergy inverter once through its dongle (the setup page's "add by hand"
check), with the adapter the poll loop uses; nothing is announced or published, and the probing
dongle connection is closed again: the bridge only polls what its config or adoption gives it."""

from __future__ import annotations

from wattbus import messages as m
from wattbus.bridge import form
from wattbus.bridge import probe as toolkit
from wattbus.runner import ServiceContext

from .adapter import GivAdapter
from .config import Config, InverterConfig
from .dongle import Dongle, DongleError
from .givtcp_control import GivFunctions
from .plant import Plant

FORMS = form.Forms(forms=(form.add_form(
    "givenergy", "GivEnergy inverter (WiFi dongle)", "inverters", {"host": "{host}", "port": "{port}"},
    [form.host_field("IP address of the inverter's WiFi dongle"), form.port_field(8899)], protocol="givenergy"),))


async def probe(ctx: ServiceContext[Config], command: m.CommandBase) -> m.CommandResult:
    assert isinstance(command, m.ProbeDevice)
    cfg = toolkit.entry(ctx, dict(command.entry), InverterConfig)
    if isinstance(cfg, m.CommandResult):
        return cfg
    where = f"{cfg.host}:{cfg.port}"
    # One retry at most: a person is waiting for the answer next to the form.
    dongle = Dongle(cfg.host, cfg.port, ctx.counters, ctx.log.child(f"probe {where}"),
                    timeout_s=ctx.config.timeout_s, retries=min(ctx.config.retries, 1))
    adapter = GivAdapter(ctx, Plant(cfg, dongle), GivFunctions(_no_writes, ctx.log), publish=False)
    try:
        devices, readings = await toolkit.sample(adapter)
    except DongleError as exc:
        return toolkit.result(ctx, where, [], [], [str(exc)])
    return toolkit.result(ctx, where, devices, readings, [])


async def _no_writes(plant: Plant, writes: object) -> dict[str, m.ExtraValue]:
    raise RuntimeError(f"a probe of {plant.config.host} writes nothing")
