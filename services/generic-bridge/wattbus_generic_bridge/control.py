"""Commands to a described device: a relay's switch, a charger's current, charging and phases.

Each command is checked here first (channel, the charger's current limits from the device entry or
the description, a relay's minimum switch interval), then written only when the device does not
already show the asked value, over the transport the description names (`writes.Target`: a holding
register, an HTTP request or an MQTT message), and answered `ok` only once a fresh read shows it
(`confirm_timeout_s`), else `failed` with what was read back. At most once across replicas is the
toolkit's (wattbus.bridge.CommandRouter records the request before `execute` runs).
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING, Any

from wattbus import messages as m
from wattbus.bridge import answer

from .config import current_limits
from .fetch import FetchError
from .modbus import encode
from .spec import Description
from .writes import VALUE, Target, Write, targets

if TYPE_CHECKING:
    from .adapter import DescribedDevice

COMMANDS: dict[str, type[m.CommandBase]] = {"relay": m.SetRelay, "charge_current": m.SetChargeCurrent,
                                            "charging": m.SetCharging, "phases": m.SetPhases}


def commands(desc: Description) -> tuple[type[m.CommandBase], ...]:
    """The commands a description's [write] maps (its capabilities on the bus)."""
    write = desc.write
    if write is None:
        return ()
    keys = list(targets(write))
    if write.on_url is not None and "relay" not in keys:
        keys.insert(0, "relay")
    return tuple(COMMANDS[k] for k in keys)


def asked(command: m.CommandBase) -> tuple[str, str, Any, str]:
    """(command key, reading field, the value asked for, the word for `values`)."""
    if isinstance(command, m.SetRelay):
        return "relay", "on", command.on, "on" if command.on else "off"
    if isinstance(command, m.SetChargeCurrent):
        return "charge_current", "set_current_a", float(command.current_a), ""
    if isinstance(command, m.SetCharging):
        return "charging", "enabled", command.enabled, "on" if command.enabled else "off"
    assert isinstance(command, m.SetPhases)  # the router sends only what `commands` lists
    return "phases", "phases_active", command.phases, str(command.phases)


def refusal(device: DescribedDevice, command: m.CommandBase) -> str:
    """Why the bridge will not write this, '' when it may."""
    dev = device.device_id
    if isinstance(command, m.SetRelay) and command.channel != 0:
        return f"{dev}: a described relay has channel 0 only"
    if isinstance(command, m.SetChargeCurrent):
        low, high = current_limits(device.dev, device.desc)
        if command.current_a > high:
            return f"{dev}: {command.current_a:g} A is above max_current_a = {high:g} A"
        if command.current_a < low:
            return f"{dev}: {command.current_a:g} A is below min_current_a = {low:g} A"
    return ""


def shown(value: float) -> str:
    """A number as text for a URL or payload: 16, not 16.0."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def written(target: Target, value: Any, word: str) -> float | str:
    """What goes to the device: the mapped word's value, else the number divided by scale."""
    if word and target.values:
        mapped = target.values[word]
        return float(mapped) if target.modbus else mapped
    number = float(value) / target.scale
    return number if target.modbus else shown(number)


async def send(device: DescribedDevice, target: Target, value: float | str) -> None:
    """One write over the target's transport (errors are the adapter's: FetchError, ModbusError)."""
    text = shown(value) if isinstance(value, float) else value
    if target.register is not None:
        assert device.modbus is not None and isinstance(value, float)  # checked at start-up
        await device.modbus.write(target.register, encode(value, target.type, target.word_order))
    elif target.coil is not None:
        assert device.modbus is not None and isinstance(value, float)  # checked at start-up
        await device.modbus.write_coil(target.coil, value != 0)
    elif target.url is not None:
        body = target.body.replace(VALUE, text) if target.body is not None else None
        await device.http.request(target.url.replace(VALUE, text), target.method, body, target.content_type)
    else:
        assert target.topic is not None
        if device.bus is None or not device.bus.connected:
            raise FetchError(f"{device.device_id}: its broker is not connected: {target.topic} not published")
        device.bus.publish(target.topic, target.payload.replace(VALUE, text), retain=target.retain)


async def execute(device: DescribedDevice, command: m.CommandBase) -> m.CommandResult:
    write = device.desc.write
    assert write is not None  # the router sends only what `commands` lists
    dev = device.device_id
    why = refusal(device, command)
    if why:
        return answer(command, dev, "refused", why)
    key, field, value, word = asked(command)
    target = targets(write).get(key)
    try:
        out = written(target, value, word) if target is not None else 0.0
        if target is not None and target.register is not None:
            encode(float(out), target.type, target.word_order)  # fits the register: checked before the write
    except ValueError as exc:
        return answer(command, dev, "refused", f"{dev}: write.{key}: {exc}")
    now = await state(device, field)
    if target is not None and target.fixed and not same(now, value):
        return answer(command, dev, "refused", f"{dev}: {field} is fixed by the installation at {now}; "
                                               f"it cannot be set to {value}")
    if not same(now, value):
        if key == "relay":
            ago = time.monotonic() - device.last_switch if device.last_switch is not None else math.inf
            if ago < write.min_switch_interval_s:  # contacts (and the load behind them) are worn by chatter
                return answer(command, dev, "refused",
                              f"{dev}: last switch was {ago:.0f} s ago; the minimum interval is "
                              f"{write.min_switch_interval_s:g} s (retry in "
                              f"{math.ceil(write.min_switch_interval_s - ago)} s)")
        if target is None:  # a relay over plain HTTP: one URL per state
            await device.http.request(relay_url(write, bool(value)), write.method)
        else:
            await send(device, target, out)
        if key == "relay":
            device.last_switch = time.monotonic()
    got = await confirm(device, field, value, write.confirm_timeout_s)
    applied: dict[str, m.ExtraValue] = {field: got, **({"channel": 0} if key == "relay" else {})}
    if same(got, value):
        return answer(command, dev, "ok", "confirmed by reading back", applied)
    return answer(command, dev, "failed", f"{dev}: the device did not report the new {field} (read back {got})",
                  applied)


def relay_url(write: Write, on: bool) -> str:
    url = write.on_url if on else write.off_url
    assert url is not None  # checked at start-up: both or neither
    return url


def same(got: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool) or got is None:
        return got is wanted
    return isinstance(got, int | float) and abs(float(got) - float(wanted)) < 0.05


async def state(device: DescribedDevice, field: str) -> Any:
    timestamp = device.latest.timestamp if device.latest else m.utc_now()
    value = getattr(device.mapper.reading(await device.current_raws(), timestamp)[0], field, None)
    return value if isinstance(value, bool | int | float) else None


async def confirm(device: DescribedDevice, field: str, wanted: Any, timeout_s: float) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        got = await state(device, field)
        if same(got, wanted) or loop.time() >= deadline:
            return got
        await asyncio.sleep(0.2)
