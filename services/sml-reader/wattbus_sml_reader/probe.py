"""`probe_device`: listen to a meter until its first good frame (the setup page's "add by hand"
check) through the same adapter the reader polls (`Meter`, with its line, framers, decoders and
OBIS mapping), counting on its own and announcing nothing. A meter pushes every 1-10 s (IEC mode
C answers a request at 300 baud), so the wait is per format."""

from __future__ import annotations

import msgspec
from wattbus import messages as m
from wattbus.bridge import form
from wattbus.bridge import probe as toolkit
from wattbus.runner import ServiceContext

from .config import Config, MeterConfig
from .mapping import Mapper
from .meter import Meter, MeterDown

WAIT_S = {"sml": 12.0, "dsmr": 15.0, "iec": 40.0}  # a little over each format's slowest push/readout
TITLES = {"sml": "SML meter (IR reading head)", "dsmr": "DSMR meter (P1 port)", "iec": "IEC 62056-21 meter (IR head)"}
# No `deny` list: it reads only the meters its config names.
FORMS = form.Forms(forms=tuple(form.add_form(
    fmt, title, "meters", {"key": "{key}", "format": fmt, "port": "{serial_port}"},
    [form.serial_field(), form.field(MeterConfig, "key", default="meter",
                                     help="a short name for this meter (letters, digits, - and _)")],
    protocol=fmt if fmt != "iec" else "iec62056", address="serial") for fmt, title in TITLES.items()),
    probe_wait_s=max(WAIT_S.values()) + 5)


async def probe(ctx: ServiceContext[Config], command: m.CommandBase) -> m.CommandResult:
    assert isinstance(command, m.ProbeDevice)
    cfg = toolkit.entry(ctx, dict(command.entry), MeterConfig)
    if isinstance(cfg, m.CommandResult):
        return cfg
    meter = Meter(ctx, msgspec.structs.replace(cfg, offline_after_s=WAIT_S[cfg.format]), Mapper(), probe=True)
    try:
        devices, readings = await toolkit.sample(meter)
    except MeterDown as exc:
        rejected = meter.counters.get("frames_rejected")
        seen = (f"; {rejected} frame(s) rejected, last: {meter.last_rejection}" if rejected
                else "" if meter.counters.get("bytes_read") else "; no bytes at all")
        return toolkit.result(ctx, cfg.port, [], [], [f"{exc}{seen} (wrong format, baud rate or port?)"])
    answer = toolkit.result(ctx, cfg.port, devices, readings[:1], [])
    problems = [*([meter.last_rejection] if meter.last_rejection else []), *meter.problems]
    if problems:  # it answered; what did not decode is worth a look before saving
        return msgspec.structs.replace(answer, message=f"{answer.message} ({len(problems)} problem(s), first: "
                                                        f"{problems[0]})")
    return answer
