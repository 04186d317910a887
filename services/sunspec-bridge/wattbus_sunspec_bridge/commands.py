"""Model 123 (immediate controls): active power limit and connect/disconnect.

Opt-in per device (`controls = true`): writing to an inverter is a deliberate choice. Every
command is validated, written, read back, and answered with what the device now reports.
"""

from __future__ import annotations

from typing import Any

from wattbus import messages as m

from .decode import DecodedModel, decode_model, point_offsets
from .devices import SunSpecDevice
from .link import LinkError
from .models import model_def

CONTROLS = 123


class CommandRefused(Exception):
    def __init__(self, status: m.CommandStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _read_controls(device: SunSpecDevice) -> tuple[int, DecodedModel]:
    block = device.map.first(CONTROLS)
    if block is None:
        raise CommandRefused("refused", f"{device.device_id} has no SunSpec model 123 (immediate controls)")
    regs = await device.link.read(device.unit, block.address, block.length + 2, timeout_s=device.cfg.timeout_s)
    return block.address, decode_model(model_def(CONTROLS), block.address, regs)


def _to_raw(value: float, sf: Any, what: str) -> int:
    if not isinstance(sf, int):
        raise CommandRefused("failed", f"{what}: the inverter does not implement its scale factor")
    scaled: float = value / 10 ** sf
    return round(scaled) & 0xFFFF


async def execute(device: SunSpecDevice, command: m.CommandBase) -> m.CommandResult:
    tag = command.__struct_config__.tag
    name = tag if isinstance(tag, str) else None
    try:
        if not device.cfg.controls:
            raise CommandRefused("refused", f"controls are off for {device.device_id}: set controls = true "
                                            "in its [[sunspec-bridge.devices]] entry to allow writes")
        address, current = await _read_controls(device)
        offsets = point_offsets(model_def(CONTROLS))
        writes: list[tuple[int, int]] = []
        if isinstance(command, m.SetPowerLimit):
            if command.limit_pct is None:
                writes.append((offsets["WMaxLim_Ena"][0], 0))
            else:
                raw = _to_raw(command.limit_pct, current.values.get("WMaxLimPct_SF"), "WMaxLimPct")
                writes += [(offsets["WMaxLimPct"][0], raw), (offsets["WMaxLim_Ena"][0], 1)]
        elif isinstance(command, m.SetConnected):
            writes.append((offsets["Conn"][0], 1 if command.connected else 0))
        else:
            raise CommandRefused("refused", f"{tag} is not a command for a SunSpec inverter "
                                            "(use set_power_limit or set_connected)")
        for offset, value in writes:
            await device.link.write(device.unit, address + offset, [value])
        _, after = await _read_controls(device)
        applied = {k: after.values.get(k) for k in ("WMaxLimPct", "WMaxLim_Ena", "Conn")}
        ok = _confirmed(command, after.values)
        device.ctx.counters.inc("commands_ok" if ok else "commands_failed")
        return m.CommandResult(status="ok" if ok else "failed", applied=applied,
                               message="" if ok else "the inverter did not take the new value",
                               command=name, target=device.device_id, request_id=command.request_id)
    except CommandRefused as exc:
        device.ctx.counters.inc("commands_refused")
        return m.CommandResult(status=exc.status, message=str(exc), command=name, target=device.device_id,
                               request_id=command.request_id)
    except LinkError as exc:
        device.ctx.counters.inc("commands_failed")
        return m.CommandResult(status="failed", message=str(exc), command=name, target=device.device_id,
                               request_id=command.request_id)


def _confirmed(command: m.CommandBase, values: dict[str, Any]) -> bool:
    if isinstance(command, m.SetPowerLimit):
        if command.limit_pct is None:
            return bool(values.get("WMaxLim_Ena") == "DISABLED")
        read = values.get("WMaxLimPct")
        return (values.get("WMaxLim_Ena") == "ENABLED" and isinstance(read, (int, float))
                and abs(read - command.limit_pct) < 0.51)
    if isinstance(command, m.SetConnected):
        return bool(values.get("Conn") == ("CONNECT" if command.connected else "DISCONNECT"))
    return False
