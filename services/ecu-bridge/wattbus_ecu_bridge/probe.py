"""`probe_device`: ask an APsystems ECU once for its info and real-time data (the setup page's "add
by hand" check) through the adapter the poll loop uses, announcing and publishing nothing. An ECU
takes seconds per answer (answer_delay_s), so the setup page waits long enough for its commands."""

from __future__ import annotations

from wattbus import apsystems
from wattbus import messages as m
from wattbus.bridge import form
from wattbus.bridge import probe as toolkit
from wattbus.runner import ServiceContext

from .adapter import EcuAdapter
from .client import EcuConnectionError
from .config import Config, EcuConfig

# Two commands, each answered after the ECU's answer delay (5 s): the setup page waits up to 30 s.
FORMS = form.Forms(forms=(form.add_form(
    "aps-ecu", "APsystems ECU (inverter gateway)", "ecus", {"host": "{host}", "port": "{port}"},
    [form.host_field(), form.port_field(8899)], protocol="aps-ecu"),), probe_wait_s=30.0)


async def probe(ctx: ServiceContext[Config], command: m.CommandBase) -> m.CommandResult:
    assert isinstance(command, m.ProbeDevice)
    cfg = toolkit.entry(ctx, dict(command.entry), EcuConfig)
    if isinstance(cfg, m.CommandResult):
        return cfg
    adapter = EcuAdapter(ctx, cfg, publish_native=False)
    try:
        devices, readings = await toolkit.sample(adapter)
    except (apsystems.EcuFrameError, EcuConnectionError) as exc:
        ctx.counters.inc("probes_failed")
        return m.CommandResult(status="failed", message=str(exc))  # it names the ECU's address
    name, inverters = devices[0].model, sum(1 for d in devices if d.kind == "inverter")
    return m.CommandResult(status="ok", devices=devices, readings=readings,  # type: ignore[arg-type]
                           message=f"{cfg.host}:{cfg.port}: {name} {adapter.ecu_id} answered with {inverters} "
                                   "inverters")
